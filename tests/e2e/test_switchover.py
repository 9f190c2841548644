"""Planned switchover on a real stack: WordPress (the sandbox's sites) takes writes until the
fence makes it read-only, the drain waits for replication, traffic moves, the fence opens;
a paused replication times the drain out and nothing moves.

A writer posts to the site all along, as users would; each acknowledged write must be
readable in the target the moment the target takes writes. Just before the switchover,
replication into the target falls 25 s behind: longer than the rest of the switchover
takes, so the drain, not luck, is what puts the last writes there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.control import send_chaos
from sandbox.net import wait_until
from sandbox.regions import dynamodb_client
from sandbox.site import ENV_FILE, read_env
from sandbox.users import Write, Writer, post
from sandbox.watch import StackView
from tests.conftest import CANARY_KEY, sandbox_chaos
from tests.e2e.conftest import PRIMARY, SECONDARY, small_stack

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", f"site:{PRIMARY}", f"site:{SECONDARY}")
ONLY = ("responder", "exporter", "sites")
REPLICATION_DELAY_SECONDS = 25.0  # into the target, from just before the switchover
DRAIN_TIMEOUT_SECONDS = 40.0
TABLE = "wordpress_posts"


class Planned(StackView):
    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        config = str(self.dir / "ddb-failover.yml")
        return subprocess.run(
            [sys.executable, "-m", "responder", *args, "--config", config, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )

    def region_client(self, region: str) -> Any:
        return dynamodb_client(region, self.urls[f"region:{region}"])

    def read_only(self) -> str | None:
        return read_env(self.dir / ENV_FILE, "WP_READ_ONLY")


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planned]:
    options = (
        *("--drain-timeout-seconds", str(DRAIN_TIMEOUT_SECONDS)),
        *("--min-dwell-seconds", "0", "--plan-interval-seconds", "2"),
    )
    with small_stack(tmp_path_factory, NEEDED, *options, only=ONLY) as view:
        stack = Planned(view.dir, view.urls, view.token)
        yield stack


def switchover(planned: Planned, to: str) -> tuple[int, dict[str, Any]]:
    """`ddb-responder switchover --wait`, retried while the plan is not ready yet (start-up)."""

    def done() -> tuple[int, dict[str, Any]] | None:
        result = planned.cli("switchover", "--to", to, "--reason", "e2e", "--wait", "120")
        if "the plan has no fresh evaluation" in result.stderr or "not ready" in result.stderr:
            return None
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)

    deadline = time.monotonic() + 90
    while True:
        found = done()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "the plan never became ready"
        time.sleep(1)  # the plan is evaluated every 2 s


def test_a_switchover_loses_no_acknowledged_write(planned: Planned) -> None:
    writer = Writer(planned.urls[f"site:{SECONDARY}"])
    writer.start()
    behind = {"region": SECONDARY, "op": "replication-delay"}
    try:
        send_chaos(planned.dir, {**behind, "delay_ms": int(REPLICATION_DELAY_SECONDS * 1000)})
        code, report = switchover(planned, SECONDARY)
        # Writes are open in the target: read every earlier acknowledged one there, now.
        open_again = wait_for_write(writer, SECONDARY)
        target = planned.region_client(SECONDARY)
        before = writer.stored(PRIMARY)
        missing = [
            w.key
            for w in before
            if "Item"
            not in target.get_item(
                TableName=TABLE, Key={CANARY_KEY: {"S": w.key}}, ConsistentRead=True
            )
        ]
    finally:
        writer.stop()
        send_chaos(planned.dir, {**behind, "delay_ms": 500})
    assert code == 0, report
    assert report["transition"]["result"] == "completed"
    assert before and missing == [], f"{len(missing)} of {len(before)} writes not in the target"
    assert report["rpo_seconds"] == 0.0
    assert report["drain_seconds"] >= REPLICATION_DELAY_SECONDS - 0.5
    refused = [w for w in writer.writes if w.status == 503]
    assert refused, "the fence refused no write"
    seen = open_again.at - refused[0].at  # what the users saw, at 20 ms resolution
    assert seen <= report["write_unavailable_seconds"] + 1.0
    assert report["write_unavailable_seconds"] >= report["drain_seconds"]
    assert planned.status()["active_region"] == SECONDARY
    assert planned.read_only() == "0"
    assert [s["action"] for s in report["steps"]][:2] == ["fence:wp-read-only", "drain"]


def wait_for_write(writer: Writer, region: str) -> Write:
    found = wait_until(lambda: writer.stored(region)[:1], 30, 0.01, f"a write in {region}")
    return found[0]


def test_a_drain_that_cannot_complete_moves_nothing_and_unfences(planned: Planned) -> None:
    if planned.status()["active_region"] != SECONDARY:
        pytest.skip("needs the first test's switchover")
    sandbox_chaos(planned.dir, PRIMARY, "replication-pause")
    try:
        code, report = switchover(planned, PRIMARY)
    finally:
        sandbox_chaos(planned.dir, PRIMARY, "replication-resume")
    assert code == 1, report
    transition = report["transition"]
    assert transition["result"] == "blocked"
    assert transition["error"].startswith(
        f"drain timed out: {PRIMARY} did not show the marker written in {SECONDARY} within "
        f"{DRAIN_TIMEOUT_SECONDS:g}s"
    )
    assert report["rpo_seconds"] is None and report["switchover"]["moved_at"] is None
    assert [s["action"] for s in report["steps"]] == [
        "fence:wp-read-only",
        "drain",
        "unfence:wp-read-only",
    ]
    assert planned.status()["active_region"] == SECONDARY
    assert planned.read_only() == "0"
    status, answer = post(planned.urls[f"site:{SECONDARY}"], {"id": "after", "title": "open"})
    assert (status, answer["region"]) == (201, SECONDARY)
