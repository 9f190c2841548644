"""What every blueprint shares: the service, the token check, JSON bodies and errors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response, current_app, jsonify, request

from responder.intake.service import Service
from responder.secrets import Token

SERVICE = "responder"
AUTH = "responder.auth"
# Alertmanager's payload nests 4 deep; nothing we accept needs more than a few.
MAX_DEPTH = 32
# A JSON escape of a UTF-16 surrogate, \uD800 to \uDFFF.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class RequestProblem(Exception):
    """A request the responder refuses: HTTP status, a message, and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


# What each role may do: alertmanager posts webhooks; a viewer reads; an operator also acts.
GRANTS = {
    "alertmanager": frozenset({"webhook"}),
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "operate"}),
}
NEEDS = {"webhook": "alertmanager", "read": "viewer or operator", "operate": "operator"}


class Authenticator:
    """Bearer (or Basic, for browsers) tokens in constant time; values never leave this object."""

    def __init__(self, tokens: Sequence[Token], public: Iterable[str]) -> None:
        self._tokens = [(t, t.value.encode("utf-8")) for t in tokens]
        self.public = frozenset(public)

    def identify(self, header: str | None) -> Token:
        """The token the Authorization header carries; RequestProblem 401 when none matches."""
        if not header:
            raise RequestProblem(401, "missing bearer token")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            value = _basic_password(value)
        elif scheme.lower() != "bearer" or not value.strip():
            raise RequestProblem(401, "Authorization must be 'Bearer <token>'")
        offered = value.strip().encode("utf-8")
        found = None
        for token, expected in self._tokens:  # no early exit: time does not say which matched
            if hmac.compare_digest(offered, expected):
                found = token
        if found is None:
            raise RequestProblem(401, "invalid bearer token")
        return found

    def authorize(self, header: str | None, permission: str, endpoint: str = "") -> Token | None:
        """The caller's token if it may do permission; None on a public endpoint.

        RequestProblem 401 without a valid token, 403 with one whose role does not allow it.
        A public endpoint ignores the header: a scraper that sends some token still gets in.
        """
        if endpoint in self.public:
            return None
        token = self.identify(header)
        if permission not in GRANTS[token.role]:
            raise RequestProblem(
                403, f"token {token.name!r} has role {token.role}; this needs {NEEDS[permission]}"
            )
        return token

    def sign(self, token: Token, message: str) -> str:
        """HMAC-SHA256 of message keyed by token's secret: only its holder can make it."""
        key = next(value for known, value in self._tokens if known.name == token.name)
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _basic_password(value: str) -> str:
    """The password of a Basic credential: browsers send the token there."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise RequestProblem(401, "Basic credentials are not valid base64 UTF-8") from None
    return decoded.partition(":")[2]


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


def require(permission: str, endpoint: str = "") -> Token | None:
    """The caller's token if it may do permission (None on an open endpoint); else 401 or 403."""
    auth: Authenticator = current_app.extensions[AUTH]
    return auth.authorize(request.headers.get("Authorization"), permission, endpoint)


def operator() -> str:
    """The name of the operator token this request carries: the history's `by`."""
    token = require("operate")
    assert token is not None
    return token.name


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
        # UTF-8 only (RFC 8259), not json's guess at UTF-16 or UTF-32: the scan for
        # surrogate escapes in _may_be_bad reads the bytes as ASCII.
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestProblem(400, "body is not UTF-8 text") from None
    except RecursionError:
        raise RequestProblem(400, f"body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise RequestProblem(400, f"body is not valid JSON: {exc}") from None
    if _may_be_bad(raw, data):
        _check_tree(data)
    return data


def _may_be_bad(raw: bytes, data: Any) -> bool:
    """False when data surely nests at most MAX_DEPTH deep and has no lone surrogate.

    A lone surrogate can only come from a \\uD800-\\uDFFF escape (the UTF-8 decoder
    refuses an encoded one); the walk that names the field is for the bodies that might.
    """
    if SURROGATE_ESCAPE.search(raw) is not None:
        return True
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    deepest, pending = 0, [(data, 0)]
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return deepest > MAX_DEPTH


def _check_tree(data: Any) -> None:
    """400 naming the field for nesting beyond MAX_DEPTH or a lone surrogate (JSON allows it)."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise RequestProblem(400, f"body nests deeper than {MAX_DEPTH} levels", path)
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                _unicode(key, where)
                pending.append((item, where, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _unicode(value, path)


def _unicode(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        field = path.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise RequestProblem(400, "text is not valid Unicode (a lone surrogate)", field) from None


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
