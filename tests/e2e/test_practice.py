"""A practice run on a stack of its own: `practice run --now --hold 10 --wait` ends SUCCEEDED.

The responder under gunicorn (2 workers, each with its practice loop), the regions with
their replication, the exporter's heartbeats (the plan must be ready for the target), and
the DigitalOcean sandbox. Leg 1 is a switchover to eu-west-1 (its drain a real marker
through the replicator), a 10 s hold, leg 2 a switchover back; both legs' reports say
the drain completed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import StackView, http_json
from tests.e2e.conftest import CONFIG, small_stack

pytestmark = pytest.mark.e2e
EAST, WEST = "us-east-1", "eu-west-1"
NEEDED = ("responder", "exporter")


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackView]:
    options = ("--plan-interval-seconds", "2", "--min-dwell-seconds", "20")
    with small_stack(tmp_path_factory, NEEDED, *options) as stack:
        plan = f"{stack.urls['responder']}/api/v1/plan"
        wait_until(lambda: http_json(plan, stack.token)["ready"], 90, 0.5, "a ready plan")
        yield stack


def cli(view: StackView, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", *args, "--config", str(view.dir / CONFIG)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_practice_run_now_hold_10_succeeds_with_both_legs(view: StackView) -> None:
    assert view.status()["active_region"] == EAST
    done = cli(view, "practice", "run", "--now", "--hold", "10", "--wait", "240")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED" in done.stdout
    shown = json.loads(cli(view, "practice", "status", "--json").stdout)
    run: dict[str, Any] = shown["runs"][0]
    assert (run["outcome"], run["home"], run["target"]) == ("SUCCEEDED", EAST, WEST)
    assert run["hold_seconds"] == 10 and len(run["legs"]) == 2
    assert shown["last_success"] is not None and shown["current"] is None
    base = view.urls["responder"]
    for leg, to in zip(run["legs"], (WEST, EAST), strict=True):
        report = http_json(f"{base}/api/v1/transitions/{leg}/report", view.token)
        assert report["transition"]["kind"] == "practice"
        assert (report["transition"]["to_region"], report["transition"]["result"]) == (
            to,
            "completed",
        )
        # Drained: what was written in the source before the move is in the target. The
        # sandbox's config has no fence yet, so writes went on and rpo_seconds is None.
        assert report["switchover"]["drained"] is True, report
        assert report["rpo_seconds"] in (0.0, None) and report["drain_seconds"] is not None
    assert view.status()["active_region"] == EAST
    metrics = urllib_text(f"{base}/metrics", view.token)
    assert 'responder_practice_runs_total{outcome="SUCCEEDED"} 1.0' in metrics


def urllib_text(url: str, token: str | None) -> str:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.read().decode())
