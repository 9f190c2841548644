"""Fixtures for the DigitalOcean action tests: one sandbox process per module, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from responder.actions.do_client import DOClient
from tests.responder.dosandbox import TOKEN, Sandbox, fresh, serve


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
