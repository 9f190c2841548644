"""Never into a dead site, and never held in a dead region, on a three-region stack.

A small stack of its own: three regions with their sites, the glb front, the DigitalOcean
API sandbox, the exporter (heartbeats) and the responder under gunicorn with the shipped
minimum dwell (300 s). The test plays Alertmanager, posting the alerts it would send, so
each decision is seconds away; the readiness reads (canaries, lag, each site's health
URL) are the responder's own, live.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.components.sites import SITE_HOST
from sandbox.net import wait_until
from sandbox.watch import StackView, http_json
from tests.conftest import sandbox_chaos
from tests.e2e.conftest import small_stack
from tests.responder.weblib import alert, http, payload

pytestmark = pytest.mark.e2e
EAST, WEST, SOUTH = "us-east-1", "eu-west-1", "ap-south-1"
NEEDED = ("responder", "exporter", "glb", *(f"site:{r}" for r in (EAST, WEST, SOUTH)))
DWELL_SECONDS = 300  # responder.policy.min_dwell_seconds as shipped


class Gate(StackView):
    """The three-region stack, with the moves the tests make."""

    sent = 0

    def region_down(self, region: str) -> dict[str, Any]:
        """Post a DynamoDBRegionDown for region, as Alertmanager would; the decision."""
        Gate.sent += 1
        token = (self.dir / "secrets" / "webhook-token").read_text().strip()
        fingerprint = f"{Gate.sent:016x}"
        body = payload(alert(region=region, starts_at=time.time() - 20, fingerprint=fingerprint))
        status, answer = http(
            "POST", f"{self.urls['responder']}/webhook", body, {"Authorization": f"Bearer {token}"}
        )
        assert status == 202, answer
        return dict(answer["decisions"][0])

    def plan(self) -> dict[str, Any]:
        return dict(http_json(f"{self.urls['responder']}/api/v1/plan", self.token))

    def completed(self, transition_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            found = [t for t in self.history()["transitions"] if t["id"] == transition_id]
            return found[0] if found and found[0]["result"] == "completed" else None

        return dict(wait_until(done, 60, 0.5, f"transition {transition_id} completed"))

    def site_url(self, region: str) -> str:
        return f"{self.urls[f'site:{region}']}/healthz"

    def served_by(self) -> str | None:
        request = urllib.request.Request(f"{self.urls['glb']}/", headers={"Host": SITE_HOST})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers["X-Site-Region"] if response.status == 200 else None


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    regions = ",".join((EAST, WEST, SOUTH))
    options = ("--regions", regions, "--min-dwell-seconds", str(DWELL_SECONDS))
    only = ("responder", "exporter", "glb")
    with small_stack(
        tmp_path_factory, NEEDED, *options, "--plan-interval-seconds", "2", only=only
    ) as view:
        stack = Gate(view.dir, view.urls, view.token)
        # Heartbeats replicated everywhere: every candidate ready, by the plan.
        wait_until(lambda: stack.plan()["ready"], 60, 0.5, "a ready plan")
        yield stack


def test_every_candidate_site_dead_blocks_naming_each_answer(gate: Gate) -> None:
    for region in (WEST, SOUTH):
        sandbox_chaos(gate.dir, region, "site-down")
    try:
        decision = gate.region_down(EAST)
        assert decision["kind"] == "blocked"
        assert decision["reason"] == (
            f"no healthy region: {WEST}: site {gate.site_url(WEST)} did not answer "
            f"(connection refused); {SOUTH}: site {gate.site_url(SOUTH)} did not answer "
            "(connection refused)"
        )
        assert gate.status()["active_region"] == EAST
    finally:
        for region in (WEST, SOUTH):
            sandbox_chaos(gate.dir, region, "site-up")
    assert gate.served_by() == EAST


def test_a_failover_skips_a_dead_site_for_the_next_region_whose_site_answers(gate: Gate) -> None:
    sandbox_chaos(gate.dir, WEST, "site-down")
    try:
        decision = gate.region_down(EAST)
        assert (decision["kind"], decision["to_region"]) == ("failover", SOUTH), decision
        west, south = decision["readiness"]
        assert (west["region"], west["site"]["ok"], west["site"]["error"]) == (
            WEST,
            False,
            "connection refused",
        )
        assert (south["region"], south["site"]["status"]) == (SOUTH, 200)
        gate.completed(decision["transition_id"])
    finally:
        sandbox_chaos(gate.dir, WEST, "site-up")
    assert gate.status()["active_region"] == SOUTH
    glb = gate.actions()["wordpress-glb"]["values"][SOUTH]
    assert gate.traffic()["wordpress-glb"] == glb
    # Users: the front sends them to the new first region, whose site reads its table.
    wait_until(lambda: gate.served_by() == SOUTH, 30, 0.5, "users served from ap-south-1")


def test_a_dead_active_region_is_left_within_the_dwell_and_the_decision_says_so(
    gate: Gate,
) -> None:
    # Traffic reached ap-south-1 seconds ago, far within the 300 s dwell; now it dies.
    last = gate.status()["last_transition"]
    assert last["to_region"] == SOUTH
    decision = gate.region_down(SOUTH)
    assert (decision["kind"], decision["to_region"]) == ("failover", EAST), decision
    overridden = decision["dwell_overridden"]
    assert overridden.startswith(
        f"dwell overridden: {SOUTH} is down (DynamoDBRegionDown); last transition completed "
    )
    assert overridden.endswith(f"ago, minimum is {DWELL_SECONDS}s")
    assert overridden in decision["reason"]
    done = gate.completed(decision["transition_id"])
    assert gate.status()["active_region"] == EAST
    # The transition's own record keeps it: its report says which dwell was overridden.
    report = http_json(
        f"{gate.urls['responder']}/api/v1/transitions/{done['id']}/report", gate.token
    )
    assert overridden in str(report)
