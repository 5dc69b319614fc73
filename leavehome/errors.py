"""The one base of every error a service raises on purpose.

A service refuses with Django's ``ValidationError`` (bad input, with field paths) or with a
``ServiceError`` (the action does not apply now: a venue closed, a case already published, no
signing key). ``ServiceError`` is a ``ValidationError`` with a stable ``code``, so each is shown
once everywhere: forms and admin actions show its messages (they handle ValidationError), and
the API answers it in its error format with ``status`` (leavehome/api.py).
"""

from django.core.exceptions import ValidationError


class ServiceError(ValidationError):
    """A service refused an action: ``code`` for machines, the message for people."""

    code = "invalid"
    status = 400

    def __init__(self, message, *, code: str | None = None, params=None):
        super().__init__(message, code=code or type(self).code, params=params)

    @property
    def text(self) -> str:
        return " ".join(self.messages)
