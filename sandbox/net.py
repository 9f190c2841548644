"""Loopback helpers shared by the sandbox and the tests: free ports, bounded waits."""

from __future__ import annotations

import random
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


LOWEST_PORT = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that was free a moment ago, from below the ephemeral range.

    A port from the ephemeral range (what binding port 0 gives) may be taken as the source
    port of any outgoing connection before the process it was chosen for binds it; below
    that range only another listener can take it.
    """
    try:
        first_ephemeral = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = LOWEST_PORT
    for _ in range(64 if first_ephemeral > LOWEST_PORT + 1000 else 0):
        port = random.randrange(LOWEST_PORT, first_ephemeral)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll condition until it returns a truthy value; TimeoutError past timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail until the peer is up
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:g}s{detail}")
        time.sleep(interval)


class Serving(Protocol):
    """A server with the stdlib/werkzeug shape: serve_forever and server_close."""

    def serve_forever(self) -> None: ...

    def server_close(self) -> None: ...


def serve_until_stopped(server: Serving) -> None:
    """Serve until SIGINT or SIGTERM, then close the listening socket."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
