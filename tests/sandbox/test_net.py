"""The free-port helper: ports no outgoing connection can take before their listener binds."""

from __future__ import annotations

import socket

import pytest

from sandbox.net import EPHEMERAL_RANGE, LOWEST_PORT, free_port


def test_free_ports_come_from_below_the_ephemeral_range_and_bind() -> None:
    first_ephemeral = int(EPHEMERAL_RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    assert all(LOWEST_PORT <= port < first_ephemeral for port in ports), ports
    assert len(set(ports)) > 1  # drawn at random, not one fixed port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_a_port_taken_is_never_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        draws = iter([taken, taken, LOWEST_PORT + 7])
        monkeypatch.setattr("sandbox.net.random.randrange", lambda *_: next(draws))
        assert free_port() == LOWEST_PORT + 7
