"""Map a probe's exception to one bounded failure reason."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

TIMEOUT = "timeout"
CONNECTION = "connection"
THROTTLED = "throttled"
NOT_FOUND = "not_found"
ACCESS_DENIED = "access_denied"
OTHER = "other"
REASONS = (TIMEOUT, CONNECTION, THROTTLED, NOT_FOUND, ACCESS_DENIED, OTHER)

_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "TableNotFoundException"})
# A multi-Region strongly consistent table refused a write because another region was
# writing the same item: retry-safe, and proof that the region answered (exporter/probes.py).
WRITE_CONFLICT = "ReplicatedWriteConflictException"


class ProbeError(Exception):
    """A probe failed for a reason the prober determined itself (e.g. a missing canary)."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown probe failure reason {reason!r}")
        super().__init__(detail)
        self.reason = reason


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else an empty string."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def classify(exc: BaseException) -> str:
    """The bounded reason for a probe exception."""
    if isinstance(exc, ProbeError):
        return exc.reason
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _THROTTLING_CODES:
            return THROTTLED
        if code in _DENIED_CODES:
            return ACCESS_DENIED
        if code in _NOT_FOUND_CODES:
            return NOT_FOUND
        return OTHER
    # Timeouts first: botocore's ConnectTimeoutError is also a ConnectionError.
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return TIMEOUT
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | BotoConnectionError):
        return CONNECTION
    if isinstance(exc, ConnectionError):
        return CONNECTION
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ACCESS_DENIED
    return OTHER


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a probe exception for logs and --once."""
    if isinstance(exc, ProbeError):
        return str(exc)
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return f"{error_code(exc)}: {message}" if message else error_code(exc)
    return f"{type(exc).__name__}: {exc}"
