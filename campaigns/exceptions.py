"""The project's command errors. Interfaces turn them into HTTP answers (409, 403, 400)."""


class IllegalAction(Exception):
    """A user command that is not allowed in the current state (dispose twice, end an ended campaign)."""


class NotAllowed(Exception):
    """The user may not act on this campaign or call."""


class BadInput(Exception):
    """Input that fails validation. `fields` maps a field name to what is wrong with it."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = fields or {}
