"""What every blueprint shares: the service, the token check, JSON bodies and errors."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Response, current_app, jsonify, request

from responder.service import Service

SERVICE = "responder"
AUTH = "responder.auth"


class RequestProblem(Exception):
    """A request the responder refuses: HTTP status, a message, and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class TokenAuth:
    """Bearer-token check in constant time; the token never leaves this object."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def problem(self, header: str | None) -> str | None:
        """Why the Authorization header is refused, or None when it carries the token."""
        if not header:
            return "missing bearer token"
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "Authorization must be 'Bearer <token>'"
        if not hmac.compare_digest(value.strip().encode("utf-8"), self._token):
            return "invalid bearer token"
        return None


def service() -> Service:
    """The Service of the running app."""
    found: Service = current_app.extensions[SERVICE]
    return found


def error(status: int, message: str, field: str | None = None) -> Response:
    """A JSON error answer naming the problem (and the field, when one is at fault)."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ddb-failover"'
    return response


def require_token() -> None:
    """RequestProblem 401 unless the request carries the configured bearer token."""
    auth: TokenAuth = current_app.extensions[AUTH]
    problem = auth.problem(request.headers.get("Authorization"))
    if problem is not None:
        raise RequestProblem(401, problem)


def read_json(limit: int, *, optional: bool = False) -> Any:
    """The request's JSON body, at most limit bytes; RequestProblem 413, 415 or 400.

    Content-Length is checked before reading; a chunked body is read at most
    limit + 1 bytes, so an endless stream cannot fill memory.
    """
    length = request.content_length
    if optional and not length and request.headers.get("Transfer-Encoding") is None:
        return None
    if request.mimetype != "application/json":
        got = request.mimetype or "none"
        raise RequestProblem(415, f"Content-Type must be application/json, got {got}")
    if length is not None and length > limit:
        raise RequestProblem(413, f"body of {length} bytes exceeds the limit of {limit} bytes")
    raw = _read_at_most(limit + 1)
    if len(raw) > limit:
        raise RequestProblem(413, f"body exceeds the limit of {limit} bytes")
    if not raw and optional:
        return None
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise RequestProblem(400, "body is not UTF-8 text") from None
    except ValueError as exc:
        raise RequestProblem(400, f"body is not valid JSON: {exc}") from None


def _read_at_most(size: int) -> bytes:
    """Up to size bytes of the body: streams may answer a read with less than asked."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = request.stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
