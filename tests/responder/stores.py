"""The state store backends the store suites run against, and a settable clock."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ddb_failover.config import Config, DynamoDBState
from responder.state.dynamodb.create_table import create_control_table
from responder.state.dynamodb.store import DynamoDBStore
from responder.state.keys import AuditKeys
from responder.state.sqlite.store import SqliteStore
from responder.state.store import StateStore
from sandbox.control_table import ControlTableServer
from tests.responder.fakes import EAST, KEYS, config

BACKENDS = ("sqlite", "dynamodb")


class Clock:
    """A settable clock for lease expiry and timestamps."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Backend:
    """Opens stores on one backend's storage; spec is how a child process names it.

    path is the SQLite file, table the DynamoDB control table: where a test reaches
    past the store, as someone editing the history would.
    """

    def __init__(
        self,
        name: str,
        spec: str,
        opener: Callable[[Callable[[], float], AuditKeys | None], StateStore],
        path: Path | None = None,
        table: DynamoDBState | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self._open = opener
        self.path = path
        self.table = table

    def open(self, clock: Callable[[], float] = time.time) -> StateStore:
        """A new store object on the same storage (a restart, another replica)."""
        return self._open(clock, KEYS)

    def open_with(self, keys: AuditKeys | None, clock: Callable[[], float]) -> StateStore:
        """A new store object sealing with other keys (None: plain sha256, as before keys)."""
        return self._open(clock, keys)


def control_config(state: DynamoDBState) -> Config:
    """The test config with its state in the given control table."""
    return config().model_copy(
        update={"responder": config().responder.model_copy(update={"state": state})}
    )


def sqlite_backend(tmp_path: Path) -> Backend:
    """A SQLite file in tmp_path."""
    path = tmp_path / "state.db"
    return Backend(
        "sqlite",
        str(path),
        lambda clock, keys: SqliteStore(path, EAST, clock=clock, keys=keys),
        path=path,
    )


def dynamodb_backend(server: ControlTableServer) -> Backend:
    """A fresh control table on the server."""
    table = f"control-{uuid.uuid4().hex[:12]}"
    state = DynamoDBState(**server.state(table))
    assert create_control_table(control_config(state)) is True
    return Backend(
        "dynamodb",
        f"dynamodb:{table}@{server.url}",
        lambda clock, keys: DynamoDBStore(state, EAST, clock=clock, keys=keys),
        table=state,
    )
