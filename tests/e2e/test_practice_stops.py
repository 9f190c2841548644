"""Practice runs that do not succeed, on one stack of their own (`sandbox up --practice`).

The responder asks the stack's real Alertmanager for blocking alerts (any critical one)
and its real Prometheus for the outcome check (the target's WordPress probe, through
blackbox_exporter). A critical alert posted to Alertmanager blocks a start, with nothing
moved; the target's site stopped while the run holds there ends it INTERRUPTED, back home.
The target's DynamoDB paused while the run holds there (the shipped rules fire through
Prometheus and Alertmanager) ends it INTERRUPTED, and the failover logic moves traffic
home, even though the site probe sends the leg home first and the webhook's failover
meets it in progress.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json
from tests.e2e.conftest import E2EStack, small_stack
from tests.responder.weblib import rfc_unix

pytestmark = pytest.mark.e2e
EAST, WEST = "us-east-1", "eu-west-1"
NEEDED = ("responder", "exporter", "prometheus", "alertmanager", "blackbox")
ONLY = (*NEEDED, "sites")  # they register as site:REGION
CHECK_INTERVAL_SECONDS = 2
DASHBOARD = Path(__file__).resolve().parents[2] / "grafana/dashboards/ddb-failover-overview.json"
BLOCKER = {"alertname": "HighErrorRate", "severity": "critical", "region": WEST}


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    options = (
        *("--plan-interval-seconds", "2", "--min-dwell-seconds", "20", "--practice"),
        *("--practice-check-interval-seconds", str(CHECK_INTERVAL_SECONDS)),
    )
    with small_stack(tmp_path_factory, NEEDED, *options, only=ONLY) as stack:
        e2e = E2EStack(stack.dir, stack.urls, stack.token)
        plan = f"{stack.urls['responder']}/api/v1/plan"
        wait_until(lambda: http_json(plan, stack.token)["ready"], 90, 0.5, "a ready plan")
        yield e2e


def alertmanager(view: E2EStack) -> str:
    return view.alertmanager_replicas()[0]


def post_alert(view: E2EStack, labels: dict[str, str], ends_in: float) -> None:
    """Send an alert to Alertmanager as Prometheus would: ends_in <= 0 resolves it."""
    now = time.time()
    alert = {
        "labels": labels,
        "annotations": {"summary": "set by the test"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + ends_in)),
    }
    request = urllib.request.Request(
        f"{alertmanager(view)}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def active(view: E2EStack, alertname: str) -> list[Any]:
    query = urllib.parse.urlencode({"active": "true", "filter": f'alertname="{alertname}"'})
    return list(http_json(f"{alertmanager(view)}/api/v2/alerts?{query}"))


def query(view: E2EStack, expr: str) -> list[dict[str, Any]]:
    """An instant query's samples from the stack's Prometheus."""
    url = f"{view.urls['prometheus']}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    return list(http_json(url)["data"]["result"])


def site_probe(view: E2EStack, region: str) -> float | None:
    """The target's site probe as Prometheus has it now (None: no sample)."""
    result = query(view, f'probe_success{{job="wordpress",region="{region}"}}')
    return float(result[0]["value"][1]) if result else None


def dashboard_exprs() -> dict[str, str]:
    """The overview dashboard's queries by panel title (annotations by name), as shipped."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = {a["name"]: a["expr"] for a in board["annotations"]["list"]}
    for panel in board["panels"]:
        for index, target in enumerate(panel.get("targets", [])):
            found[f"{panel['title']}#{index}"] = target["expr"]
    return found


def practice(view: E2EStack) -> dict[str, Any]:
    return dict(http_json(f"{view.urls['responder']}/api/v1/practice", view.token))


def report(view: E2EStack, transition: str) -> dict[str, Any]:
    url = f"{view.urls['responder']}/api/v1/transitions/{transition}/report"
    return dict(http_json(url, view.token))


def test_a_blocking_alert_firing_blocks_the_start_with_nothing_moved(view: E2EStack) -> None:
    assert view.status()["active_region"] == EAST
    writes = view.do_writes()
    post_alert(view, BLOCKER, ends_in=600)
    try:
        wait_until(lambda: active(view, "HighErrorRate"), 30, 0.5, "the alert in Alertmanager")
        done = view.cli("practice", "run", "--now", "--hold", "10", "--wait", "60")
        assert done.returncode != 0, done.stdout + done.stderr
        assert "blocking alert active: HighErrorRate{region=eu-west-1}" in done.stdout + done.stderr
        shown = practice(view)
        run = shown["runs"][0]
        assert (run["outcome"], run["legs"]) == ("BLOCKED", []), run
        assert "HighErrorRate" in run["reason"] and shown["current"] is None
        # Nothing moved: no write reached DigitalOcean, no transition began, still home.
        assert view.do_writes() == writes
        assert view.status()["active_region"] == EAST
        assert not [t for t in view.history()["transitions"] if t["kind"] == "practice"]
    finally:
        post_alert(view, BLOCKER, ends_in=-1)
    wait_until(lambda: not active(view, "HighErrorRate"), 30, 0.5, "the alert resolved")


def test_an_outcome_check_turning_false_interrupts_the_run_back_home(view: E2EStack) -> None:
    assert view.status()["active_region"] == EAST
    wait_until(lambda: site_probe(view, WEST) == 1, 60, 0.5, "the target's site probed up")
    begun = view.cli("practice", "run", "--now", "--hold", "600")
    assert begun.returncode == 0, begun.stdout + begun.stderr

    def holding() -> dict[str, Any] | None:
        current = practice(view)["current"]
        return current if current and current["phase"] == "holding" else None

    run = wait_until(holding, 120, 0.5, "the run holding in the target")
    assert view.status()["active_region"] == WEST
    stopped = time.time()
    view.chaos(WEST, "site-down")
    try:

        def ended() -> dict[str, Any] | None:
            found = next(r for r in practice(view)["runs"] if r["id"] == run["id"])
            return found if found["phase"] == "ended" else None

        # The probe fails at its next scrape (2 s), the check sees it within its interval,
        # then leg 2 switches back (fence, drain, move, unfence).
        over = wait_until(ended, 120, 0.5, "the run ended")
    finally:
        view.chaos(WEST, "site-up")
    assert over["outcome"] == "INTERRUPTED", over
    assert f'outcome check false: probe_success{{job="wordpress",region="{WEST}"}}' in (
        over["reason"] or ""
    ), over
    assert len(over["legs"]) == 2, over
    back = report(view, over["legs"][1])
    assert back["transition"]["kind"] == "practice"
    assert (back["transition"]["to_region"], back["transition"]["result"]) == (EAST, "completed")
    assert view.status()["active_region"] == EAST
    # Long before the 600 s hold: the check, not the clock, ended it.
    assert time.time() - stopped < 120
    # The dashboard's row and annotation, through the stack's real Prometheus: the legs'
    # write unavailability, the run's outcome, and its end marked.
    exprs = dashboard_exprs()
    unavailable = exprs["Switchover time and write unavailability#1"]

    def legs_figures() -> list[dict[str, Any]] | None:
        found = query(view, unavailable)
        return found if {r["metric"].get("to_region") for r in found} >= {EAST} else None

    found = wait_until(legs_figures, 30, 1, "the legs' figures")
    (figure,) = [r for r in found if r["metric"]["to_region"] == EAST]
    assert figure["metric"]["kind"] == "practice" and float(figure["value"][1]) > 0
    outcomes = exprs["Practice runs by outcome#0"]

    def interrupted() -> float | None:
        shown = {r["metric"]["outcome"]: float(r["value"][1]) for r in query(view, outcomes)}
        return shown.get("INTERRUPTED")

    assert wait_until(interrupted, 30, 1, "the run counted INTERRUPTED") == 1

    def marked() -> list[dict[str, Any]]:
        found = query(view, exprs["Practice runs"])
        return [r for r in found if r["metric"]["outcome"] == "INTERRUPTED"]

    wait_until(marked, 30, 1, "the run's end marked by the annotation")


def plan(view: E2EStack) -> dict[str, Any]:
    return dict(http_json(f"{view.urls['responder']}/api/v1/plan", view.token))


def begin_run(view: E2EStack, hold: int) -> None:
    """practice run --now, again while the last leg's dwell (20 s) still blocks it."""

    def begun() -> bool:
        done = view.cli("practice", "run", "--now", "--hold", str(hold))
        if done.returncode != 0 and "dwell" not in done.stdout + done.stderr:
            raise AssertionError(done.stdout + done.stderr)
        return done.returncode == 0

    wait_until(begun, 90, 2, "a practice run begun")


def test_an_outage_of_the_target_mid_practice_ends_it_and_fails_over_home(view: E2EStack) -> None:
    """The region traffic holds in goes down: the failover logic, not the practice, moves it."""
    assert view.status()["active_region"] == EAST
    wait_until(lambda: site_probe(view, WEST) == 1, 60, 0.5, "the target's site probed up")
    begin_run(view, hold=600)

    def holding() -> dict[str, Any] | None:
        current = practice(view)["current"]
        return current if current and current["phase"] == "holding" else None

    run = wait_until(holding, 120, 0.5, "the run holding in the target")
    assert view.status()["active_region"] == WEST
    since = time.time()
    view.chaos(WEST, "pause")
    try:

        def failed_over() -> dict[str, Any] | None:
            last = view.status()["last_transition"] or {}
            done = last.get("kind") == "failover" and last.get("result") == "completed"
            return last if done else None

        # Alertmanager repeats a notification after 5 minutes (alertmanager.yml): the one it
        # sent while the leg home was in the way must not have to wait for that.
        moved = wait_until(failed_over, 240, 0.5, "the failover out of the target")
        took = time.time() - since
        over = next(r for r in practice(view)["runs"] if r["id"] == run["id"])
        world = view.outside_state()

        def evaluated() -> dict[str, Any] | None:  # a plan evaluated after the failover
            found = plan(view)
            fresh = found["evaluated_at_unix"] > rfc_unix(moved["finished_at"])
            return found if fresh and not found["stale"] else None

        after = wait_until(evaluated, 60, 0.5, "a plan evaluated after the failover")
    finally:
        view.chaos(WEST, "resume")
    print(f"failover out of the paused target {took:.1f} s after the pause; run {over}")
    assert (moved["from_region"], moved["to_region"]) == (WEST, EAST), moved
    assert over["phase"] == "ended" and over["outcome"] == "INTERRUPTED", over
    assert "DynamoDBRegionDown" in over["reason"], over
    assert view.status()["active_region"] == EAST
    # The world equals the record: every action where the active region wants it, the fence open.
    assert world == view.desired_state(EAST)
    assert (after["active_region"], after["drift"]) == (EAST, []), after
    assert not [f for f in after["fences"] if f["left_on"]], after["fences"]
    assert view.env_region() == EAST
