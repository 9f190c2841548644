"""Idle and slow clients cannot keep Alertmanager's webhook waiting (gunicorn's gthread workers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.responder.weblib import Responder, auth, http, payload, write_config

pytestmark = pytest.mark.slow
# A generous bound for a shared CI machine: the point is "not held off" (it used to be
# minutes with a dozen such clients); bench/hostile_clients.py measures the real figure.
BOUND_SECONDS = 5.0
OPENINGS = (
    b"",  # connects, sends nothing
    b"POST /webhook HTTP/1.1\r\nHost: x\r\n",  # headers, never finished
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{",  # a body that never comes
)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Responder, list[socket.socket]]]:
    server = Responder(write_config(tmp_path), tmp_path, workers=2).start()
    clients = []
    try:
        for index in range(50):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            client.sendall(OPENINGS[index % len(OPENINGS)])
            clients.append(client)
        yield server, clients
    finally:
        for client in clients:
            client.close()
        server.stop()


def test_fifty_idle_or_slow_clients_do_not_hold_off_a_webhook(
    hostile: tuple[Responder, list[socket.socket]],
) -> None:
    server, _clients = hostile
    for _ in range(3):
        started = time.monotonic()
        status, answer = server.webhook(payload())
        assert status == 202, answer
        assert time.monotonic() - started < BOUND_SECONDS
    status, _ = http("GET", f"{server.url}/healthz", headers=auth())
    assert status == 200
