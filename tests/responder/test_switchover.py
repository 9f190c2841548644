"""Switchover's core: the decision (pure), and its course through the reconciler.

The reconciler runs over a real SQLite file; fence and ordinary actions are in-memory
objects, and the drain marker is an in-memory replication whose delivery the test
controls (the drain against real DynamoDB regions is in test_switchover_drain.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from responder.actions.drain import Drain
from responder.actions.fence import FenceValues
from responder.decide.decision import (
    Readiness,
    SwitchoverRequest,
    UnknownRegion,
    decide_operator,
    needs_approval,
    operator_candidates,
)
from responder.execute import operations
from responder.execute.reconciler import Reconciler
from responder.execute.switchover import Course, FencePart, figures
from responder.metrics import ResponderMetrics
from responder.records import report
from responder.state.records import Cause, Freeze, NewTransition, State, TransitionRecord
from responder.state.sqlite.store import SqliteStore
from tests.responder.fakes import EAST, WEST, FileAction, MemoryAction, config
from tests.responder.procs import kill_when_reached, switchover_course
from tests.responder.test_reconciler import RETRY, Clock, drive

POLICY = config(min_dwell_seconds=300).responder.policy
REGIONS = (EAST, WEST)
NOW = 1_800_000_000.0


def state(**changes: Any) -> State:
    base: dict[str, Any] = {
        "active_region": EAST,
        "desired_region": EAST,
        "phase": "steady",
        "frozen": None,
        "in_progress": None,
        "last_transition": None,
        "last_completed_at": None,
        "recent_starts": (),
        "version": 1,
    }
    return State(**{**base, **changes})


def request(to: str = WEST, force: bool = False, problem: str | None = None) -> SwitchoverRequest:
    return SwitchoverRequest(to, "alice", "maintenance", force, problem)


READY = {WEST: Readiness(WEST, True, 0.4)}


def test_a_ready_target_gets_a_switchover() -> None:
    assert operator_candidates(request(), state(), POLICY, REGIONS, NOW)[0].target == WEST
    decision = decide_operator(request(), state(), POLICY, REGIONS, READY, NOW)
    assert (decision.kind, decision.transition_kind) == ("switchover", "switchover")
    assert (decision.from_region, decision.to_region) == (EAST, WEST)
    assert decision.cause.operator == "alice" and not decision.automatic
    assert decision.reason == f"switchover from {EAST} to {WEST}"
    assert needs_approval(decision, config(approval="all").responder.policy)
    assert not needs_approval(decision, config(approval="failover").responder.policy)


@pytest.mark.parametrize(
    ("changes", "plan_problem", "kind", "reason"),
    [
        (
            {"frozen": Freeze("bob", "release week", NOW - 10)},
            None,
            "blocked",
            "frozen by bob: release week (a switchover waits for unfreeze)",
        ),
        (
            {"last_completed_at": NOW - 60},
            None,
            "blocked",
            "dwell: last transition completed 60s ago, minimum is 300s",
        ),
        ({"recent_starts": (NOW - 10,) * 4}, None, "blocked", "cap: 4 transitions in the last"),
        ({}, "the plan for eu-west-1 is not ready: x", "blocked", "the plan for eu-west-1 is"),
        ({"active_region": WEST}, None, "ignored", f"{WEST} is already active"),
    ],
)
def test_gates_stop_a_switchover(
    changes: dict[str, Any], plan_problem: str | None, kind: str, reason: str
) -> None:
    # force moves past a drain that timed out; it opens no gate.
    wanted = request(force=True, problem=plan_problem)
    decision = decide_operator(wanted, state(**changes), POLICY, REGIONS, READY, NOW)
    assert decision.kind == kind and decision.reason.startswith(reason), decision.reason
    assert operator_candidates(wanted, state(**changes), POLICY, REGIONS, NOW) == ()


def test_an_unready_target_blocks_and_an_unknown_one_is_refused() -> None:
    lagging = {WEST: Readiness(WEST, True, 75.0)}
    decision = decide_operator(request(), state(), POLICY, REGIONS, lagging, NOW)
    assert decision.kind == "blocked"
    assert decision.reason == f"no healthy region: {WEST}: data at risk 75.0s exceeds RPO 60s"
    with pytest.raises(UnknownRegion, match="unknown region 'ap-south-1'"):
        decide_operator(request("ap-south-1"), state(), POLICY, REGIONS, READY, NOW)


class MemoryMarker:
    """Replication of the drain marker, delivered to the target when the test says so."""

    def __init__(self, deliver: bool = True) -> None:
        self.deliver = deliver
        self.regions: dict[str, str | None] = {}
        self.writes: list[tuple[str, str]] = []

    def write(self, source: str, transition_id: str, at: float) -> None:
        self.writes.append((source, transition_id))
        self.regions[source] = transition_id
        if self.deliver:
            self.regions[WEST if source == EAST else EAST] = transition_id

    def seen(self, region: str, source: str) -> str | None:
        return self.regions.get(region)


class Site:
    """One read-only flag (the fence) and two ordinary actions, all in one dict."""

    def __init__(self, store: SqliteStore, marker: MemoryMarker, clock: Clock) -> None:
        self.world: dict[str, Any] = {"ro": "0", "www": {"region": EAST}, "env": {"region": EAST}}
        self.fence = FlagAction("ro", self.world)
        self.actions = [MemoryAction("www", self.world), MemoryAction("env", self.world)]
        self.marker = marker
        self.moments: list[float] = []

        def drain(record: TransitionRecord) -> Drain:
            made = Drain(
                marker,  # type: ignore[arg-type]
                record.id,
                EAST,
                WEST,
                2.0,
                clock=lambda: self._tick(clock),
                sleep=lambda seconds: None,
            )
            return made

        self.course = Course(self.actions, [FencePart(self.fence, FenceValues("1", "0"))], drain)
        self.reconciler = Reconciler(
            store, self.actions, RETRY, holder="test", clock=clock, course=self.course
        )

    @staticmethod
    def _tick(clock: Clock) -> float:
        clock.now += 0.25  # each look at the time: a poll of the target
        return clock.now


class FlagAction(MemoryAction):
    """A value set as such (the fence's region argument is its value)."""

    def desired(self, region: str) -> Any:
        return region


def begin(store: SqliteStore, force: bool = False) -> TransitionRecord:
    cause = Cause(operator="alice", reason="maintenance", force=force)
    new = NewTransition("switchover", EAST, WEST, cause, 0.5, False, deadline_at=NOW + 900)
    began = store.begin_transition(new, store.state().version)
    assert began is not None
    return began


@pytest.fixture
def store(tmp_path: Any, clock: Clock) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db", EAST, clock=clock)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def test_fence_drain_move_unfence(store: SqliteStore, clock: Clock) -> None:
    site = Site(store, MemoryMarker(), clock)
    began = begin(store)
    done = drive(site.reconciler, clock)
    assert done is not None and (done.id, done.result, done.error) == (began.id, "completed", None)
    assert [(s.action, s.result) for s in done.steps] == [
        ("fence:ro", "applied"),
        ("drain", "applied"),
        ("www", "applied"),
        ("env", "applied"),
        ("unfence:ro", "applied"),
    ]
    assert site.fence.applied == ["1", "0"]  # fenced, then open again
    assert site.marker.writes == [(EAST, began.id)]
    assert site.world == {"ro": "0", "www": {"region": WEST}, "env": {"region": WEST}}
    assert store.state().active_region == WEST
    found = figures(done)
    assert found is not None and found["rpo_seconds"] == 0.0 and found["drained"] is True
    assert found["write_unavailable_seconds"] == pytest.approx(
        done.steps[-1].at - (done.steps[0].started_at or 0.0)
    )
    shown = report.build(done, config().responder.report, clock.now)
    assert (shown["rpo_seconds"], shown["switchover"]["drained"]) == (0.0, True)
    assert shown["drain_seconds"] is not None and shown["write_unavailable_seconds"] >= 0


def test_metrics_carry_the_newest_switchovers_figures(store: SqliteStore, clock: Clock) -> None:
    """The dashboard's switchover row: time, write unavailability and drain, once it ended."""
    site = Site(store, MemoryMarker(), clock)
    metrics = ResponderMetrics(CollectorRegistry(), (EAST, WEST), ("www", "env"))
    begin(store)
    metrics.refresh(store.state())  # under way: no figures yet

    def figure(name: str) -> float | None:
        labels = {"kind": "switchover", "to_region": WEST, "figure": name}
        return metrics.registry.get_sample_value("responder_switchover_seconds", labels)

    assert figure("duration") is None
    done = drive(site.reconciler, clock)
    assert done is not None and done.finished_at is not None
    metrics.refresh(store.state())
    found = figures(done)
    assert found is not None
    assert figure("duration") == pytest.approx(done.finished_at - done.started_at)
    assert figure("write_unavailable") == pytest.approx(found["write_unavailable_seconds"])
    assert figure("drain") == pytest.approx(found["drain_seconds"])
    assert (figure("duration") or 0) > 0 and (figure("write_unavailable") or 0) > 0


def test_a_drain_that_times_out_unfences_and_moves_nothing(
    store: SqliteStore, clock: Clock
) -> None:
    site = Site(store, MemoryMarker(deliver=False), clock)
    began = begin(store)
    done = drive(site.reconciler, clock)
    assert done is not None and (done.id, done.result) == (began.id, "blocked")
    assert done.error is not None and done.error.startswith(
        f"drain timed out: {WEST} did not show the marker written in {EAST} within 2s"
    )
    assert "unfenced, nothing moved" in done.error
    assert [(s.action, s.result) for s in done.steps] == [
        ("fence:ro", "applied"),
        ("drain", "applied"),
        ("unfence:ro", "applied"),
    ]
    assert done.steps[1].after["drained"] is False
    assert site.world == {"ro": "0", "www": {"region": EAST}, "env": {"region": EAST}}
    assert store.state().active_region == EAST
    shown = report.build(done, config().responder.report, clock.now)
    assert shown["rpo_seconds"] is None and shown["switchover"]["moved_at"] is None
    assert any(note.startswith("nothing moved: ") for note in shown["notes"])


def test_forced_it_moves_past_the_drain_and_says_what_was_at_risk(
    store: SqliteStore, clock: Clock
) -> None:
    site = Site(store, MemoryMarker(deliver=False), clock)
    begin(store, force=True)
    done = drive(site.reconciler, clock)
    assert done is not None and done.result == "completed"
    assert [s.action for s in done.steps] == ["fence:ro", "drain", "www", "env", "unfence:ro"]
    assert site.world == {"ro": "0", "www": {"region": WEST}, "env": {"region": WEST}}
    shown = report.build(done, config().responder.report, clock.now)
    assert shown["rpo_seconds"] == 0.5  # the lag the decision measured, not 0
    assert any(note.startswith("forced past a drain") for note in shown["notes"])


def test_an_abort_with_rollback_opens_the_fence(store: SqliteStore, clock: Clock) -> None:
    site = Site(store, MemoryMarker(), clock)
    site.actions[1].failures = [RuntimeError("boom")]  # env stalls: permanent
    began = begin(store)
    assert drive(site.reconciler, clock) is None
    assert site.world["ro"] == "1" and site.world["www"] == {"region": WEST}
    operations.apply(
        store, lambda r: operations.abort(r, "alice", "give up", True, clock.now), began.id
    )
    done = drive(site.reconciler, clock)
    assert done is not None and done.result == "aborted"
    assert site.world == {"ro": "0", "www": {"region": EAST}, "env": {"region": EAST}}
    assert [s.action for s in done.steps if s.rollback] == ["env", "www", "fence:ro"]


def test_an_abort_without_rollback_says_the_fence_is_left_on(
    store: SqliteStore, clock: Clock
) -> None:
    site = Site(store, MemoryMarker(), clock)
    site.actions[1].failures = [RuntimeError("boom")]
    began = begin(store)
    assert drive(site.reconciler, clock) is None
    operations.apply(
        store, lambda r: operations.abort(r, "alice", "later", False, clock.now), began.id
    )
    done = drive(site.reconciler, clock)
    assert done is not None and done.result == "aborted"
    assert done.error == (
        "aborted by alice: later; the fence is left on (ro): writes stay refused until it is "
        "opened (it shows as drift; repair, or a switchover, opens it)"
    )
    assert site.world["ro"] == "1"


def test_a_crash_after_the_fence_resumes_without_fencing_twice(
    store: SqliteStore, clock: Clock
) -> None:
    marker = MemoryMarker()
    first = Site(store, marker, clock)
    first.actions[0].failures = [RuntimeError("killed")]  # stands in for a crash at www
    began = begin(store)
    assert drive(first.reconciler, clock) is None
    operations.apply(store, lambda r: operations.retry(r, "alice", "restarted", clock.now))
    again = Site(store, marker, clock)  # a new process: its own objects, the same world
    again.world.update(first.world)
    done = drive(again.reconciler, clock)
    assert done is not None and (done.id, done.result) == (began.id, "completed")
    assert again.fence.applied == ["0"]  # only the unfence: the fence step was journaled
    assert marker.writes == [(EAST, began.id)]  # the drain is not redone either


def test_other_kinds_run_only_their_actions(store: SqliteStore, clock: Clock) -> None:
    site = Site(store, MemoryMarker(), clock)
    assert site.course.steps(
        TransitionRecord("t", "failover", EAST, WEST, "in_progress", NOW, None, Cause(), 0, False)
    ) == tuple(site.actions)


def test_killed_mid_switchover_it_resumes_with_the_fence_on_and_opens_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(db, EAST)
    began = begin(store)
    kill_when_reached("switchover", db, tmp_path, "second.reached")
    fence = FileAction("ro", tmp_path)
    assert fence.current() == {"region": "1"}  # killed with the fence on: writes refused
    assert list(store.completed_steps(began.id)) == ["fence:ro", "drain", "first"]
    # Restarted past the dead holder's lease: it finishes the same switchover.
    later = SqliteStore(db, EAST, clock=lambda: time.time() + 60)
    actions, course = switchover_course(tmp_path, block=False)
    rec = Reconciler(later, actions, RETRY, holder="restarted", course=course)
    done = rec.run_once()
    assert done is not None and (done.id, done.result) == (began.id, "completed")
    assert [s.action for s in done.steps] == ["fence:ro", "drain", "first", "second", "unfence:ro"]
    assert fence.current() == {"region": "0"}
    assert fence.apply_count() == 2  # fenced once, opened once: nothing redone
    assert (tmp_path / "marker.writes").read_text().splitlines() == [began.id]
    assert FileAction("first", tmp_path).apply_count() == 1
    assert later.state().active_region == WEST
