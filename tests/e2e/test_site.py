"""WordPress in every region on the shared stack: probed by the real blackbox_exporter,
alerted by the real Prometheus and Alertmanager, checked by the responder before it moves
traffic, and served to users through the glb front."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

from sandbox.components.sites import SITE_HOST
from sandbox.net import wait_until
from sandbox.watch import http_json
from tests.e2e.conftest import FAILOVER_BOUND_SECONDS, PRIMARY, SECONDARY, E2EStack

pytestmark = pytest.mark.e2e
# WordPressSiteDown's `for:` (30 s) after the first failed probe (a 5 s scrape interval and
# the 3 s probe timeout), plus a 5 s evaluation interval and slack for a loaded machine.
SITE_DOWN_BOUND_SECONDS = 30 + 5 + 3 + 5 + 7
# FailoverBlocked has no region label: an earlier test's blocked transition may hold its
# Alertmanager group, where a new alert waits for the group's next tick (group_interval 1 m),
# after a 5 s scrape and a 5 s evaluation, plus slack.
PAGE_BOUND_SECONDS = 60 + 5 + 5 + 20


def paged(stack: E2EStack, alertname: str) -> bool:
    """A person holds a page for alertname: Alertmanager has it active, and the PagerDuty
    sink's newest event for it triggered (an earlier test's page still open counts)."""
    events = [p for p in stack.pages() if p["event"].get("payload", {}).get("class") == alertname]
    return (
        bool(events)
        and events[-1]["event"]["event_action"] == "trigger"
        and bool(alertmanager_has(stack, alertname))
    )


def served_by(stack: E2EStack) -> str | None:
    """The region whose site answered a user's request through the glb front."""
    request = urllib.request.Request(f"{stack.urls['glb']}/", headers={"Host": SITE_HOST})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return response.headers["X-Site-Region"]


def alertmanager_has(stack: E2EStack, alertname: str) -> list[dict[str, Any]]:
    """The active alerts of that name, when every Alertmanager replica holds them."""
    found = []
    for url in stack.alertmanager_replicas():
        alerts = http_json(f"{url}/api/v2/alerts?active=true&filter=alertname%3D%22{alertname}%22")
        found.append(alerts)
    return found[0] if all(found) else []


def plan_after(stack: E2EStack, moment: float) -> dict[str, Any]:
    """The first plan evaluation that started after moment."""
    url = f"{stack.urls['responder']}/api/v1/plan"
    return dict(
        wait_until(
            lambda: (d := http_json(url, stack.token))["evaluated_at_unix"] > moment and d,
            30,
            0.2,
            "an evaluation after the change",
        )
    )


def site_problems(plan: dict[str, Any], region: str) -> list[dict[str, Any]]:
    actions = plan["regions"][region]["actions"]
    return [p for a in actions if a["action"] == "site" for p in a["problems"]]


def test_a_dead_standby_site_is_named_by_the_plan_alerted_and_never_given_traffic(
    stack: E2EStack,
) -> None:
    assert stack.status()["active_region"] == PRIMARY
    assert served_by(stack) == PRIMARY
    site_url = f"{stack.urls[f'site:{SECONDARY}']}/healthz"
    writes_before = len(stack.do_writes())
    stack.chaos(SECONDARY, "site-down")
    onset_wall, onset = time.time(), time.monotonic()
    try:
        # The plan names it within one evaluation.
        [problem] = site_problems(plan_after(stack, onset_wall), SECONDARY)
        assert problem["kind"] == "site"
        assert problem["message"] == (
            f"{SECONDARY}: site {site_url} did not answer (connection refused)"
        )
        # The primary's DynamoDB dies meanwhile: the only other region's site is dead, so
        # traffic stays, the decision says why, and a person is paged.
        stack.chaos(PRIMARY, "pause")
        try:
            blocked = stack.blocked_decisions(onset_wall, FAILOVER_BOUND_SECONDS + 20)
            assert (
                f"{SECONDARY}: site {site_url} did not answer (connection refused)"
                in (blocked[0]["reason"])
            )
            wait_until(lambda: paged(stack, "FailoverBlocked"), PAGE_BOUND_SECONDS,
                       interval=0.5, message="a FailoverBlocked page")  # fmt: skip
            assert stack.status()["active_region"] == PRIMARY
            assert len(stack.do_writes()) == writes_before  # nothing moved
            # The site alert fired too, through Prometheus and both Alertmanagers.
            [firing] = wait_until(
                lambda: [
                    a for a in stack.firing("WordPressSiteDown")
                    if a["labels"]["region"] == SECONDARY
                ],
                SITE_DOWN_BOUND_SECONDS,
                interval=0.5,
                message="WordPressSiteDown firing",
            )  # fmt: skip
            fired = time.monotonic() - onset
            assert (firing["labels"]["region"], firing["labels"]["severity"]) == (
                SECONDARY,
                "warning",
            )
            held = wait_until(
                lambda: alertmanager_has(stack, "WordPressSiteDown"), 30, message="held"
            )
            assert {a["labels"]["region"] for a in held} == {SECONDARY}
            assert all(a["status"]["state"] == "active" for a in held)  # not inhibited
            # The primary's site fails with its table: that is the table's outage, no site
            # alert of its own (prometheus/rules/wordpress.yml).
            assert not stack.alerts("WordPressSiteDownInActiveRegion")
        finally:
            stack.chaos(PRIMARY, "resume")
    finally:
        stack.chaos(SECONDARY, "site-up")
    print(f"\nsite-down -> WordPressSiteDown firing in {fired:.1f}s")
    assert fired >= 30
    assert served_by(stack) == PRIMARY
    stack.wait_quiet()
    wait_until(lambda: not stack.alerts("WordPressSiteDown"), 30, interval=0.5, message="resolved")
