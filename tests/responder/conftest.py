"""Fixtures: the DigitalOcean sandbox (one process per module, reset per test), and the
state store backends (a SQLite file; a DynamoDB control table on a moto server per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from responder.actions.do_client import DOClient
from responder.state.store import StateStore
from sandbox.control_table import ControlTableServer
from tests.responder.dosandbox import TOKEN, Sandbox, fresh, serve
from tests.responder.stores import BACKENDS, Backend, Clock, dynamodb_backend, sqlite_backend


@pytest.fixture(scope="module")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from serve(tmp_path_factory)


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    yield from fresh(sandbox_server)


@pytest.fixture
def do_client(sandbox: Sandbox) -> DOClient:
    """A client of the freshly reset sandbox, with a 2 s timeout per call."""
    return DOClient(sandbox.url, TOKEN, 2.0)


@pytest.fixture(scope="module")
def control_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlTableServer]:
    """A moto DynamoDB server for the module's control tables."""
    server = ControlTableServer(tmp_path_factory.mktemp("control")).start()
    yield server
    server.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each state store backend in turn: a SQLite file, a DynamoDB control table."""
    if request.param == "sqlite":
        return sqlite_backend(tmp_path)
    return dynamodb_backend(request.getfixturevalue("control_server"))


@pytest.fixture
def clock() -> Clock:
    """A settable clock."""
    return Clock()


@pytest.fixture
def store(backend: Backend, clock: Clock) -> StateStore:
    """A store on the backend, on the settable clock."""
    return backend.open(clock)
