"""The status page's render time with 1,000 transitions in the history, against the JSON API.

The responder's app (create_app, a SQLite store) holds BENCH_PAGE_TRANSITIONS finished
transitions (default 1000: failovers and failbacks alternating, each with its alert,
evidence and two journaled steps) and one in progress with a failing step, so every
part of the page has something to show. Then ROUNDS times, interleaved: GET / (the page,
as a viewer) and, as the baseline, GET /api/v1/history?limit=20 (the same store reads
of the recent history, as JSON). Both through Flask's test client, in process: the
figures are the app's own work, not the network's. No Prometheus is configured, so the
region cards say why they have no data (the one query they make is bounded by
web/promql.py's timeout, not measured here).

Goals: the page renders in under 200 ms (p50) and weighs under 100 KB.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import Figures
from bench._machine import Load

TRANSITIONS = int(os.environ.get("BENCH_PAGE_TRANSITIONS", "1000"))
ROUNDS = int(os.environ.get("BENCH_PAGE_ROUNDS", "50"))
GOAL_SECONDS = 0.200
GOAL_BYTES = 100 * 1024
VIEWER = "bench-viewer-token-7c1d"
REGIONS = ("us-east-1", "eu-west-1")


def _config(directory: Path) -> Path:
    for name, value in (("webhook", "bench-webhook-token-3e9a"), ("viewer", VIEWER)):
        (directory / f"{name}-token").write_text(value + "\n")
    key = directory / "audit-key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    data = {
        "tables": ["wordpress_posts"],
        "canary": {"key": "health_check_id", "value": "ping"},
        "regions": [{"name": n, "endpoint_url": "http://127.0.0.1:9"} for n in REGIONS],
        "responder": {
            "webhook_token": {"file": str(directory / "webhook-token")},
            "auth": {
                "tokens": [
                    {
                        "name": "viewer",
                        "role": "viewer",
                        "secret": {"file": str(directory / "viewer-token")},
                    }
                ]
            },
            "state": {"backend": "sqlite", "path": str(directory / "state" / "state.db")},
            "audit": {"key_file": str(key)},
            "actions": [
                {"name": "wp-env", "type": "env_file", "path": str(directory / "wp.env")},
                {"name": "app-env", "type": "env_file", "path": str(directory / "app.env")},
            ],
        },
    }
    path = directory / "ddb-failover.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fill(store: Any, count: int) -> None:
    """count finished transitions, then one in progress stopped at a failing step."""
    from responder.state.records import Attempts, Cause, NewTransition, StepRecord

    lease = store.acquire_lease("bench", 3600)
    assert lease is not None
    for i in range(count + 1):
        source, target = (REGIONS[0], REGIONS[1]) if i % 2 == 0 else (REGIONS[1], REGIONS[0])
        now = time.time()
        alert = {"alertname": "DynamoDBRegionDown", "fingerprint": f"{i:016x}", "region": source,
                 "starts_at": "2026-12-06T03:00:00.000Z", "key": f"k{i}"}  # fmt: skip
        new = NewTransition(
            "failover" if i % 2 == 0 else "failback", source, target,
            Cause(alerts=(alert,)), 0.529379367828369, False,
            evidence={"received_at": now, "reason": f"{source} down", "alerts": []},
        )  # fmt: skip
        record = store.begin_transition(new, store.state().version)
        assert record is not None
        for name in ("wp-env", "app-env"):
            step = StepRecord(name, "applied", {"value": source, "reloaded": True},
                              {"value": target, "reloaded": True}, at=time.time(),
                              started_at=now)  # fmt: skip
            if i < count or name == "wp-env":
                store.journal_step(record.id, step, lease.token)
        if i < count:
            store.finish_transition(record.id, "completed", lease.token)
        else:
            failing = Attempts("app-env", False, 3, now, time.time(), "HTTP 503", now + 5)
            store.record_attempts(record.id, failing, lease.token)


def _time(client: Any, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (path, answer.status_code)
    return elapsed, len(answer.get_data())


def page_render() -> Figures:
    """p50 and p95 of the page and of the baseline, their ratio, and the page's weight."""
    from ddb_failover.config import load
    from responder.app import create_app, runner_of, store_of

    with tempfile.TemporaryDirectory() as tmp, Load() as load_avg:
        directory = Path(tmp)
        app = create_app(load(_config(directory)), plan_dir=directory / "plan")
        try:
            filled = time.perf_counter()
            _fill(store_of(app), TRANSITIONS)
            fill_seconds = time.perf_counter() - filled
            client = app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {VIEWER}"
            _time(client, "/")  # templates compiled, caches warm
            page, base, size = [], [], 0
            for _ in range(ROUNDS):
                seconds, size = _time(client, "/")
                page.append(seconds)
                base.append(_time(client, "/api/v1/history?limit=20")[0])
        finally:
            runner_of(app).stop()
            store_of(app).close()
    p50, base50 = statistics.median(page), statistics.median(base)
    return {
        "transitions": TRANSITIONS,
        "rounds": ROUNDS,
        "fill_seconds": round(fill_seconds, 1),
        "page_p50_ms": round(p50 * 1000, 1),
        "page_p95_ms": round(statistics.quantiles(page, n=20)[-1] * 1000, 1),
        "history_json_p50_ms": round(base50 * 1000, 1),
        "ratio_p50": round(p50 / base50, 2),
        "page_bytes": size,
        **load_avg.figures(),
        "goals": {
            f"page p50 under {GOAL_SECONDS * 1000:.0f} ms": p50 < GOAL_SECONDS,
            f"page under {GOAL_BYTES // 1024} KB": size < GOAL_BYTES,
        },
    }


BENCHMARKS = {"page_render": page_render}
