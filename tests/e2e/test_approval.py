"""Approval on a real stack: `sandbox up --approval failover`, the CLI as a person uses it,
DigitalOcean's objects through the API sandbox, and what the receivers were told."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import StackView, http_json
from tests.e2e.conftest import PRIMARY, SECONDARY, small_stack
from tests.responder.weblib import alert, http, payload

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", "chat", "pagerduty", "do_api")
FINGERPRINTS = {PRIMARY: "a1a1a1a1a1a1a1a1", SECONDARY: "b2b2b2b2b2b2b2b2"}
STARTS = time.time() - 30  # the alerts' onset: the data at risk is measured up to it


class Approvals(StackView):
    """A small stack (no Prometheus: the test plays Alertmanager) whose failovers wait."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        config = str(self.dir / "ddb-failover.yml")
        return subprocess.run(
            [sys.executable, "-m", "responder", *args, "--config", config],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def region_down(self, region: str, starts_at: float) -> dict[str, Any]:
        token = (self.dir / "secrets" / "webhook-token").read_text().strip()
        body = payload(alert(region=region, starts_at=starts_at, fingerprint=FINGERPRINTS[region]))
        status, answer = http(
            "POST", f"{self.urls['responder']}/webhook", body, {"Authorization": f"Bearer {token}"}
        )
        assert status == 202, answer
        return dict(answer["decisions"][0])

    def chat(self) -> list[str]:
        return [
            m["idempotency_key"] for m in http_json(f"{self.urls['chat']}/messages")["messages"]
        ]

    def glb_first(self) -> str:
        return str(self.traffic()["wordpress-glb"])


@pytest.fixture(scope="module")
def approvals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Approvals]:
    options = ("--approval", "failover", "--min-dwell-seconds", "0")
    with small_stack(tmp_path_factory, NEEDED, *options) as view:
        yield Approvals(view.dir, view.urls, view.token)


def test_a_failover_waits_for_a_yes_then_acts_and_tells_each_step(approvals: Approvals) -> None:
    before = approvals.glb_first()

    def decided() -> dict[str, Any] | None:
        decision = approvals.region_down(PRIMARY, STARTS)
        return decision if decision["kind"] == "failover" else None

    decision = wait_until(decided, 60, 1.0, "a ready target (heartbeats replicated)")
    transition_id = decision["transition_id"]
    shown = approvals.cli("status")
    assert "phase:          awaiting_approval" in shown.stdout
    assert f"ddb-responder approve {transition_id}" in shown.stdout
    assert approvals.glb_first() == before  # nothing moved while it waits
    wait_until(lambda: f"{transition_id}:awaiting_approval" in approvals.chat(), 30, 0.5, "asked")

    yes = approvals.cli("approve", transition_id, "--reason", "confirmed with the on-call")
    assert yes.returncode == 0, yes.stderr
    wait_until(lambda: approvals.status()["active_region"] == SECONDARY, 60, 0.5, "failed over")
    assert approvals.glb_first() == approvals.actions()["wordpress-glb"]["values"][SECONDARY]
    wanted = [f"{transition_id}:{e}" for e in ("awaiting_approval", "started", "completed")]
    # Only this transition's: while heartbeats were still replicating, earlier tries of the
    # same alerts were blocked, and that was told too (once).
    wait_until(
        lambda: [k for k in approvals.chat() if k.startswith(transition_id)] == wanted,
        30,
        0.5,
        "told once per event, in order",
    )
    history = approvals.history()["transitions"][0]
    assert [(o["op"], o["by"]) for o in history["operations"]] == [("approve", "operator")]


def test_a_declined_failover_changes_nothing(approvals: Approvals) -> None:
    before = approvals.traffic()
    decision = approvals.region_down(SECONDARY, STARTS + 1)
    assert decision["kind"] == "failover"
    transition_id = decision["transition_id"]
    no = approvals.cli("decline", transition_id, "--reason", "the region is fine; a bad probe")
    assert no.returncode == 0, no.stderr

    def ended() -> dict[str, Any] | None:
        latest = approvals.history()["transitions"][0]
        return latest if latest["result"] != "in_progress" else None

    latest = wait_until(ended, 30, 0.5, "the declined transition ended")
    assert (latest["id"], latest["result"]) == (transition_id, "declined")
    assert approvals.traffic() == before and approvals.status()["active_region"] == SECONDARY
    wait_until(
        lambda: (
            [k for k in approvals.chat() if k.startswith(transition_id)]
            == [f"{transition_id}:awaiting_approval", f"{transition_id}:aborted"]
        ),
        30,
        0.5,
        "asked, then told it was stopped",
    )
    violations = http_json(f"{approvals.urls['do_api']}/_sandbox/violations")["violations"]
    assert violations == []
