"""Webhook acknowledgement latency under gunicorn, against a bare Flask endpoint.

Both servers run with the responder's own gunicorn settings (responder/gunicorn_conf.py:
same workers, threads and worker class); only the app differs. Each round sends
DELIVERIES identical region-down notifications at once, each on its own
connection, and times send-to-answer. A first delivery starts a real failover (live
readiness read of a sandbox region, transition recorded); the rounds are the storm
Alertmanager replicas and re-sends make: duplicates, then ignored once it completed.
Afterwards the store must have counted every one of them.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import Figures
from bench._machine import Load
from ddb_failover import heartbeat
from sandbox.net import free_port, wait_until
from sandbox.regions import SANDBOX_CREDENTIALS, Region

DELIVERIES = int(os.environ.get("BENCH_WEBHOOK_DELIVERIES", "200"))
ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", "10"))
GOAL_RATIO = 1.5
TOKEN = "bench-webhook-token"
CANARY = {"key": "health_check_id", "value": "ping"}
TABLE = "wordpress_posts"
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "responder" / "gunicorn_conf.py"


def bare_app() -> Any:
    """The baseline: a Flask endpoint that reads and parses the body and answers 202."""
    from flask import Flask, jsonify, request

    app = Flask("bare")

    @app.post("/webhook")
    def webhook() -> Any:
        json.loads(request.get_data())
        return jsonify({"decisions": []}), 202

    @app.get("/readyz")
    def readyz() -> Any:
        return jsonify({"status": "ok"})

    return app


def _payload() -> bytes:
    starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    alert = {
        "status": "firing",
        "labels": {"alertname": "DynamoDBRegionDown", "region": "us-east-1", "table": TABLE},
        "annotations": {"summary": "us-east-1 down"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.bench/graph",
        "fingerprint": "b3c4d5e6f7a80912",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="DynamoDBRegionDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ddb-failover",
        "groupLabels": {"alertname": "DynamoDBRegionDown"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def _config(directory: Path, regions: dict[str, Region]) -> Path:
    (directory / "token").write_text(TOKEN + "\n")
    key = directory / "audit-key"  # the audit chain's HMAC key, owner only
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    data = {
        "tables": [TABLE],
        "canary": CANARY,
        "regions": [{"name": n, "endpoint_url": r.url} for n, r in regions.items()],
        "responder": {
            "webhook_token": {"file": str(directory / "token")},
            "state": {"backend": "sqlite", "path": str(directory / "state" / "state.db")},
            "audit": {"key_file": str(key)},
            "policy": {"min_dwell_seconds": 0},
            "actions": [{"name": "wp-env", "type": "env_file", "path": str(directory / "wp.env")}],
        },
    }
    path = directory / "ddb-failover.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def _gunicorn(directory: Path, config: Path, app: str | None, name: str) -> Iterator[int]:
    """gunicorn with the responder's settings serving app (default: the responder)."""
    port = free_port()
    env = {
        **os.environ,
        "DDB_FAILOVER_CONFIG": str(config),
        "PROMETHEUS_MULTIPROC_DIR": str(directory / f"metrics-{name}"),
        "DDB_RESPONDER_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": SANDBOX_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": SANDBOX_CREDENTIALS["aws_secret_access_key"],
    }
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind",
            f"127.0.0.1:{port}"] + ([app] if app else [])  # fmt: skip
    with open(directory / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        wait_until(lambda: _ready(port, proc), 60, 0.1, f"{name} gunicorn")
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ready(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"gunicorn exited with {proc.returncode}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _round(port: int, body: bytes) -> list[float]:
    """DELIVERIES concurrent POSTs; each one's latency in ms. Raises on a non-202."""
    barrier = threading.Barrier(DELIVERIES)
    latencies: list[float] = []
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def deliver() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            barrier.wait()
            started = time.perf_counter()
            conn.request("POST", "/webhook", body, headers)
            answer = conn.getresponse()
            answer.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status != 202:
                failures.append(str(answer.status))
        except Exception as exc:  # a refused or reset connection is a failure to report
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if failures:
        raise RuntimeError(f"{len(failures)} deliveries failed, e.g. {failures[0]}")
    return latencies


def _sequential(port: int, body: bytes, count: int = 100, kind: str | None = None) -> list[float]:
    """count deliveries one after another: the acknowledgement time without queueing.

    kind: the decision each must answer (RuntimeError otherwise), when given.
    """
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    latencies = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            started = time.perf_counter()
            conn.request("POST", "/webhook", body, headers)
            answer = conn.getresponse()
            answered = answer.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status != 202:
                raise RuntimeError(f"delivery answered {answer.status}")
            if kind is not None and json.loads(answered)["decisions"][0]["kind"] != kind:
                raise RuntimeError(f"expected a {kind} decision: {answered[:300]!r}")
        finally:
            conn.close()
    return latencies


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def webhook_ack() -> Figures:
    """Median and p99 acknowledgement latency: responder vs bare Flask, same gunicorn."""
    directory = Path(tempfile.mkdtemp(prefix="ddb-bench-webhook-"))
    regions = {
        name: Region(name, [TABLE], CANARY["key"], CANARY["value"], directory / "regions")
        for name in ("us-east-1", "eu-west-1")
    }
    load = Load()
    try:
        for region in regions.values():
            region.start()
        item = heartbeat.item(CANARY["key"], "us-east-1", time.time(), "bench")
        regions["eu-west-1"].client().put_item(TableName=TABLE, Item=item)
        config = _config(directory, regions)
        body = _payload()
        samples: dict[str, list[float]] = {"bare": [], "responder": []}
        alone: dict[str, list[float]] = {}
        app = f"{__name__}:bare_app()"
        with (
            _gunicorn(directory, config, app, "bare") as bare,
            _gunicorn(directory, config, None, "responder") as responder,
            load,
        ):
            _round(bare, body)  # warm both: first requests import lazily
            _round(responder, _payload_unrelated())
            (first,) = _sequential(responder, body, 1, "failover")
            for _ in range(ROUNDS):
                samples["bare"] += _round(bare, body)
                samples["responder"] += _round(responder, body)
            alone["bare"] = _sequential(bare, body)
            alone["responder"] = _sequential(responder, body)
        # The responder has stopped: every repeat counted in memory has been written.
        counted = _counted(directory / "state" / "state.db")
    finally:
        for region in regions.values():
            region.close()
    figures = {**_figures(samples, alone), **load.figures()}
    figures["failover_delivery_ms"] = round(first, 2)
    repeats = ROUNDS * DELIVERIES + len(alone["responder"])
    figures["repeats_sent"], figures["repeats_counted"] = repeats, counted
    figures["goals"]["every repeat counted in the history"] = counted == repeats
    return figures


def _counted(path: Path) -> int:
    """The notifications the region-down alert's decisions count (not the failover's)."""
    db = sqlite3.connect(path)
    try:
        (total,) = db.execute(
            "SELECT COALESCE(SUM(count), 0) FROM decisions WHERE kind IN ('duplicate', 'ignored')"
            " AND cause LIKE '%DynamoDBRegionDown%'"
        ).fetchone()
    finally:
        db.close()
    return int(total)


def _payload_unrelated() -> bytes:
    """A notification the responder ignores: warms the workers without deciding anything."""
    data = json.loads(_payload())
    for alert in data["alerts"]:
        alert["labels"]["alertname"] = "Watchdog"
    data["commonLabels"] = data["alerts"][0]["labels"]
    return json.dumps(data).encode()


def _figures(samples: dict[str, list[float]], alone: dict[str, list[float]]) -> Figures:
    figures: Figures = {
        "deliveries_per_round": DELIVERIES,
        "rounds": ROUNDS,
        "workers": int(os.environ.get("DDB_RESPONDER_WORKERS") or 2),
        "threads": int(os.environ.get("DDB_RESPONDER_THREADS") or 64),
    }
    for name, values in samples.items():
        figures[f"{name}_median_ms"] = round(statistics.median(values), 2)
        figures[f"{name}_p99_ms"] = round(_p99(values), 2)
        figures[f"{name}_max_ms"] = round(max(values), 2)
    for name, values in alone.items():
        figures[f"{name}_sequential_median_ms"] = round(statistics.median(values), 2)
        figures[f"{name}_sequential_p99_ms"] = round(_p99(values), 2)
    p99, base = figures["responder_p99_ms"], figures["bare_p99_ms"]
    figures["p99_ratio"] = round(p99 / base, 2)
    figures["sequential_median_ratio"] = round(
        figures["responder_sequential_median_ms"] / figures["bare_sequential_median_ms"], 2
    )
    figures["goals"] = {
        f"responder p99 within {GOAL_RATIO:g}x the bare Flask p99": p99 <= GOAL_RATIO * base,
    }
    return figures


BENCHMARKS = {"webhook_ack": webhook_ack}
