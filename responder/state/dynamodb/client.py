"""The DynamoDB client the control table is reached through: one attempt, short timeouts."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from ddb_failover.config import DynamoDBState

CONNECT_TIMEOUT, READ_TIMEOUT = 1.0, 2.0


def client_for(state: DynamoDBState, timeout: float = READ_TIMEOUT) -> Any:
    """A DynamoDB client for the control table: one attempt, short timeouts, no hidden retries."""
    session = boto3.session.Session()  # the default session is not safe to share across threads
    return session.client(
        "dynamodb",
        region_name=state.region,
        endpoint_url=state.endpoint_url,
        config=BotoConfig(
            connect_timeout=min(CONNECT_TIMEOUT, timeout),
            read_timeout=timeout,
            retries={"total_max_attempts": 1},
        ),
    )
