"""Planned switchovers back and forth on the sandbox: write unavailability and RPO.

switchover makes BENCH_SWITCHOVER_TRIALS (default 20) switchovers between the first two
regions of one sandbox stack (regions, exporter, the responder under gunicorn, WordPress
in each region; the sandbox's replication, BENCH_SWITCHOVER_REPLICATION_MS behind, 500 by
default) while a writer posts to WordPress every 20 ms (sandbox/users.py). Per switchover:

- write unavailability as the report gives it (the fence's start to the unfence's end),
  and as the writer saw it (its first refused post to its first post stored in the
  target);
- rpo_seconds as the report gives it, and the writer's check of it: every post stored
  in the source is readable (strongly consistent) in the target as soon as the target
  takes its first post;
- drain_seconds;
- the baseline, measured in the same switchover: the ordinary actions' span (the first
  action's start to the last one's end), what the move itself takes, as in a failover.

Goals: write unavailability p95 under 5 s; RPO 0 in every switchover, reported and checked.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench import Figures
from bench._machine import Load
from bench.rto import _unix, percentile
from sandbox.demo import start_stack, wait_stack
from sandbox.net import wait_until
from sandbox.regions import dynamodb_client
from sandbox.stack import stop_process
from sandbox.users import Write, Writer
from sandbox.watch import StackView, http_json

TRIALS = int(os.environ.get("BENCH_SWITCHOVER_TRIALS", "20"))
REPLICATION_MS = int(os.environ.get("BENCH_SWITCHOVER_REPLICATION_MS", "500"))
PLAN_INTERVAL = os.environ.get("BENCH_SWITCHOVER_PLAN_INTERVAL_SECONDS", "1")
GOAL_P95_SECONDS = 5.0
TABLE = "wordpress_posts"
CANARY_KEY = "health_check_id"
ONLY = "responder,exporter,sites"


@contextmanager
def _stack() -> Iterator[StackView]:
    directory = Path(tempfile.mkdtemp(prefix="ddb-bench-switchover-"))
    options = (
        *("--only", ONLY, "--replication-delay-ms", str(REPLICATION_MS)),
        *("--min-dwell-seconds", "0", "--max-transitions-per-hour", "1000"),
        *("--plan-interval-seconds", PLAN_INTERVAL),
    )
    proc = start_stack(directory, *options)
    try:
        yield wait_stack(directory, proc, ("responder", "site:us-east-1", "site:eu-west-1"))
    finally:
        stop_process(proc, grace=60)


def _operator(view: StackView) -> str:
    return (view.dir / "secrets" / "operator-token").read_text().strip()


def _switchover(view: StackView, to: str) -> str:
    """POST /api/v1/switchover, again while the plan is not fresh yet; the transition id."""
    body = {"to": to, "reason": "bench"}

    def begun() -> str | None:
        status, answer = _call(view, "/api/v1/switchover", body)
        if status == 202:
            return str(answer["transition"]["id"])
        if status == 409 and ("plan" in answer.get("error", "") or "no healthy" in answer["error"]):
            return None  # the plan or the heartbeats have not caught up with the last move
        raise RuntimeError(f"switchover refused: {status} {answer}")

    return wait_until(begun, 60, 0.2, f"a switchover to {to} accepted")


def _call(view: StackView, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{view.urls['responder']}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {_operator(view)}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _missing(view: StackView, region: str, writes: list[Write]) -> int:
    client = dynamodb_client(region, view.urls[f"region:{region}"])
    return sum(
        "Item"
        not in client.get_item(TableName=TABLE, Key={CANARY_KEY: {"S": w.key}}, ConsistentRead=True)
        for w in writes
    )


def _trial(view: StackView, writer: Writer, source: str, target: str) -> dict[str, float]:
    since = time.time()
    transition_id = _switchover(view, target)
    first = wait_until(lambda: writer.stored(target, since)[:1], 60, 0.01, f"a post in {target}")
    missing = _missing(view, target, writer.stored(source, since - 5.0))
    report = wait_until(
        lambda: _finished(view, transition_id), 60, 0.2, f"switchover {transition_id} finished"
    )
    refused = [w for w in writer.writes if w.at >= since and w.status == 503]
    steps = [s for s in report["steps"] if ":" not in s["action"] and s["action"] != "drain"]
    if report["transition"]["result"] != "completed":
        raise RuntimeError(f"switchover {transition_id}: {report['transition']}")
    return {
        **_breakdown(report),
        "write_unavailable": float(report["write_unavailable_seconds"]),
        "seen_unavailable": first[0].at - refused[0].at if refused else 0.0,
        "rpo": float(report["rpo_seconds"]),
        "missing": float(missing),
        "drain": float(report["drain_seconds"]),
        "move": _unix(steps[-1]["finished_at"]) - _unix(steps[0]["started_at"]),
    }


def _breakdown(report: dict[str, Any]) -> dict[str, float]:
    """Where a switchover's time went: each step's duration (fence, drain, each action,
    unfence), the wait before the first step, and the gaps between steps."""
    steps = [s for s in report["steps"] if not s["rollback"] and s["started_at"]]
    found = {f"step {s['action']}": _unix(s["finished_at"]) - _unix(s["started_at"]) for s in steps}
    found["before the first step"] = _unix(steps[0]["started_at"]) - _unix(
        report["transition"]["started_at"]
    )
    found["between steps"] = sum(
        _unix(later["started_at"]) - _unix(earlier["finished_at"])
        for earlier, later in pairwise(steps)
    )
    return found


def _finished(view: StackView, transition_id: str) -> dict[str, Any] | None:
    url = f"{view.urls['responder']}/api/v1/transitions/{transition_id}/report"
    report = http_json(url, view.token)
    return dict(report) if report["transition"]["result"] != "in_progress" else None


def switchover() -> Figures:
    """p50 and p95 of write unavailability over TRIALS switchovers; RPO in each."""
    runs: list[dict[str, float]] = []
    with Load() as load, _stack() as view:
        regions = view.status()["regions"][:2]
        writer = Writer(view.urls[f"site:{regions[1]}"])
        writer.start()
        try:
            for number in range(TRIALS):
                source, target = regions[number % 2], regions[(number + 1) % 2]
                runs.append(_trial(view, writer, source, target))
        finally:
            writer.stop()
    figures: Figures = {
        "trials": len(runs),
        "replication_delay_ms": REPLICATION_MS,
        "plan_interval_seconds": float(PLAN_INTERVAL),
        **load.figures(),
    }
    for key, name in (
        ("write_unavailable", "write_unavailable"),
        ("seen_unavailable", "write_unavailable_seen_by_writer"),
        ("drain", "drain"),
        ("move", "move_baseline"),
    ):
        values = [run[key] for run in runs]
        figures[f"{name}_p50_s"] = round(percentile(values, 0.5), 3)
        figures[f"{name}_p95_s"] = round(percentile(values, 0.95), 3)
    parts = sorted(
        {key for run in runs for key in run if key.startswith(("step ", "before", "between"))}
    )
    figures["breakdown_p50_s"] = {
        key: round(percentile([run[key] for run in runs if key in run], 0.5), 3) for key in parts
    }
    figures["unavailable_over_move_p95"] = round(
        figures["write_unavailable_p95_s"] / figures["move_baseline_p95_s"], 2
    )
    figures["rpo_max_s"] = max(run["rpo"] for run in runs)
    figures["writes_missing_in_target"] = int(sum(run["missing"] for run in runs))
    figures["trials_write_unavailable_s"] = " ".join(
        f"{run['write_unavailable']:.2f}" for run in runs
    )
    figures["goals"] = {
        f"write unavailability p95 < {GOAL_P95_SECONDS:g} s": (
            figures["write_unavailable_p95_s"] < GOAL_P95_SECONDS
        ),
        "RPO 0 in every switchover (reported, and no stored write missing in the target)": (
            figures["rpo_max_s"] == 0.0 and figures["writes_missing_in_target"] == 0
        ),
    }
    return figures


BENCHMARKS = {"switchover": switchover}
