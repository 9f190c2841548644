"""One DigitalOcean API sandbox process for the session's do_api tests, reset before each."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sandbox.stack import stop_process
from tests.sandbox.doapi import SEED, Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("do_api")
    (tmp / "seed.json").write_text(json.dumps(SEED))
    running = start_server(tmp, tmp / "seed.json")
    yield running
    stop_process(running.process)
    assert running.process.returncode == 0, running.log.read_text()[-2000:]
    assert b"Authorization" not in running.log.read_bytes()
    assert running.token.encode() not in running.log.read_bytes()


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from the seed; none may leave a response that broke the spec."""
    if "server" not in request.fixturenames:
        yield
        return
    server: Server = request.getfixturevalue("server")
    server.control("POST", "state", {"seed": SEED})
    yield
    assert server.violations() == []
