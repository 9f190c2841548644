"""One DynamoDB client per region, with bounded timeouts and no hidden retries."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from ddb_failover.config import Region


def client_config(timeout: float, pool_size: int) -> BotoConfig:
    """A botocore config where one attempt is all a probe gets."""
    return BotoConfig(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 1},
        # One connection per concurrent probe: a hung region cannot starve the pool.
        max_pool_connections=max(pool_size, 1),
    )


def make_session(credentials: dict[str, str] | None = None) -> boto3.session.Session:
    """A boto3 session: the default AWS credential chain unless credentials are given."""
    return boto3.session.Session(**(credentials or {}))


def make_client(
    session: boto3.session.Session, region: Region, timeout: float, pool_size: int
) -> Any:
    """A thread-safe DynamoDB client for region (real AWS when it has no endpoint_url)."""
    # Clients share one session (its service model is ~10 MB) and are created up
    # front on one thread, as sessions are not thread-safe; clients are.
    return session.client(
        "dynamodb",
        region_name=region.name,
        endpoint_url=region.endpoint_url,
        config=client_config(timeout, pool_size),
    )
