"""Opening the state store the configuration names: SQLite or DynamoDB."""

from __future__ import annotations

import time
from collections.abc import Callable

from ddb_failover.config import Config, DynamoDBState, SqliteState
from responder.state.keys import AuditKeys
from responder.state.store import StateStore, StoreUnavailable


def open_store(config: Config, clock: Callable[[], float] = time.time) -> StateStore:
    """The store the configuration names; the primary is active in a new store.

    ConfigError when the audit key (responder.audit.key_file) is missing or unusable.
    """
    state = config.responder.state
    keys = AuditKeys.from_config(config.responder.audit)
    if isinstance(state, SqliteState):
        from responder.state.sqlite.store import SqliteStore

        return SqliteStore(state.path, config.primary, clock=clock, keys=keys)
    if isinstance(state, DynamoDBState):
        from responder.state.dynamodb.store import DynamoDBStore

        return DynamoDBStore(state, config.primary, clock=clock, keys=keys)
    raise StoreUnavailable(f"state backend {state.backend!r} is not implemented")
