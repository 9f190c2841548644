"""Webhook latency with hostile clients connected, against none, in one run.

The responder runs under its shipped gunicorn settings (HeadFirstWorker, 64 threads a
worker), then again with gunicorn's plain gthread worker (the setting before it), to show
what reading heads in the poller buys. Two crowds: fifty clients that connect and send
nothing, or half their headers, or a Content-Length and one byte of body, and then wait;
and three hundred that each send half a header block and wait (issue 22 §2).
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
from bench.webhook_ack import (
    CANARY,
    TABLE,
    TOKEN,
    _config,
    _gunicorn,
    _p99,
    _payload_unrelated,
)
from sandbox.regions import Region

HOSTILE = 50
HALF_HEADS = 300
SAMPLES = int(os.environ.get("BENCH_HOSTILE_SAMPLES", "20"))
GOAL_SECONDS = 1.0
# A held-off delivery gives up here and counts as unanswered (gthread holds it forever).
GIVE_UP_SECONDS = 5.0
HALF_HEAD = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: applic"
OPENINGS = (
    b"",
    b"POST /webhook HTTP/1.1\r\nHost: x\r\n",
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{",
)
RUNS = {
    "head_first": "",  # shipped: responder/gunicorn_conf.py
    "gthread": "--worker-class gthread",
}


@contextmanager
def _hostile(port: int, openings: list[bytes]) -> Iterator[list[socket.socket]]:
    clients = []
    try:
        for opening in openings:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(opening)
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            client.close()


def _held(clients: list[socket.socket]) -> int:
    """How many of the clients' connections are still open and unanswered."""
    held = 0
    for client in clients:
        client.setblocking(False)
        try:
            client.recv(1)
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    return held


def _deliveries(port: int, count: int) -> list[float]:
    """Sequential deliveries' latencies in ms; one held off past GIVE_UP_SECONDS is absent."""
    body = _payload_unrelated()
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    out: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_SECONDS) as conn:
                conn.sendall(request)
                status = conn.makefile("rb").readline()[:12]
        except OSError:
            continue
        if status != b"HTTP/1.1 202":
            raise RuntimeError(f"delivery answered {status!r}")
        out.append((time.perf_counter() - started) * 1000)
    return out


def _run(port: int, name: str, figures: Figures) -> None:
    _deliveries(port, 5)  # warm the workers
    alone = _deliveries(port, SAMPLES)
    figures[f"{name}_alone_p50_ms"] = round(statistics.median(alone), 2)
    figures[f"{name}_alone_p99_ms"] = round(_p99(alone), 2)
    with _hostile(port, [OPENINGS[i % len(OPENINGS)] for i in range(HOSTILE)]):
        fifty = _deliveries(port, SAMPLES if name == "head_first" else 3)
    figures[f"{name}_fifty_answered"] = f"{len(fifty)}/{SAMPLES if name == 'head_first' else 3}"
    if fifty:
        figures[f"{name}_fifty_max_ms"] = round(max(fifty), 2)
    count = SAMPLES if name == "head_first" else 3
    with _hostile(port, [HALF_HEAD] * HALF_HEADS) as clients:
        crowded = _deliveries(port, count)
        figures[f"{name}_half_heads_held_throughout"] = _held(clients)
    figures[f"{name}_half_heads_answered"] = f"{len(crowded)}/{count}"
    if len(crowded) == count:
        figures[f"{name}_half_heads_p50_ms"] = round(statistics.median(crowded), 2)
        figures[f"{name}_half_heads_p99_ms"] = round(_p99(crowded), 2)
        figures[f"{name}_half_heads_p99_over_alone"] = round(_p99(crowded) / _p99(alone), 2)


def hostile_clients() -> Figures:
    """Webhook latency alone, with fifty hostile clients, with 300 half-sent heads."""
    directory = Path(tempfile.mkdtemp(prefix="ddb-bench-hostile-"))
    regions = {
        name: Region(name, [TABLE], CANARY["key"], CANARY["value"], directory / "regions")
        for name in ("us-east-1", "eu-west-1")
    }
    figures: Figures = {"half_heads": HALF_HEADS, "hostile_clients": HOSTILE, "samples": SAMPLES}
    try:
        for region in regions.values():
            region.start()
        config = _config(directory, regions)
        for name, arguments in RUNS.items():
            os.environ["GUNICORN_CMD_ARGS"] = arguments
            with _gunicorn(directory, config, None, name) as port:
                _run(port, name, figures)
    finally:
        os.environ.pop("GUNICORN_CMD_ARGS", None)
        for region in regions.values():
            region.close()
    held = figures["head_first_half_heads_held_throughout"] == HALF_HEADS
    p99 = figures.get("head_first_half_heads_p99_ms", GIVE_UP_SECONDS * 1000)
    fifty = figures.get("head_first_fifty_max_ms", GIVE_UP_SECONDS * 1000)
    figures["goals"] = {
        f"webhook within {GOAL_SECONDS:g} s of fifty hostile clients": fifty / 1000 < GOAL_SECONDS,
        f"webhook p99 under {GOAL_SECONDS:g} s with {HALF_HEADS} half-sent heads held open": held
        and p99 / 1000 < GOAL_SECONDS,
    }
    return figures


BENCHMARKS = {"hostile_clients": hostile_clients}
