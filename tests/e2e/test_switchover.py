"""Planned switchover on a real stack: WordPress (the sandbox's sites) takes writes until the
fence makes it read-only, the drain waits for replication (5 s behind here), traffic moves,
the fence opens; a paused replication times the drain out and nothing moves.

A writer posts to the site all along, as users would; each acknowledged write must be
readable in the target the moment the target takes writes: the drain, not luck, put it
there (without the drain the last writes are 5 s from arriving).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.regions import dynamodb_client
from sandbox.site import ENV_FILE, read_env
from sandbox.watch import StackView
from tests.conftest import CANARY_KEY, sandbox_chaos
from tests.e2e.conftest import PRIMARY, SECONDARY, small_stack
from tests.sandbox import test_sites as sites

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", f"site:{PRIMARY}", f"site:{SECONDARY}")
ONLY = ("responder", "exporter", "sites")
REPLICATION_DELAY_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 10.0
TABLE = "wordpress_posts"


@dataclass
class Write:
    at: float
    status: int
    key: str
    region: str | None


@dataclass
class Writer:
    """Posts to a site every 20 ms, as WordPress's users would, and keeps every answer."""

    url: str
    writes: list[Write] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        number = 0
        while not self._stop.wait(0.02):
            number += 1
            key = f"switchover-{time.time_ns()}-{number}"
            status, answer = post(self.url, {"id": key, "title": "a post"})
            self.writes.append(Write(time.time(), status, key, answer.get("region")))

    def __enter__(self) -> Writer:
        self._thread = threading.Thread(target=self.run, name="writer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    try:
        answer = sites.post(url, body)
    except OSError:
        return 0, {}
    return answer.status, answer.json()


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
        *("--replication-delay-ms", str(int(REPLICATION_DELAY_SECONDS * 1000))),
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
    site = planned.urls[f"site:{SECONDARY}"]
    with Writer(site) as writer:
        code, report = switchover(planned, SECONDARY)
        # Writes are open in the target: read every earlier acknowledged one there, now.
        open_again = wait_for_write(writer, SECONDARY)
        target = planned.region_client(SECONDARY)
        before = [w for w in writer.writes if w.status == 201 and w.region == PRIMARY]
        missing = [
            w.key
            for w in before
            if "Item"
            not in target.get_item(
                TableName=TABLE, Key={CANARY_KEY: {"S": w.key}}, ConsistentRead=True
            )
        ]
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [w for w in writer.writes if w.status == 201 and w.region == region]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no write reached {region} after the switchover")


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
