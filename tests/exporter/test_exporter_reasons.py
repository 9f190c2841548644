"""Failure reasons from real botocore exception objects."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from exporter.reasons import REASONS, ProbeError, classify, describe

URL = "http://127.0.0.1:1/"


def client_error(code: str, message: str = "nope") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetItem")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ReadTimeoutError(endpoint_url=URL), "timeout"),
        (ConnectTimeoutError(endpoint_url=URL), "timeout"),
        (EndpointConnectionError(endpoint_url=URL), "connection"),
        (ConnectionClosedError(endpoint_url=URL), "connection"),
        (client_error("ResourceNotFoundException"), "not_found"),
        (client_error("ProvisionedThroughputExceededException"), "throttled"),
        (client_error("ThrottlingException"), "throttled"),
        (client_error("RequestLimitExceeded"), "throttled"),
        (client_error("AccessDeniedException"), "access_denied"),
        (client_error("UnrecognizedClientException"), "access_denied"),
        (client_error("InvalidSignatureException"), "access_denied"),
        (client_error("ExpiredTokenException"), "access_denied"),
        (NoCredentialsError(), "access_denied"),
        (client_error("InternalServerError"), "other"),
        (client_error("ValidationException"), "other"),
        (ValueError("bug"), "other"),
        (ProbeError("not_found", "canary missing"), "not_found"),
    ],
)
def test_classify(exc: BaseException, reason: str) -> None:
    assert classify(exc) == reason


def test_reasons_are_the_contract_set() -> None:
    assert set(REASONS) == {
        "timeout",
        "connection",
        "throttled",
        "not_found",
        "access_denied",
        "other",
    }


def test_probe_error_rejects_unbounded_reason() -> None:
    with pytest.raises(ValueError, match="unknown probe failure reason"):
        ProbeError("gremlins", "x")


def test_describe_names_the_aws_error_code() -> None:
    assert describe(client_error("ThrottlingException", "slow down")) == (
        "ThrottlingException: slow down"
    )
    assert describe(ReadTimeoutError(endpoint_url=URL)).startswith("ReadTimeoutError: ")
