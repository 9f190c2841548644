"""policy.approval over HTTP: a transition waits for a person, and only a person (or the
timeout, as configured) lets it act; readiness is checked again when the yes arrives."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from responder import app as app_module
from responder.actions.inspection import Inspection, Limits
from responder.app import create_app, runner_of
from responder.decide.decision import Check, Readiness
from tests.responder.fakes import EAST, WEST, MemoryAction
from tests.responder.weblib import OPERATOR, alert, auth, config_at, payload, viewing, write_config

SECOND = "second-operator-token-5c1d"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Site:
    """A responder whose regions' readiness the test decides, with two operator tokens."""

    def __init__(self, tmp_path: Path, **policy: Any) -> None:
        self.clock = Clock()
        self.ready = True
        self.world: dict[str, Any] = {"www": {"region": EAST}}
        self.actions = [MemoryAction("www", self.world), MemoryAction("lb", self.world)]
        (tmp_path / "second-token").write_text(SECOND)
        second = {
            "name": "second",
            "role": "operator",
            "secret": {"file": str(tmp_path / "second-token")},
        }
        path = write_config(tmp_path, policy={"min_dwell_seconds": 0, **policy})
        text = path.read_text()
        path.write_text(text)
        config = config_at(path)
        tokens = (
            *config.responder.auth.tokens,
            type(config.responder.auth.tokens[0]).model_validate(second),
        )
        config = config.model_copy(
            update={"responder": config.responder.model_copy(
                update={"auth": config.responder.auth.model_copy(update={"tokens": tokens})}
            )}
        )  # fmt: skip
        self.app = create_app(
            config, actions=self.actions, readiness=self._readiness, clock=self.clock
        )
        self.client: FlaskClient = viewing(self.app)

    def _readiness(self, check: Check) -> Readiness:
        if not self.ready:
            return Readiness(check.target, False, None, "connection refused")
        return Readiness(check.target, True, 1.0)

    def post(self, path: str, body: Any, token: str = OPERATOR) -> Any:
        return self.client.post(f"/api/v1/{path}", json=body, headers=auth(token))

    def status(self) -> Any:
        return self.client.get("/api/v1/status").get_json()

    def run(self) -> Any:
        return runner_of(self.app).run_now()

    def metric(self, series: str) -> float:
        text = self.client.get("/metrics").get_data(as_text=True)
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        assert match, f"{series} not exposed"
        return float(match.group(1))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(**policy: Any) -> Site:
        made.append(Site(tmp_path, **policy))
        return made[-1]

    yield make
    for one in made:
        runner_of(one.app).stop()


STARTS = 1_799_999_900.0  # the alerts' startsAt: their identity across notifications


def waiting_failover(site: Site) -> str:
    answer = site.client.post("/webhook", json=payload(alert(starts_at=STARTS)), headers=auth())
    (decision,) = answer.get_json()["decisions"]
    assert decision["kind"] == "failover"
    return str(decision["transition_id"])


def test_an_automatic_failover_waits_and_changes_nothing(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    status = s.status()
    assert (status["phase"], status["desired_region"]) == ("awaiting_approval", WEST)
    approval = status["last_transition"]["approval"]
    assert (approval["state"], approval["on_timeout"]) == ("waiting", "abort")
    preview = [
        (p["action"], p["current"], p["desired"], p["would_change"]) for p in approval["preview"]
    ]
    assert preview == [
        ("www", {"region": EAST}, {"region": WEST}, True),
        ("lb", None, {"region": WEST}, True),
    ]
    assert s.run() is None and s.world == {"www": {"region": EAST}}
    repeat = payload(alert(starts_at=STARTS))
    again = s.client.post("/webhook", json=repeat, headers=auth()).get_json()["decisions"][0]
    assert again["kind"] == "duplicate"
    assert s.metric(f'responder_awaiting_approval{{transition="{transition_id}"}}') == 1.0
    assert s.metric('responder_phase{phase="awaiting_approval"}') == 1.0
    page = s.client.get("/").get_data(as_text=True)
    assert f"ddb-responder approve {transition_id}" in page and 'id="preview"' in page


def test_approve_lets_it_act(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    assert s.post("approve", {"transition_id": transition_id, "reason": "go"}).status_code == 202
    done = s.run()
    assert done is not None and (done.id, done.result) == (transition_id, "completed")
    assert s.world == {"www": {"region": WEST}, "lb": {"region": WEST}}
    assert [(o.op, o.by) for o in done.operations] == [("approve", "operator")]
    assert s.metric(f'responder_awaiting_approval{{transition="{transition_id}"}}') == 0.0
    again = s.post("approve", {"transition_id": transition_id})
    assert again.status_code == 409 and "no transition" in again.get_json()["error"]


def test_decline_ends_it_with_nothing_changed(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    refused = s.post("decline", {"transition_id": transition_id})
    assert refused.status_code == 400  # a reason is required
    assert (
        s.post("decline", {"transition_id": transition_id, "reason": "false alarm"}).status_code
        == 202
    )
    done = s.run()
    assert done is not None and done.result == "declined"
    assert done.error == "declined by operator: false alarm"
    assert s.world == {"www": {"region": EAST}}
    assert s.status()["phase"] == "steady" and s.status()["active_region"] == EAST
    blocked = (
        'responder_transitions_total{from_region="us-east-1",kind="failover",'
        'result="blocked",to_region="eu-west-1"}'
    )
    assert s.metric(blocked) == 1.0


def test_a_target_no_longer_ready_blocks_at_approval(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    s.ready = False
    answer = s.post("approve", {"transition_id": transition_id})
    assert answer.status_code == 409
    assert "target no longer ready: eu-west-1: canary read failed" in answer.get_json()["error"]
    done = s.run()
    assert done is not None and done.result == "blocked" and s.world == {"www": {"region": EAST}}


def test_an_operator_request_needs_another_operator(site: Callable[..., Site]) -> None:
    s = site(approval="all")
    answer = s.post("failover", {"to": WEST, "reason": "drill"})
    assert answer.status_code == 202
    transition_id = answer.get_json()["transition"]["id"]
    assert s.status()["phase"] == "awaiting_approval"
    mine = s.post("approve", {"transition_id": transition_id})
    assert mine.status_code == 409 and "another operator's token" in mine.get_json()["error"]
    assert s.post("approve", {"transition_id": transition_id}, token=SECOND).status_code == 202
    done = s.run()
    assert done is not None and done.result == "completed"
    assert [(o.op, o.by) for o in done.operations] == [("approve", "second")]


@pytest.mark.parametrize(
    ("on_timeout", "ready", "result", "reason"),
    [
        ("abort", True, "declined", "no answer within 600s; on_timeout: abort"),
        ("proceed", True, "completed", "no answer within 600s; on_timeout: proceed"),
        ("proceed", False, "blocked", "on_timeout: proceed, but target no longer ready"),
    ],
)
def test_the_timeout_decides_as_configured(
    site: Callable[..., Site], on_timeout: str, ready: bool, result: str, reason: str
) -> None:
    s = site(approval="failover", on_timeout=on_timeout)
    waiting_failover(s)
    s.clock.now += 599
    assert s.run() is None and s.status()["phase"] == "awaiting_approval"
    s.clock.now += 2
    s.ready = ready
    done = s.run()
    assert done is not None and done.result == result
    assert done.approval is not None and reason in (done.approval.reason or "")
    assert done.approval.decided_by == "responder"


@pytest.mark.parametrize("answer", ["approve", "decline"])
def test_an_answer_after_the_deadline_leaves_it_to_on_timeout(
    site: Callable[..., Site], answer: str
) -> None:
    s = site(approval="failover", on_timeout="abort")
    transition_id = waiting_failover(s)
    s.clock.now += 601  # the reconciler has not run since: the deadline passed unseen
    late = s.post(answer, {"transition_id": transition_id, "reason": "late"})
    assert late.status_code == 409 and "approval deadline" in late.get_json()["error"]
    done = s.run()
    assert done is not None and done.result == "declined" and s.world == {"www": {"region": EAST}}
    assert done.approval is not None and done.approval.decided_by == "responder"


@pytest.mark.parametrize("rollback", [False, True])
def test_abort_while_awaiting_approval_ends_it_at_once(
    site: Callable[..., Site], rollback: bool
) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    body = {"transition_id": transition_id, "reason": "not now", "rollback": rollback}
    answer = s.post("abort", body)
    assert answer.status_code == 202
    ended = answer.get_json()["transition"]
    said = "aborted by operator: not now; nothing was applied: nothing to roll back"
    assert (ended["result"], ended["error"]) == ("aborted", said)
    assert ended["approval"]["state"] == "declined"
    assert s.status()["phase"] == "steady" and s.world == {"www": {"region": EAST}}
    (last, *_) = s.client.get("/api/v1/history").get_json()["transitions"]
    assert (last["id"], last["result"], last["error"]) == (transition_id, "aborted", said)
    late = s.post("approve", {"transition_id": transition_id, "reason": "go"})
    assert late.status_code == 409 and "in progress" in late.get_json()["error"]
    again = s.post("abort", {"transition_id": transition_id, "reason": "twice"})
    assert again.status_code == 409


def test_resolved_alerts_do_not_cancel_but_are_shown(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    transition_id = waiting_failover(s)
    resolved = payload(alert(status="resolved", starts_at=STARTS))
    s.client.post("/webhook", json=resolved, headers=auth())
    status = s.status()
    assert status["phase"] == "awaiting_approval"
    assert status["last_transition"]["approval"]["alerts_resolved_at"] is not None
    assert "resolved" in s.client.get("/").get_data(as_text=True)
    assert s.post("approve", {"transition_id": transition_id}).status_code == 202


def test_failover_policy_lets_failbacks_and_operators_through(site: Callable[..., Site]) -> None:
    s = site(approval="failover")
    answer = s.post("failover", {"to": WEST, "reason": "drill"})
    assert answer.status_code == 202 and s.status()["phase"] == "failing_over"


class SlowInspection(MemoryAction):
    """An action whose live read hangs until the test lets it go (an API that stalls)."""

    def __init__(self, name: str, world: dict[str, Any], release: threading.Event) -> None:
        super().__init__(name, world)
        self.release = release

    def inspect(self, region: str, limits: Limits | None = None) -> Inspection:
        self.release.wait(10)  # the webhook must not wait this long
        return super().inspect(region, limits)


def test_the_preview_cap_holds_when_an_inspection_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = 0.5  # PREVIEW_SECONDS, shortened: the rule is the same, the test is quicker
    monkeypatch.setattr(app_module, "PREVIEW_SECONDS", cap)
    release = threading.Event()
    world: dict[str, Any] = {"www": {"region": EAST}}
    actions = [MemoryAction("www", world), SlowInspection("lb", world, release)]
    config = config_at(write_config(tmp_path, policy={"approval": "failover"}))
    made = create_app(config, actions=actions, readiness=lambda c: Readiness(c.target, True, 1.0))
    try:
        started = time.monotonic()
        answer = made.test_client().post("/webhook", json=payload(), headers=auth())
        took = time.monotonic() - started
        assert answer.status_code == 202
        assert took < cap + 2.0, f"the webhook waited {took:.1f} s for a hung inspection"
        status = viewing(made).get("/api/v1/status").get_json()
        preview = {p["action"]: p for p in status["last_transition"]["approval"]["preview"]}
        assert preview["www"]["would_change"] is True
        assert preview["lb"]["problems"][0]["message"] == "no answer in time"
    finally:
        release.set()
        runner_of(made).stop()
