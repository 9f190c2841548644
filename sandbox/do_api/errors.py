"""The sandbox's answers in DigitalOcean's error shape."""

from __future__ import annotations

NOT_FOUND = "The resource you were accessing could not be found."


class ApiError(Exception):
    """An answer in DigitalOcean's error shape: status, id and message."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


def not_found() -> ApiError:
    return ApiError(404, "not_found", NOT_FOUND)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "unprocessable_entity", message)
