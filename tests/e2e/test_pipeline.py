"""The whole pipeline on real processes: exporter, Prometheus, two Alertmanagers, responder.

The tests share one stack and run in file order: a blip, a double outage, a
sustained outage with a flaky DigitalOcean API, the status page, the failback.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json, metric
from tests.e2e.conftest import (
    FAILBACK_WINDOW_SECONDS,
    FAILOVER_BOUND_SECONDS,
    PRIMARY,
    SECONDARY,
    E2EStack,
)

pytestmark = pytest.mark.e2e


def transitions(stack: E2EStack) -> list[dict]:
    return list(stack.history()["transitions"])


def next_transition(stack: E2EStack, before: list[dict], timeout: float) -> dict:
    """Wait for a transition after those in before to finish; return it."""

    def finished() -> dict | None:
        current = transitions(stack)
        if len(current) > len(before) and current[0]["result"] != "in_progress":
            return current[0]
        return None

    return wait_until(finished, timeout, interval=0.2, message="a finished transition")


def test_blip_shorter_than_the_window_changes_nothing(stack: E2EStack) -> None:
    assert stack.outside_state() == stack.desired_state(PRIMARY)
    before = len(transitions(stack))
    stack.chaos(PRIMARY, "pause")
    onset = time.monotonic()
    # A 4 s black hole: probes fail, but not for the sustained window.
    wait_until(
        lambda: (
            metric(
                stack.urls["exporter"], "dynamodb_probe_success", region=PRIMARY, operation="read"
            )
            == 0
        ),
        10,
        message="the blip seen by the exporter",
    )
    while time.monotonic() - onset < 4:
        time.sleep(0.1)
    stack.chaos(PRIMARY, "resume")
    deadline = onset + FAILOVER_BOUND_SECONDS
    while time.monotonic() < deadline:
        assert not stack.firing("DynamoDBRegionDown"), "a blip fired DynamoDBRegionDown"
        time.sleep(0.5)
    assert len(transitions(stack)) == before
    assert stack.status()["active_region"] == PRIMARY
    stack.wait_quiet()


def test_both_regions_down_is_blocked_and_pages(stack: E2EStack) -> None:
    writes_before = len(stack.do_writes())
    before = len(transitions(stack))
    pages_before = len(stack.pages())
    stack.chaos(PRIMARY, "pause")
    stack.chaos(SECONDARY, "pause")
    try:
        blocked = wait_until(
            lambda: [d for d in stack.history()["decisions"] if d["kind"] == "blocked"],
            FAILOVER_BOUND_SECONDS + 20,
            interval=0.5,
            message="a blocked decision",
        )
        assert blocked[0]["region"] == PRIMARY
        wait_until(
            lambda: [
                p
                for p in stack.pages()[pages_before:]
                if "DynamoDBRegionDown" in str(p) or "FailoverBlocked" in str(p)
            ],
            60,
            interval=0.5,
            message="a page at the PagerDuty sink",
        )
        assert len(transitions(stack)) == before
        assert len(stack.do_writes()) == writes_before
        assert stack.status()["active_region"] == PRIMARY
    finally:
        stack.chaos(SECONDARY, "resume")
        stack.chaos(PRIMARY, "resume")
    stack.wait_quiet()


def test_sustained_outage_fails_over_once_despite_a_flaky_api(stack: E2EStack) -> None:
    before = transitions(stack)
    stack.do_api("/_sandbox/requests", method="DELETE")
    # The DigitalOcean API throttles then errors: the failover must still complete. The
    # faults hit the record's own path, which only the failover's change uses (the plan's
    # evaluations list the records, and would otherwise take the faults first).
    www = stack.actions()["www"]
    record = next(
        r
        for r in stack.do_get(f"/v2/domains/{www['domain']}/records")["domain_records"]
        if r["type"] == "A" and r["name"] == www["record_name"]
    )
    path = f"/v2/domains/{www['domain']}/records/{record['id']}"
    faults = [{"status": 429, "count": 2, "retry_after": 1}, {"status": 500, "count": 2}]
    for fault in faults:
        stack.do_api("/_sandbox/faults", method="POST", body={**fault, "path_prefix": path})
    stack.chaos(PRIMARY, "pause")
    onset = time.monotonic()

    transition = next_transition(stack, before, FAILOVER_BOUND_SECONDS + 30)
    elapsed = time.monotonic() - onset
    assert transition["result"] == "completed", transition
    assert transition["kind"] == "failover"
    assert (transition["from_region"], transition["to_region"]) == (PRIMARY, SECONDARY)
    assert elapsed < FAILOVER_BOUND_SECONDS, f"failover took {elapsed:.1f}s"
    assert {s["action"]: s["result"] for s in transition["steps"]} == {
        "www": "applied",
        "wordpress-lb": "applied",
        "origin": "applied",
        "wp-region": "applied",
        "wp-env": "applied",
    }
    assert stack.status()["active_region"] == SECONDARY
    assert stack.env_region() == SECONDARY
    assert stack.outside_state() == stack.desired_state(SECONDARY)
    # Both clustered Alertmanager replicas hold the alert; still exactly one
    # transition and one change per outside object.
    replicas = stack.alertmanager_replicas()
    assert len(replicas) == 2
    for url in replicas:
        status = http_json(f"{url}/api/v2/status")
        assert len(status["cluster"]["peers"]) == 2, status["cluster"]
        # Prometheus sends to each replica on its own; one may answer the
        # responder before the other has been told.
        wait_until(
            lambda url=url: any(
                a["labels"].get("region") == PRIMARY
                for a in http_json(
                    f"{url}/api/v2/alerts?filter=alertname%3D%22DynamoDBRegionDown%22"
                )
            ),
            15,
            interval=0.5,
            message=f"replica {url} holds DynamoDBRegionDown",
        )
    assert len(transitions(stack)) == len(before) + 1
    writes = stack.do_writes()
    record_writes = [w for w in writes if "/records/" in w["path"]]
    lb_writes = [w for w in writes if w["path"].startswith("/v2/load_balancers/")]
    assert len(record_writes) == 1, writes
    assert len(lb_writes) == 1, writes
    faulted = [r for r in stack.do_api("/_sandbox/requests")["requests"] if r["fault"]]
    assert len(faulted) == 4
    assert stack.do_api("/_sandbox/violations")["violations"] == []


def test_status_page_shows_the_active_region_in_chromium(stack: E2EStack) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by the bootstrap"
    latest = transitions(stack)[0]
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={stack.dir / 'chromium'}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            stack.urls["responder"] + "/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert SECONDARY in dom
    assert latest["id"] in dom or latest["kind"] in dom


def test_failback_after_the_window_restores_the_primary(stack: E2EStack) -> None:
    before = transitions(stack)
    assert stack.status()["active_region"] == SECONDARY
    stack.chaos(PRIMARY, "resume")
    recovery = time.monotonic()

    transition = next_transition(stack, before, FAILBACK_WINDOW_SECONDS + 90)
    assert time.monotonic() - recovery >= FAILBACK_WINDOW_SECONDS
    assert transition["result"] == "completed", transition
    assert transition["kind"] == "failback"
    assert (transition["from_region"], transition["to_region"]) == (SECONDARY, PRIMARY)
    assert all(s["result"] == "applied" for s in transition["steps"]), transition["steps"]
    assert stack.status()["active_region"] == PRIMARY
    assert stack.env_region() == PRIMARY
    assert stack.outside_state() == stack.desired_state(PRIMARY)


def test_the_plan_stayed_ready_for_every_region_that_was_up(stack: E2EStack) -> None:
    """No false alarm through blip, double outage, failover and failback.

    The only problems allowed are a region's own readiness while it was down (or had
    just come back and was catching up on replication): those are true.
    """
    (watch,) = stack.plan_watch
    samples = list(watch.samples)
    assert samples, "the plan was never read"
    evaluated = {document["evaluated_at_unix"] for _, document in samples}
    run = samples[-1][0] - samples[0][0]
    interval = samples[-1][1]["interval_seconds"]
    assert len(evaluated) >= run / interval / 2, f"{len(evaluated)} evaluations in {run:.0f} s"
    catch_up = 2 * interval + 15
    false_alarms = []
    for _, document in samples:
        assert document["stale"] is False, document
        at = document["evaluated_at_unix"]
        for region, planned in document["regions"].items():
            for entry in planned["actions"]:
                errors = [p for p in entry["problems"] if p["severity"] == "error"]
                down = stack.down_between(region, at - catch_up, at)
                if errors and not (entry["action"] == "readiness" and down):
                    false_alarms.append((document["evaluated_at"], region, entry))
    assert false_alarms == []
    # After the failback the plan is the way out of the primary again, and ready.
    url = f"{stack.urls['responder']}/api/v1/plan"
    back = wait_until(
        lambda: (d := http_json(url))["active_region"] == PRIMARY and d,
        2 * interval + 10,
        0.5,
        "the plan after the failback",
    )
    assert back["ready"] is True and list(back["regions"]) == [SECONDARY]
