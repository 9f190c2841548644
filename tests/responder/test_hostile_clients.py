"""Idle and slow clients cannot keep Alertmanager's webhook waiting.

gunicorn's gthread workers with the head read in the poller: responder/gunicorn_worker.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest

from responder.gunicorn_worker import head_complete
from tests.responder.weblib import Responder, auth, http, payload, write_config

pytestmark = pytest.mark.slow
# A generous bound for a shared CI machine: the point is "not held off" (it used to be
# minutes with a dozen such clients); bench/hostile_clients.py measures the real figure.
BOUND_SECONDS = 8.0  # the half-head deadline (10 s) would hold a broken server past it
OPENINGS = (
    b"",  # connects, sends nothing
    b"POST /webhook HTTP/1.1\r\nHost: x\r\n",  # headers, never finished
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{",  # a body that never comes
)
HALF_HEAD = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: applic"


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


def _deliver(port: int) -> int:
    """One webhook delivery that gives up after BOUND_SECONDS (a held-off one raises)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=BOUND_SECONDS)
    try:
        connection.request(
            "POST",
            "/webhook",
            json.dumps(payload()),
            {**auth(), "Content-Type": "application/json"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


def _half_head_after_a_request(port: int) -> socket.socket:
    """A kept-alive connection: one whole request answered, then half of the next head."""
    connection = HTTPConnection("127.0.0.1", port, timeout=BOUND_SECONDS)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200 and not answer.will_close
    assert connection.sock is not None
    connection.sock.sendall(HALF_HEAD)
    return connection.sock


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[Responder]:
    server = Responder(write_config(tmp_path), tmp_path, workers=2).start()
    try:
        yield server
    finally:
        server.stop()


def test_three_hundred_half_sent_heads_do_not_hold_off_a_webhook(responder: Responder) -> None:
    """Half on fresh connections, half on kept-alive ones: 2 workers x 64 threads is 128."""
    clients = []
    try:
        for index in range(300):
            if index % 2:
                clients.append(_half_head_after_a_request(responder.port))
            else:
                client = socket.create_connection(("127.0.0.1", responder.port), timeout=5)
                client.sendall(HALF_HEAD)
                clients.append(client)
        for _ in range(5):
            assert _deliver(responder.port) == 202
    finally:
        for client in clients:
            client.close()


def _answer(client: socket.socket) -> bytes:
    """What the responder sends before it closes the connection."""
    out = b""
    while chunk := client.recv(4096):
        out += chunk
    return out


def test_a_head_over_64_kib_is_refused_with_431(responder: Responder) -> None:
    with socket.create_connection(("127.0.0.1", responder.port), timeout=BOUND_SECONDS) as client:
        client.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
        for index in range(1100):  # 60-odd bytes each: past 64 KiB, and never ended
            client.sendall(f"X-Filler-{index:05}: {'a' * 48}\r\n".encode())
        assert _answer(client).startswith(b"HTTP/1.1 431 ")
    assert _deliver(responder.port) == 202


def test_a_head_not_whole_within_ten_seconds_is_answered_408_and_closed(
    responder: Responder,
) -> None:
    with socket.create_connection(("127.0.0.1", responder.port), timeout=90) as client:
        client.sendall(HALF_HEAD)
        started = time.monotonic()
        assert _answer(client).startswith(b"HTTP/1.1 408 ")  # blocks until the close
        assert 9.0 <= time.monotonic() - started < 60.0


def test_head_complete() -> None:
    assert head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head_complete(b"GET / HTTP/1.1\r\n\r\nbody")
    assert not head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert not head_complete(b"\r\n\r\n"[:2])
    assert head_complete(b"\r\nGET / HTTP/1.0\r\n\r\n")
    assert not head_complete(b"\r\nGET / HTTP/1.0\r\n")
    assert head_complete(b"GET / HTTP/1.1\nHost: x")  # a bare LF: the parser refuses it now
    assert not head_complete(b"GET / HTTP/1.1\r")
