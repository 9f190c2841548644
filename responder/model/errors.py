"""The two kinds of failure an action or client can report."""

from __future__ import annotations


class ActionError(Exception):
    """Base of all errors an action reports; kind names the problem when it is known.

    kind is one of responder.actions.inspection's problem kinds (credentials, missing,
    rate_limited, ...); None when only the message can say what went wrong.
    """

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class TemporaryError(ActionError):
    """Retry later: timeouts, throttling (429, with Retry-After when given), 5xx."""

    def __init__(
        self, message: str, retry_after: float | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message, kind)
        self.retry_after = retry_after


class PermanentError(ActionError):
    """Stop: retrying cannot help (401, 403, 404, 422, bad configuration)."""
