"""boto3 clients for the AWS actions, and the one mapping of botocore errors to ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from responder.actions.inspection import CREDENTIALS, MISSING, RATE_LIMITED
from responder.model.errors import PermanentError, TemporaryError

# (service, region, endpoint_url) -> a boto3 client; tests inject their own.
AWSClientFactory = Callable[[str, str, str | None], Any]

DEFAULT_TIMEOUT_SECONDS = 10.0
_THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
}
# Error codes that mean the credentials, or what they may do, are refused.
_CREDENTIAL_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
}
_MISSING_CODES = {"NoSuchHostedZone", "ParameterNotFound", "ResourceNotFoundException"}


def client_factory(timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> AWSClientFactory:
    """A factory of boto3 clients that try once with bounded connect and read timeouts."""
    # Retries belong to the reconciler, which backs off and journals each attempt.
    config = BotoConfig(
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"total_max_attempts": 1},
    )

    # One session per factory: a new session reloads every service model (~0.3 s).
    session = boto3.session.Session()

    def make(service: str, region: str, endpoint_url: str | None) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)

    return make


def classify(what: str, exc: Exception) -> TemporaryError | PermanentError:
    """The error class for a botocore failure: retry later, or stop."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "error")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = error.get("Message")
        message = f"{what}: {code} (HTTP {status})" + (f": {detail}" if detail else "")
        if code in _THROTTLING_CODES or status == 429:
            return TemporaryError(message, kind=RATE_LIMITED)
        if status >= 500:
            return TemporaryError(message)
        return PermanentError(message, _kind(code, status))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentError(f"{what}: {exc}", CREDENTIALS)
    if isinstance(exc, NoRegionError):
        return PermanentError(f"{what}: {exc}")
    if isinstance(exc, ParamValidationError):
        return PermanentError(f"{what}: invalid request: {exc}")
    # Connect and read timeouts, refused and reset connections, and whatever else
    # botocore meets on the wire: the next attempt may well succeed.
    return TemporaryError(f"{what}: {type(exc).__name__}: {exc}")


def _kind(code: str, status: int) -> str | None:
    if code in _CREDENTIAL_CODES or status in (401, 403):
        return CREDENTIALS
    if code in _MISSING_CODES:
        return MISSING
    return None


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn botocore exceptions raised inside the block into Temporary/PermanentError."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise classify(what, exc) from exc
