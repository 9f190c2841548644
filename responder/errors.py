"""The two kinds of failure an action or client can report."""

from __future__ import annotations


class ActionError(Exception):
    """Base of all errors an action reports."""


class TemporaryError(ActionError):
    """Retry later: timeouts, throttling (429, with Retry-After when given), 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ActionError):
    """Stop: retrying cannot help (401, 403, 404, 422, bad configuration)."""
