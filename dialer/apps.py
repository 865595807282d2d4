from django.apps import AppConfig


class DialerConfig(AppConfig):
    """The project package as an app, so its system checks are registered before `check` runs."""

    name = "dialer"
    verbose_name = "Dialer"

    def ready(self) -> None:
        from dialer import checks  # noqa: F401 - registers the checks
