"""The record follows the world, on a real stack: a stray attempt, abort, drift and repair.

A small stack of its own (the responder under gunicorn, the regions and their exporter, the
DigitalOcean sandbox, Prometheus and Alertmanager) whose actions time out after
ACTION_TIMEOUT seconds while its DigitalOcean client waits DO_TIMEOUT seconds: a late answer
(the sandbox's delay fault) then outlives the attempt that asked, as a hung call would.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json, metric
from tests.e2e.conftest import PRIMARY, SECONDARY, E2EStack, small_stack
from tests.e2e.test_pipeline import record_path

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", "do_api", "prometheus", "alertmanager")
ACTION_TIMEOUT, DO_TIMEOUT = 3, 150
DELAY = 90  # the PATCH lands, and answers, this long after it was sent (a loaded machine)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    options = (
        *("--min-dwell-seconds", "0", "--plan-interval-seconds", "1"),
        *("--action-timeout-seconds", str(ACTION_TIMEOUT)),
        *("--do-timeout-seconds", str(DO_TIMEOUT)),
    )
    with small_stack(tmp_path_factory, NEEDED, *options) as view:
        e2e = E2EStack(view.dir, view.urls, view.token)
        wait_until(lambda: not plan(e2e)["stale"], 90, 0.5, "the first plan evaluation")
        yield e2e


def plan(stack: E2EStack) -> dict[str, Any]:
    return dict(http_json(f"{stack.urls['responder']}/api/v1/plan", stack.token))


def last(stack: E2EStack) -> dict[str, Any]:
    return dict(stack.status()["last_transition"] or {})


def patch_record(stack: E2EStack, path: str, data: str) -> None:
    """Change the DNS record by hand, as a person in DigitalOcean's console would."""
    token = (stack.dir / "secrets" / "do-token").read_text().strip()
    request = urllib.request.Request(
        f"{stack.urls['do_api']}{path}",
        data=json.dumps({"type": "A", "data": data}).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def drift_of(stack: E2EStack, action: str) -> float | None:
    """The drift gauge of action; None while it has no sample."""
    return metric(stack.urls["responder"], "responder_action_drift", action=action)


def test_a_stray_attempt_holds_the_step_and_rollback_follows_the_world(stack: E2EStack) -> None:
    path = record_path(stack)
    fault = {"delay_seconds": DELAY, "apply": "after", "path_prefix": path, "method": "PATCH"}
    stack.do_api("/_sandbox/faults", "POST", {**fault, "count": 1})

    def failover() -> bool:  # readiness is re-checked live: a loaded machine may miss it once
        done = stack.cli("failover", "--to", SECONDARY, "--force", "--reason", "drill")
        return done.returncode == 0

    wait_until(failover, 120, 1, "the failover accepted")

    def stray() -> dict[str, Any] | None:
        running = last(stack)
        attempts, in_flight = running.get("attempts") or {}, running.get("in_flight") or {}
        timed_out = "timeout_seconds" in (attempts.get("error") or "")
        return running if timed_out and in_flight.get("action") == "www" else None

    running = wait_until(stray, 60, 0.2, "the www attempt timed out and still runs")
    assert running["result"] == "in_progress"
    skipped = stack.cli("skip", "www", "--reason", "moving it by hand")
    assert skipped.returncode != 0 and "in flight since" in skipped.stderr, skipped
    aborted = stack.cli("abort", "--reason", "back out", "--rollback", "--wait", "180")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    done = last(stack)
    assert (done["id"], done["result"]) == (running["id"], "aborted")
    # The late PATCH landed (DNS moved forward), then the rollback read it back and moved it.
    back = [(s["action"], s["result"]) for s in done["steps"] if s["rollback"]]
    assert ("www", "applied") in back and len(back) == len(stack.actions())
    assert stack.outside_state() == stack.desired_state(PRIMARY)
    assert stack.status()["active_region"] == PRIMARY
    writes = [
        r
        for r in stack.do_api("/_sandbox/requests")["requests"]
        if r["path"] == path and r["method"] == "PATCH"
    ]
    assert len(writes) == 2 and writes[0]["ended"] < writes[1]["started"]  # never overlapping


def test_a_hand_edited_record_is_drift_alerted_and_repaired(stack: E2EStack) -> None:
    wait_until(lambda: drift_of(stack, "www") == 0, 60, 0.5, "no drift before the edit")
    path = record_path(stack)
    patch_record(stack, path, stack.actions()["www"]["values"][SECONDARY])
    wait_until(lambda: drift_of(stack, "www") == 1, 30, 0.2, "drift within one evaluation")
    drift = stack.status()["drift"]
    assert [d["action"] for d in drift["actions"]] == ["www"]
    shown = stack.cli("status")
    assert "DRIFT www" in shown.stdout and "ddb-responder repair" in shown.stdout
    page = urllib.request.Request(
        f"{stack.urls['responder']}/", headers={"Authorization": f"Bearer {stack.token}"}
    )
    with urllib.request.urlopen(page, timeout=10) as answer:
        assert 'data-drift="www"' in answer.read().decode()
    assert stack.outside_state()["www"] == stack.desired_state(SECONDARY)["www"]  # never by itself

    def firing() -> bool:
        alerts = stack.alerts("FailoverDrift")
        return any(a["state"] == "firing" and a["labels"]["action"] == "www" for a in alerts)

    wait_until(firing, 240, 1, "FailoverDrift firing in Prometheus")
    query = 'filter=alertname="FailoverDrift"'
    url = f"{stack.urls['alertmanager']}/api/v2/alerts?{urllib.parse.quote(query, safe='=')}"
    wait_until(lambda: http_json(url), 60, 1, "FailoverDrift in Alertmanager")

    repaired = stack.cli("repair", "--reason", "dns edited by hand", "--action", "www")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr

    def finished() -> dict[str, Any] | None:
        ended = last(stack)
        return ended if ended.get("kind") == "repair" and ended["result"] != "in_progress" else None

    done = wait_until(finished, 60, 0.2, "the repair finished")
    assert done["result"] == "completed"
    assert [(s["action"], s["result"]) for s in done["steps"]] == [("www", "applied")]
    assert stack.outside_state() == stack.desired_state(PRIMARY)
    wait_until(lambda: drift_of(stack, "www") == 0, 30, 0.2, "drift back to 0")
    history = stack.history()["transitions"]
    assert history[0]["kind"] == "repair" and history[0]["cause"]["reason"] == "dns edited by hand"


def test_abort_while_awaiting_approval_ends_it_at_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    options = ("--min-dwell-seconds", "0", "--approval", "all", "--plan-interval-seconds", "1")
    with small_stack(tmp_path_factory, ("responder", "exporter", "do_api"), *options) as view:
        stack = E2EStack(view.dir, view.urls, view.token)

        def failover() -> bool:  # readiness is checked live: a loaded machine may miss it once
            done = stack.cli("failover", "--to", SECONDARY, "--force", "--reason", "drill")
            return done.returncode == 0

        wait_until(failover, 120, 1, "the failover accepted")
        assert stack.status()["phase"] == "awaiting_approval"
        aborted = stack.cli("--json", "abort", "--reason", "not now", "--rollback", "--wait", "0")
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr
        ended = json.loads(aborted.stdout)["transition"]
        assert ended["result"] == "aborted"  # at once: in the answer itself
        assert ended["error"].endswith("nothing was applied: nothing to roll back")
        status = stack.status()
        assert (status["phase"], status["active_region"]) == ("steady", PRIMARY)
        assert stack.outside_state() == stack.desired_state(PRIMARY)
        writes = [r for r in stack.do_api("/_sandbox/requests")["requests"] if r["method"] != "GET"]
        assert writes == []
