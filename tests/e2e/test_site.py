"""WordPress in every region on the shared stack: probed by the real blackbox_exporter,
alerted by the real Prometheus and Alertmanager, and served to users through the glb front."""

from __future__ import annotations

import time
import urllib.request

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json
from tests.e2e.conftest import PRIMARY, SECONDARY, E2EStack

pytestmark = pytest.mark.e2e
# WordPressSiteDown's `for:` (30 s) after the first failed probe (a 5 s scrape interval and
# the 3 s probe timeout), plus a 5 s evaluation interval and slack for a loaded machine.
SITE_DOWN_BOUND_SECONDS = 30 + 5 + 3 + 5 + 7


def served_by(stack: E2EStack) -> str | None:
    """The region whose site answered a user's request through the glb front."""
    request = urllib.request.Request(f"{stack.urls['glb']}/", headers={"Host": "www.example.test"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return response.headers["X-Site-Region"]


def alertmanager_has(stack: E2EStack, alertname: str) -> list[dict]:
    """The active alerts of that name every Alertmanager replica holds."""
    found = []
    for url in stack.alertmanager_replicas():
        alerts = http_json(f"{url}/api/v2/alerts?active=true&filter=alertname%3D%22{alertname}%22")
        found.append(alerts)
    return found[0] if all(found) else []


def test_a_dead_standby_site_fires_wordpress_site_down_through_prometheus_and_alertmanager(
    stack: E2EStack,
) -> None:
    assert stack.status()["active_region"] == PRIMARY
    assert served_by(stack) == PRIMARY
    stack.chaos(SECONDARY, "site-down")
    onset = time.monotonic()
    try:
        [pending] = wait_until(
            lambda: stack.alerts("WordPressSiteDown"), 20, interval=0.5, message="pending"
        )
        assert pending["state"] == "pending", "fired before its 30 s"
        [firing] = wait_until(
            lambda: stack.firing("WordPressSiteDown"),
            SITE_DOWN_BOUND_SECONDS,
            interval=0.5,
            message="WordPressSiteDown firing",
        )
        fired = time.monotonic() - onset
        assert firing["labels"]["region"] == SECONDARY
        assert firing["labels"]["severity"] == "warning"
        [held] = wait_until(
            lambda: alertmanager_has(stack, "WordPressSiteDown"), 20, message="in Alertmanager"
        )
        assert held["labels"]["region"] == SECONDARY
        assert held["status"]["state"] == "active"  # not silenced, not inhibited
        # A standby region's dead site pages nobody, and users are still served.
        assert not stack.alerts("WordPressSiteDownInActiveRegion")
        assert served_by(stack) == PRIMARY
    finally:
        stack.chaos(SECONDARY, "site-up")
    print(f"\nsite-down -> WordPressSiteDown firing in {fired:.1f}s")
    assert fired >= 30
    wait_until(lambda: not stack.alerts("WordPressSiteDown"), 30, interval=0.5, message="resolved")
