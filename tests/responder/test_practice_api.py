"""Practice runs through the app: POST /api/v1/practice/run, the legs, GET /api/v1/practice.

Alertmanager and Prometheus are the injected Sources here (their HTTP side has its own
tests in test_practice_sources.py); the clock is the test's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from responder.actions.fence import FenceValues
from responder.app import create_app, plan_runner_of, runner_of, store_of
from responder.intake import practice_sources
from responder.intake.practice import EXTENSION, Practices, Sources
from responder.model.alerts import Alert, parse_alert
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready
from tests.responder.test_switchover import FlagAction, MemoryMarker
from tests.responder.weblib import (
    OPERATOR,
    VIEWER,
    alert,
    auth,
    closed_url,
    config_at,
    payload,
    viewing,
    write_config,
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Site:
    """A fenced app with a practice config; alerts and checks set by the test."""

    def __init__(
        self, tmp_path: Path, policy: Any = None, notify: Any = None, **practice: Any
    ) -> None:
        self.world: dict[str, Any] = {"ro": "0"}
        self.clock = Clock()
        self.firing: list[str] = []
        self.checks: dict[str, bool | None] = {}
        self.asked: list[Sequence[str]] = []
        self.alerts: list[Alert] = []
        extra = {
            "practice": {"hold_seconds": 60, **practice},
            **({"notify": notify} if notify else {}),
        }
        config = config_at(write_config(tmp_path, extra=extra, policy=policy))
        self.app = create_app(
            config,
            actions=[MemoryAction("www", self.world)],
            readiness=always_ready,
            plan_dir=tmp_path / "plan",
            fences=[(FlagAction("ro", self.world), FenceValues("1", "0"))],
            marker=MemoryMarker(),  # type: ignore[arg-type]
            clock=self.clock,
        )
        self.practices: Practices = self.app.extensions[EXTENSION]
        self.practices.sources = Sources(
            self._firing, lambda q: self.checks.get(q, True), lambda _: list(self.alerts)
        )
        self.client: FlaskClient = viewing(self.app)
        plan_runner_of(self.app).run_once()

    def _firing(self, filters: Sequence[str]) -> list[str]:
        self.asked.append(tuple(filters))
        return list(self.firing)

    def run(self, body: Any, token: str = OPERATOR) -> Any:
        return self.client.post("/api/v1/practice/run", json=body, headers=auth(token))

    def status(self) -> Any:
        return self.client.get("/api/v1/practice").get_json()

    def settle(self) -> None:
        """The reconciler finishes the leg under way; then a practice round."""
        done = runner_of(self.app).run_now()
        assert done is None or done.result == "completed", done
        self.practices.tick()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    yield made
    runner_of(made.app).stop()


def test_a_run_goes_holds_comes_back_and_succeeds(site: Site) -> None:
    answer = site.run({"now": True, "hold_seconds": 10})
    assert answer.status_code == 202, answer.get_json()
    site.settle()
    assert site.world["www"] == {"region": WEST} and site.world["ro"] == "0"
    current = site.status()["current"]
    assert (current["phase"], current["target"], current["home"]) == ("holding", WEST, EAST)
    site.clock.now += 9
    site.practices.tick()
    assert site.status()["current"]["phase"] == "holding"
    site.clock.now += 1
    site.practices.tick()  # the hold is over: leg 2 begins
    assert site.status()["current"]["phase"] == "returning"
    site.settle()
    shown = site.status()
    assert shown["current"] is None and shown["last_success"] is not None
    assert not shown["overdue"]
    (run,) = shown["runs"]
    assert (run["outcome"], run["reason"], len(run["legs"])) == ("SUCCEEDED", "held 10 s", 2)
    assert site.world["www"] == {"region": EAST}
    for leg in run["legs"]:
        report = site.client.get(f"/api/v1/transitions/{leg}/report").get_json()
        assert report["transition"]["kind"] == "practice" and report["rpo_seconds"] == 0.0
    text = site.client.get("/metrics").get_data(as_text=True)
    assert 'responder_practice_runs_total{outcome="SUCCEEDED"} 1.0' in text
    assert "responder_practice_last_success_timestamp_seconds " in text


def test_a_false_outcome_check_ends_the_hold_interrupted(tmp_path: Path) -> None:
    site = Site(tmp_path, outcome_checks=["probe_success == 1"], prometheus_url="http://p:9")
    try:
        assert site.run({"now": True}).status_code == 202
        site.settle()
        site.checks["probe_success == 1"] = False
        site.clock.now += 15
        site.practices.tick()
        site.settle()
        (run,) = site.status()["runs"]
        assert (run["outcome"], run["reason"]) == (
            "INTERRUPTED",
            "outcome check false: probe_success == 1",
        )
        assert site.world["www"] == {"region": EAST}
    finally:
        runner_of(site.app).stop()


def test_a_blocking_alert_blocks_with_nothing_moved(tmp_path: Path) -> None:
    site = Site(tmp_path, blocking_alerts=['severity="critical"'], alertmanager_url="http://a:9")
    try:
        site.firing = ["HighErrorRate"]
        answer = site.run({"now": True})
        assert answer.status_code == 409
        assert answer.get_json()["error"] == "blocking alert active: HighErrorRate"
        assert site.asked == [('severity="critical"',)]
        (run,) = site.status()["runs"]
        assert run["outcome"] == "BLOCKED" and "www" not in site.world
        history = site.client.get("/api/v1/history").get_json()
        assert history["transitions"] == []
    finally:
        runner_of(site.app).stop()


def test_a_real_region_down_ends_the_run_where_it_is(tmp_path: Path) -> None:
    site = Site(tmp_path, alertmanager_url="http://a:9")
    try:
        assert site.run({"now": True}).status_code == 202
        site.settle()
        site.firing = ["DynamoDBRegionDown{region=us-east-1}"]
        site.practices.tick()
        (run,) = site.status()["runs"]
        assert run["outcome"] == "INTERRUPTED" and "DynamoDBRegionDown" in run["reason"]
        assert site.world["www"] == {"region": WEST}  # no leg back: the failover logic decides
        assert site.asked[-1] == (
            '{alertname="DynamoDBRegionDown",region="us-east-1"}',
            '{alertname="DynamoDBRegionDown",region="eu-west-1"}',
        )
    finally:
        runner_of(site.app).stop()


@pytest.mark.parametrize("reconciling", [True, False])
def test_a_real_region_down_during_the_leg_home_aborts_it_and_hands_over(
    tmp_path: Path, reconciling: bool
) -> None:
    """The region the run holds in goes down as the leg home begins: the leg (whose drain
    could not finish there) is aborted, and the failover logic moves traffic out, at once,
    not when Alertmanager repeats the notification it sent while the leg was in the way.

    reconciling: the reconciler holds the lease, driving the leg's step, as the round looks."""
    site = Site(tmp_path, alertmanager_url="http://a:9")
    try:
        assert site.run({"now": True, "hold_seconds": 10}).status_code == 202
        site.settle()
        site.clock.now += 10
        site.practices.tick()  # the hold is over: leg 2 begins
        (run,) = site.status()["runs"]
        assert run["phase"] == "returning"
        leg = run["legs"][1]
        # The webhook's failover meets the leg: ignored, as any alert during a transition.
        down = alert(region=WEST)
        posted = site.client.post("/webhook", json=payload(down), headers=auth())
        (decision,) = posted.get_json()["decisions"]
        assert decision["kind"] == "ignored" and "already in progress" in decision["reason"]
        site.firing = ["DynamoDBRegionDown{region=eu-west-1}"]
        site.alerts = [parse_alert(down, "alerts[0]")]
        store = store_of(site.app)
        lease = store.acquire_lease("a reconciler", 60) if reconciling else None
        site.practices.tick()
        abort = store.transition(leg).abort
        assert abort is not None and abort.rollback, abort
        if lease is not None:
            store.release_lease(lease)
        runner_of(site.app).run_now()  # the leg rolls back: its fence opens
        assert site.status()["current"]["phase"] == "ending"
        site.practices.tick()  # ends the run, hands the alert over: a failover begins
        site.settle()
        (run,) = site.status()["runs"]
        assert (run["phase"], run["outcome"]) == ("ended", "INTERRUPTED"), run
        assert run["reason"].startswith("DynamoDBRegionDown firing"), run
        last = site.client.get("/api/v1/status").get_json()["last_transition"]
        assert (last["kind"], last["from_region"], last["to_region"]) == ("failover", WEST, EAST)
        assert last["result"] == "completed"
        assert site.world["www"] == {"region": EAST} and site.world["ro"] == "0"
    finally:
        runner_of(site.app).stop()


@pytest.mark.parametrize(
    ("body", "token", "status", "message"),
    [
        ({"now": True}, VIEWER, 403, "operator"),
        ({"now": "yes"}, OPERATOR, 400, "now must be true or false"),
        ({"now": True, "hold_seconds": 0}, OPERATOR, 400, "hold_seconds must be"),
        ({"now": True, "hold_seconds": True}, OPERATOR, 400, "hold_seconds must be"),
        ({}, OPERATOR, 409, "outside the practice schedule"),
    ],
)
def test_refusals(site: Site, body: Any, token: str, status: int, message: str) -> None:
    answer = site.run(body, token)
    assert answer.status_code == status
    assert message in answer.get_json()["error"]
    assert site.status()["runs"] == []


def test_one_run_at_a_time(site: Site) -> None:
    assert site.run({"now": True}).status_code == 202
    again = site.run({"now": True})
    assert again.status_code == 409 and "already under way" in again.get_json()["error"]


def test_an_alertmanager_that_does_not_answer_blocks_the_start_but_ends_no_run(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path, blocking_alerts=['severity="critical"'], alertmanager_url=closed_url())
    try:
        site.practices.sources = practice_sources.sources(site.practices.config)
        answer = site.run({"now": True})
        assert answer.status_code == 409
        assert "Alertmanager did not answer" in answer.get_json()["error"]
        assert "www" not in site.world
    finally:
        runner_of(site.app).stop()
    (tmp_path / "2").mkdir()
    other = Site(tmp_path / "2", alertmanager_url=closed_url())
    try:
        other.practices.sources = practice_sources.sources(other.practices.config)
        assert other.run({"now": True}).status_code == 202
        other.settle()
        other.practices.tick()  # the outage query fails: not an outage, the hold goes on
        assert other.status()["current"]["phase"] == "holding"
    finally:
        runner_of(other.app).stop()


def test_the_way_home_waits_for_the_hold_not_dwell_and_for_a_freeze(tmp_path: Path) -> None:
    site = Site(tmp_path, policy={"min_dwell_seconds": 300})
    try:
        assert site.run({"now": True, "hold_seconds": 10}).status_code == 202
        site.settle()
        freeze = site.client.post("/api/v1/freeze", json={"reason": "x"}, headers=auth(OPERATOR))
        assert freeze.status_code == 200, freeze.get_json()
        site.clock.now += 10
        site.practices.tick()  # the freeze refuses the way home: no BLOCKED run for it
        (run,) = site.status()["runs"]
        assert (run["phase"], run["outcome"]) == ("holding", None)
        site.client.post("/api/v1/unfreeze", json={"reason": "x"}, headers=auth(OPERATOR))
        site.practices.tick()  # asked again only after check_interval_seconds
        assert site.status()["current"]["phase"] == "holding"
        site.clock.now += 15
        site.practices.tick()
        site.settle()
        (run,) = site.status()["runs"]
        assert run["outcome"] == "SUCCEEDED"  # within the 300 s dwell
        assert site.world["www"] == {"region": EAST}
    finally:
        runner_of(site.app).stop()


def test_each_leg_and_a_blocked_start_are_notified(tmp_path: Path) -> None:
    (tmp_path / "chat-url").write_text("http://127.0.0.1:9/hook\n")
    chat = {"name": "chat", "type": "slack", "webhook_url": {"file": str(tmp_path / "chat-url")}}
    site = Site(
        tmp_path,
        notify={"receivers": [chat]},
        blocking_alerts=['severity="critical"'],
        alertmanager_url="http://a:9",
    )
    try:
        site.firing = ["HighErrorRate"]
        assert site.run({"now": True}).status_code == 409
        site.firing = []
        assert site.run({"now": True, "hold_seconds": 10}).status_code == 202
        site.settle()
        site.clock.now += 10
        site.practices.tick()
        site.settle()
        store = store_of(site.app)
        told = [n.data["summary"] for n in store.notices(site.clock.now + 3600, limit=50)]
        assert any("practice" in t and "was blocked: blocking alert active" in t for t in told)
        assert any("leg 1 of 2" in t and "started" in t for t in told), told
        assert any("leg 2 of 2: SUCCEEDED (held 10 s)" in t for t in told), told
    finally:
        runner_of(site.app).stop()


def test_the_schedule_starts_one_run_in_its_slot(tmp_path: Path) -> None:
    began = datetime.fromtimestamp(time.time() - 300, UTC).replace(second=0, microsecond=0)
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[began.weekday()]
    schedule = {"weekday": weekday, "time": began.strftime("%H:%M")}
    site = Site(tmp_path, enabled=True, schedule=schedule)
    try:
        now = site.clock.now
        site.clock.now = began.timestamp() - 60
        site.practices.tick()
        assert site.status()["runs"] == []
        assert site.status()["next_start"] == began.strftime("%Y-%m-%dT%H:%M:00.000Z")
        site.clock.now = now
        site.practices.tick()
        (run,) = site.status()["runs"]
        assert run["outcome"] is None, run["reason"]
        assert (run["by"], run["phase"]) == ("practice-schedule", "moving")
        site.settle()
        site.clock.now += 60
        site.practices.tick()
        site.settle()
        assert site.status()["runs"][0]["outcome"] == "SUCCEEDED"
        site.clock.now += 60
        site.practices.tick()  # still in the slot: no second run
        assert len(site.status()["runs"]) == 1
    finally:
        runner_of(site.app).stop()
