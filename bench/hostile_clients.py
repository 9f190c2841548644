"""Webhook latency with fifty idle or slow clients connected, against none, in one run.

The responder runs under its shipped gunicorn settings; then again with 4 threads per
worker (the setting before docs/security.md's change), to show what the thread count buys.
A hostile client connects and sends nothing, or half its headers, or a Content-Length
and one byte of body, and then waits.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import Figures
from bench.webhook_ack import CANARY, TABLE, _config, _gunicorn, _payload_unrelated, _sequential
from sandbox.regions import Region

HOSTILE = 50
SAMPLES = int(os.environ.get("BENCH_HOSTILE_SAMPLES", "20"))
GOAL_SECONDS = 1.0
OPENINGS = (
    b"",
    b"POST /webhook HTTP/1.1\r\nHost: x\r\n",
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{",
)


@contextmanager
def _hostile(port: int) -> Iterator[None]:
    clients = []
    try:
        for index in range(HOSTILE):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(OPENINGS[index % len(OPENINGS)])
            clients.append(client)
        yield
    finally:
        for client in clients:
            client.close()


def _latencies(port: int, count: int) -> list[float]:
    """Sequential deliveries in ms; one that times out (30 s) counts as 30 000."""
    out: list[float] = []
    for _ in range(count):
        try:
            out += _sequential(port, _payload_unrelated(), 1)
        except OSError:
            out.append(30_000.0)
    return out


def hostile_clients() -> Figures:
    """Webhook latency alone and with fifty hostile clients: 64 threads (shipped) and 4."""
    directory = Path(tempfile.mkdtemp(prefix="ddb-bench-hostile-"))
    regions = {
        name: Region(name, [TABLE], CANARY["key"], CANARY["value"], directory / "regions")
        for name in ("us-east-1", "eu-west-1")
    }
    figures: Figures = {"hostile_clients": HOSTILE, "samples": SAMPLES}
    try:
        for region in regions.values():
            region.start()
        config = _config(directory, regions)
        for threads in ("64", "4"):
            os.environ["DDB_RESPONDER_THREADS"] = threads
            with _gunicorn(directory, config, None, f"threads-{threads}") as port:
                _latencies(port, 5)  # warm the workers
                alone = _latencies(port, SAMPLES)
                with _hostile(port):
                    time.sleep(1)  # let the hostile connections reach the workers
                    crowded = _latencies(port, SAMPLES if threads == "64" else 3)
            figures[f"threads_{threads}_alone_median_ms"] = round(statistics.median(alone), 2)
            figures[f"threads_{threads}_hostile_median_ms"] = round(statistics.median(crowded), 2)
            figures[f"threads_{threads}_hostile_max_ms"] = round(max(crowded), 2)
    finally:
        os.environ.pop("DDB_RESPONDER_THREADS", None)
        for region in regions.values():
            region.close()
    worst = figures["threads_64_hostile_max_ms"]
    assert isinstance(worst, float)
    figures["goals"] = {
        f"webhook within {GOAL_SECONDS:g} s of fifty hostile clients": worst / 1000 < GOAL_SECONDS
    }
    return figures


BENCHMARKS = {"hostile_clients": hostile_clients}
