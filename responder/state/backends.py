"""Opening the state store the configuration names: SQLite or DynamoDB."""

from __future__ import annotations

import time
from collections.abc import Callable

from ddb_failover.config import Config, DynamoDBState, SqliteState
from responder.state.store import StateStore, StoreUnavailable


def open_store(config: Config, clock: Callable[[], float] = time.time) -> StateStore:
    """The store the configuration names; the primary is active in a new store."""
    state = config.responder.state
    if isinstance(state, SqliteState):
        from responder.state.sqlite.store import SqliteStore

        return SqliteStore(state.path, config.primary, clock=clock)
    if isinstance(state, DynamoDBState):
        from responder.state.dynamodb.store import DynamoDBStore

        return DynamoDBStore(state, config.primary, clock=clock)
    raise StoreUnavailable(f"state backend {state.backend!r} is not implemented")
