"""Production refuses unsafe configuration.

Production mode is DEBUG off and real Twilio (not the sandbox). There, the published demo `SECRET_KEY` and a
missing or published `TWILIO_AUTH_TOKEN` would let anyone forge sessions and signed webhooks, so they are
`check --deploy` errors, and the web server (asgi/wsgi) and the dialer worker refuse to start with them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_KEY_LENGTH = 50
# Commands below the wiring layer (run_dialer) run just this check by its tag: `self.check(tags=[PRODUCTION_TAG],
# include_deployment_checks=True)` refuses to start on an error without importing this module.
PRODUCTION_TAG = "production"


def production_mode() -> bool:
    return not settings.DEBUG and not settings.TWILIO_SANDBOX


def unsafe_settings() -> list[tuple[str, str, str]]:
    """(check id, what is wrong, how to fix it) for every unsafe setting in production mode; empty otherwise."""
    if not production_mode():
        return []
    problems = []
    key = settings.SECRET_KEY or ""
    if key == settings.DEMO_SECRET_KEY or key.startswith("django-insecure") or len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(("dialer.E001", "SECRET_KEY is missing, the published demo key or too short",
                         f"set SECRET_KEY to at least {MIN_SECRET_KEY_LENGTH} random characters"))
    token = settings.TWILIO_AUTH_TOKEN or ""
    if not token or token == settings.SANDBOX_AUTH_TOKEN:
        problems.append(("dialer.E002", "TWILIO_AUTH_TOKEN is missing or the published sandbox token: anyone "
                                        "could sign webhooks",
                         "set TWILIO_AUTH_TOKEN to your Twilio account's auth token (or TWILIO_SANDBOX=true "
                         "for a sandbox run)"))
    return problems


@register(Tags.security, PRODUCTION_TAG, deploy=True)
def check_production_secrets(app_configs=None, **kwargs):
    found = [Error(message, hint=hint, id=check_id) for check_id, message, hint in unsafe_settings()]
    if settings.TWILIO_SANDBOX and not settings.DEBUG:
        found.append(Warning("TWILIO_SANDBOX is on: webhooks are signed with the sandbox's published token",
                             hint="unset TWILIO_SANDBOX for a deployment on real Twilio", id="dialer.W001"))
    return found


def refuse_unsafe_production() -> None:
    """Called by the entry points that serve (asgi, wsgi); run_dialer runs the check by its tag."""
    problems = unsafe_settings()
    if problems:
        raise ImproperlyConfigured("refusing to start in production mode (DEBUG off, not the sandbox): "
                                   + "; ".join(f"{message} ({hint})" for _, message, hint in problems))
