"""The record follows the world, on a real stack: a stray attempt, a crash between a change
and its journal, skip during an attempt, abort, drift and repair.

A small stack of its own (the responder under gunicorn, the regions and their exporter, the
DigitalOcean sandbox, Prometheus and Alertmanager) whose actions time out after
ACTION_TIMEOUT seconds while its DigitalOcean client waits DO_TIMEOUT seconds: a late answer
(the sandbox's delay fault) then outlives the attempt that asked, as a hung call would. A
shorter one lands inside the attempt, which leaves time to kill the worker that runs it or to
change the record by hand while it waits.

The scenarios that take no stack option of their own are functions of the stack, so that
test_record_ha.py runs them on two replicas sharing the DynamoDB control table too.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json, metric
from tests.e2e.conftest import PRIMARY, SECONDARY, E2EStack, small_stack
from tests.e2e.test_pipeline import record_path
from tests.responder.weblib import auth, http

pytestmark = [pytest.mark.e2e, pytest.mark.stack_copy(2)]  # see tests/conftest.py
NEEDED = ("responder", "exporter", "do_api", "prometheus", "alertmanager")
# Long enough for a test to act while an attempt waits on a late answer (a loaded machine).
ACTION_TIMEOUT, DO_TIMEOUT = 20, 150
DELAY = 90  # the PATCH lands, and answers, this long after it was sent (a loaded machine)
# A late answer that still comes within the attempt, and one that outlives it (a stray).
SHORT_DELAY, STRAY_DELAY = 10, ACTION_TIMEOUT + 10
OPTIONS = (
    *("--min-dwell-seconds", "0", "--plan-interval-seconds", "1"),
    *("--action-timeout-seconds", str(ACTION_TIMEOUT)),
    *("--do-timeout-seconds", str(DO_TIMEOUT)),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    with small_stack(tmp_path_factory, NEEDED, *OPTIONS) as view:
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


def start_failover(stack: E2EStack) -> None:
    """An operator's forced failover to SECONDARY, accepted."""

    def failover() -> bool:  # readiness is re-checked live: a loaded machine may miss it once
        done = stack.cli("failover", "--to", SECONDARY, "--force", "--reason", "drill")
        return done.returncode == 0

    wait_until(failover, 120, 1, "the failover accepted")


def delay_patch(stack: E2EStack, seconds: float, apply: str = "before") -> None:
    """The next PATCH of the DNS record answers seconds late (made before the delay: at once)."""
    fault = {"delay_seconds": seconds, "apply": apply, "path_prefix": record_path(stack)}
    stack.do_api("/_sandbox/faults", "POST", {**fault, "method": "PATCH", "count": 1})


def www_points_at(stack: E2EStack, region: str) -> bool:
    """True when the DNS record holds region's address, read from the sandbox's own state
    (past the faults a test set on the API's reads)."""
    www = stack.actions()["www"]
    domains = stack.do_api("/_sandbox/state")["domains"]
    records = next(d["records"] for d in domains if d["name"] == www["domain"])
    data = [r["data"] for r in records if (r["type"], r["name"]) == ("A", www["record_name"])]
    return data == [www["values"][region]]


def records_path(stack: E2EStack) -> str:
    """The path the www action reads the record through (a list, filtered by name)."""
    return f"/v2/domains/{stack.actions()['www']['domain']}/records"


def forbid_glb(stack: E2EStack) -> None:
    """Reading the Global Load Balancer answers 403 (permanent): its step stalls, so the
    transition stays in progress until a person acts."""
    glb = stack.actions()["wordpress-glb"]
    stack.fault(403, f"/v2/load_balancers/{glb['load_balancer_id']}", method="GET")


def halted_at(stack: E2EStack, action: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the transition in progress stopped at a permanent error on action."""

    def stopped() -> dict[str, Any] | None:
        running = last(stack)
        attempts = running.get("attempts") or {}
        halted = attempts.get("action") == action and attempts.get("halted")
        return running if halted and not running.get("in_flight") else None

    return dict(wait_until(stopped, timeout, 0.2, f"the transition halted at {action}"))


def operate(stack: E2EStack, command: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST an operator command to the responder's API: (status, answer)."""
    token = (stack.dir / "secrets" / "operator-token").read_text().strip()
    return http("POST", f"{stack.urls['responder']}/api/v1/{command}", body, auth(token))


def roll_back(stack: E2EStack, transition_id: str) -> dict[str, Any]:
    """Mend DigitalOcean, abort with rollback as an operator types it; the ended transition."""
    stack.clear_faults()
    aborted = stack.cli("abort", "--reason", "back out", "--rollback", "--wait", "180")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    done = last(stack)
    assert (done["id"], done["result"]) == (transition_id, "aborted")
    return done


def rolled_back(done: dict[str, Any]) -> list[tuple[str, str]]:
    """The rollback's steps: (action, result)."""
    return [(s["action"], s["result"]) for s in done["steps"] if s["rollback"]]


def assert_world_is_the_record(stack: E2EStack) -> None:
    """Every action's live state is the desired state of the region status calls active:
    the DigitalOcean objects and the env file read here, every action as a plan evaluation
    made after now reads it (no drift, none unknown)."""
    since = time.time()
    active = stack.status()["active_region"]
    assert stack.outside_state() == stack.desired_state(active)
    assert stack.env_region() == active

    def evaluated() -> dict[str, Any] | None:
        fresh = plan(stack)
        return fresh if fresh["evaluated_at_unix"] > since and fresh["drift_checked"] else None

    fresh = wait_until(evaluated, 60, 0.5, "a plan evaluation after the transition")
    assert fresh["active_region"] == active
    assert (fresh["drift"], fresh["drift_unknown"]) == ([], [])
    assert set(stack.actions()) <= set(fresh["drift_checked"])


def drift_of(stack: E2EStack, action: str) -> float | None:
    """The drift gauge of action; None while it has no sample."""
    return metric(stack.urls["responder"], "responder_action_drift", action=action)


def test_a_stray_attempt_holds_the_step_and_rollback_follows_the_world(stack: E2EStack) -> None:
    path = record_path(stack)
    fault = {"delay_seconds": DELAY, "apply": "after", "path_prefix": path, "method": "PATCH"}
    stack.do_api("/_sandbox/faults", "POST", {**fault, "count": 1})

    start_failover(stack)

    def stray() -> dict[str, Any] | None:
        running = last(stack)
        attempts, in_flight = running.get("attempts") or {}, running.get("in_flight") or {}
        timed_out = "timeout_seconds" in (attempts.get("error") or "")
        return running if timed_out and in_flight.get("action") == "www" else None

    running = wait_until(stray, 90, 0.2, "the www attempt timed out and still runs")
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


def test_a_crash_between_applying_and_journaling_is_rolled_back(stack: E2EStack) -> None:
    crash_between_applying_and_journaling(stack)


def crash_between_applying_and_journaling(stack: E2EStack) -> None:
    """Sequence 2: the www PATCH lands at once, its answer never reaches the worker that
    sent it (killed meanwhile). The re-run finds nothing to do; rollback must move it back."""
    assert stack.status()["active_region"] == PRIMARY
    delay_patch(stack, 300)  # answered long after the worker is gone
    forbid_glb(stack)
    start_failover(stack)

    def landed() -> dict[str, Any] | None:
        running = last(stack)
        in_flight = running.get("in_flight") or {}
        if in_flight.get("action") != "www" or not www_points_at(stack, SECONDARY):
            return None
        return running

    running = wait_until(landed, 90, 0.1, "the www PATCH landed while its attempt waits")
    holder = int(running["in_flight"]["holder"].split(":")[-2])  # host:pid:nonce
    cmdline = Path(f"/proc/{holder}/cmdline").read_bytes()
    # A responder worker of this stack: `ddb-responder serve`'s gunicorn, or the replicas'
    # (bench/chaos_stack.py starts gunicorn itself).
    assert b"responder" in cmdline or b"gunicorn" in cmdline, cmdline
    os.kill(holder, signal.SIGKILL)  # between the change and its journal write
    # Another worker takes the lease once it runs out, reads www back and finds it moved.
    halted = halted_at(stack, "wordpress-glb", timeout=180)
    forward = {s["action"]: s for s in halted["steps"] if not s["rollback"]}
    assert forward["www"]["result"] == "unchanged" and not forward["www"]["failures"], forward
    assert stack.status()["active_region"] == PRIMARY

    done = roll_back(stack, running["id"])
    assert ("www", "applied") in rolled_back(done)
    assert len(rolled_back(done)) == len(stack.actions())
    assert stack.status()["active_region"] == PRIMARY
    assert_world_is_the_record(stack)


def test_a_step_skipped_after_an_attempt_that_changed_it_is_rolled_back(stack: E2EStack) -> None:
    """The www attempt's PATCH lands but its answer outlives the attempt (a failure); the
    record's reads are then refused (403), the step halts and is skipped: rollback must
    still move the record back."""
    assert stack.status()["active_region"] == PRIMARY
    delay_patch(stack, STRAY_DELAY)
    forbid_glb(stack)
    start_failover(stack)
    wait_until(lambda: www_points_at(stack, SECONDARY), 90, 0.2, "the www PATCH landed")
    stack.fault(403, records_path(stack), method="GET")  # before the stray returns
    halted = halted_at(stack, "www", timeout=STRAY_DELAY + 120)
    errors = [f["error"] for f in halted["attempts"]["failures"]]
    assert any("timeout_seconds" in e for e in errors), errors  # the attempt that changed it
    status, answer = operate(stack, "skip", {"action": "www", "reason": "checking by hand"})
    assert status == 202, answer
    halted = halted_at(stack, "wordpress-glb")
    forward = {s["action"]: s["result"] for s in halted["steps"] if not s["rollback"]}
    assert forward["www"] == "skipped"
    assert www_points_at(stack, SECONDARY)

    done = roll_back(stack, halted["id"])
    assert ("www", "applied") in rolled_back(done)
    assert_world_is_the_record(stack)


def test_skip_during_an_attempt_is_refused_and_the_transition_goes_on(stack: E2EStack) -> None:
    skip_during_an_attempt(stack)


def skip_during_an_attempt(stack: E2EStack) -> None:
    """Sequence 3: skip while the step's second attempt waits on a late answer is refused
    (409); that attempt then fails permanently (its read-back finds a hand edit), and the
    transition is not wedged: retry runs the step again, abort rolls everything back."""
    assert stack.status()["active_region"] == PRIMARY
    stack.fault(503, record_path(stack), method="PATCH", count=1)  # the first attempt fails
    delay_patch(stack, SHORT_DELAY)  # the second lands at once and answers late
    forbid_glb(stack)
    start_failover(stack)

    def second() -> dict[str, Any] | None:
        running = last(stack)
        in_flight = running.get("in_flight") or {}
        return (
            running if (in_flight.get("action"), in_flight.get("attempt")) == ("www", 2) else None
        )

    running = wait_until(second, 90, 0.1, "the second www attempt in flight")
    status, answer = operate(stack, "skip", {"action": "www", "reason": "moving it by hand"})
    assert status == 409, answer
    assert "attempt 2 in flight since" in answer["error"], answer
    wait_until(lambda: www_points_at(stack, SECONDARY), 30, 0.1, "the second PATCH landed")
    # A person moves it back by hand before the attempt reads it back: a permanent failure.
    patch_record(stack, record_path(stack), stack.actions()["www"]["values"][PRIMARY])
    halted = halted_at(stack, "www")
    assert "HTTP" not in halted["attempts"]["error"], halted["attempts"]  # the read-back
    assert not [s for s in halted["steps"] if s["action"] == "www"]  # never skipped

    status, answer = operate(stack, "retry", {"reason": "checked"})
    assert status == 202, answer
    halted = halted_at(stack, "wordpress-glb")  # the runner drove www again, then went on
    forward = {s["action"]: s for s in halted["steps"] if not s["rollback"]}
    assert (forward["www"]["result"], forward["www"]["attempts"]) == ("applied", 3)
    assert www_points_at(stack, SECONDARY)

    done = roll_back(stack, running["id"])
    assert ("www", "applied") in rolled_back(done)
    assert_world_is_the_record(stack)
