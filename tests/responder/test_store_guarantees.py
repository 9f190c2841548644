"""The responder's state guarantees, one suite run against every backend.

sqlite: a file in tmp_path. dynamodb: a control table on a moto server process
(one per module, a fresh table per test); the fixtures are in conftest.py. Each test
asserts something a store without compare-and-set, fencing or durable journaling
would get wrong.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ddb_failover.config import Retry
from responder.execute.reconciler import Reconciler
from responder.intake.handling import handle_alerts
from responder.records.audit import verify
from responder.state.outbox import Delivery, Notice
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    Freeze,
    InFlight,
    Lease,
    NewTransition,
    Operation,
    StepRecord,
)
from responder.state.store import LeaseLost, StateStore, UnknownTransition
from sandbox.net import wait_until
from tests.responder.fakes import (
    EAST,
    KEYS,
    WEST,
    MemoryAction,
    always_ready,
    config,
    region_down_alerts,
)
from tests.responder.stores import Backend, Clock

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REPO = Path(__file__).resolve().parents[2]


def new(to: str = WEST, dry_run: bool = False, fingerprint: str = "abc") -> NewTransition:
    cause = Cause(alerts=({"fingerprint": fingerprint, "key": f"{fingerprint}@t"},))
    return NewTransition("failover", EAST, to, cause, 4.5, dry_run)


def lease_for(store: StateStore, holder: str = "me", ttl: float = 10) -> Lease:
    lease = store.acquire_lease(holder, ttl)
    assert lease is not None
    return lease


def test_new_store_starts_steady_on_the_primary(store: StateStore) -> None:
    state = store.state()
    assert (state.active_region, state.desired_region, state.phase) == (EAST, EAST, "steady")
    assert state.frozen is None and state.in_progress is None and state.last_transition is None
    assert store.status() == {
        "active_region": EAST,
        "desired_region": EAST,
        "phase": "steady",
        "frozen": False,
        "freeze": None,
        "last_transition": None,
        "actions": {},
    }
    store.ping()


def test_state_survives_reopening(backend: Backend, store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    store.finish_transition(began.id, "completed", lease_for(store).token)
    # The primary argument only seeds a new store.
    again = backend.open(clock)
    assert again.state().active_region == WEST
    assert again.transition(began.id).result == "completed"


def test_begin_transition_is_a_compare_and_set(store: StateStore) -> None:
    version = store.state().version
    first = store.begin_transition(new(), version)
    assert first is not None and first.in_progress
    assert store.begin_transition(new(), version) is None  # stale version
    state = store.state()
    assert state.version == version + 1
    assert store.begin_transition(new(), state.version) is None  # one in progress
    assert (state.phase, state.desired_region, state.in_progress) == ("failing_over", WEST, first)


def test_finish_moves_the_active_region(store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    lease = lease_for(store)
    clock.now += 3
    done = store.finish_transition(began.id, "completed", lease.token)
    assert (done.result, done.finished_at) == ("completed", clock.now)
    state = store.state()
    assert (state.active_region, state.phase, state.last_completed_at) == (
        WEST,
        "steady",
        clock.now,
    )
    with pytest.raises(UnknownTransition):
        store.finish_transition(began.id, "completed", lease.token)
    with pytest.raises(UnknownTransition):
        store.transition("t-nope")


def test_dry_run_and_failed_transitions_keep_the_active_region(store: StateStore) -> None:
    lease = lease_for(store)
    dry = store.begin_transition(new(dry_run=True), 0)
    assert dry is not None and dry.dry_run
    store.finish_transition(dry.id, "completed", lease.token)
    assert store.state().active_region == EAST
    failed = store.begin_transition(new(), store.state().version)
    assert failed is not None
    store.finish_transition(failed.id, "failed", lease.token, "www: 403 forbidden")
    state = store.state()
    # A failed transition leaves the world part-way: desired is not active, and a human looks.
    assert (state.active_region, state.desired_region, state.phase) == (EAST, WEST, "blocked")
    assert state.last_transition is not None and state.last_transition.error == "www: 403 forbidden"


def test_journal_and_completed_steps(backend: Backend, store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    lease = lease_for(store)
    store.journal_step(
        began.id, StepRecord("www", "applied", {"ip": "a"}, {"ip": "b"}), lease.token
    )
    store.journal_step(began.id, StepRecord("lb", "failed", error="boom"), lease.token)
    # What a restarted process (or another replica) reads back from storage.
    done = backend.open(clock).completed_steps(began.id)
    assert list(done) == ["www"]
    assert (done["www"].before, done["www"].after) == ({"ip": "a"}, {"ip": "b"})
    assert done["www"].fencing_token == lease.token
    results = store.action_results()
    assert (results["lb"]["result"], results["lb"]["error"]) == ("failed", "boom")
    assert results["www"]["transition_id"] == began.id
    assert RFC3339.match(results["www"]["at"])
    assert [s.action for s in store.state().in_progress.steps] == ["www", "lb"]  # type: ignore[union-attr]


def test_lease_and_fencing(store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    old = lease_for(store, "a")
    assert store.acquire_lease("b", 10) is None  # held
    assert store.acquire_lease("a", 10) == old  # re-acquiring our own keeps the token
    clock.now += 11  # a paused past its lease
    taken = lease_for(store, "b")
    assert taken.token == old.token + 1
    with pytest.raises(LeaseLost):
        store.journal_step(began.id, StepRecord("www", "applied"), old.token)
    with pytest.raises(LeaseLost):
        store.renew_lease(old, 10)
    with pytest.raises(LeaseLost):
        store.finish_transition(began.id, "completed", old.token)
    store.journal_step(began.id, StepRecord("www", "applied"), taken.token)
    store.release_lease(old)  # not ours any more: no effect
    assert store.acquire_lease("c", 10) is None
    store.release_lease(taken)
    third = lease_for(store, "c")
    assert third.token == taken.token + 1
    # The stale holder left no trace: one step, journaled under the new token.
    record = store.transition(began.id)
    assert [s.fencing_token for s in record.steps] == [taken.token]
    assert record.in_progress and store.state().active_region == EAST


def test_a_stale_holder_cannot_finish_what_the_new_one_finished(
    store: StateStore, clock: Clock
) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    old = lease_for(store, "a")
    clock.now += 11
    taken = lease_for(store, "b")
    store.finish_transition(began.id, "completed", taken.token)
    with pytest.raises(LeaseLost):
        store.finish_transition(began.id, "failed", old.token, "late")
    record = store.transition(began.id)
    assert (record.result, record.error) == ("completed", None)


def test_an_expired_lease_cannot_journal(store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    lease = lease_for(store, "a", 5)
    clock.now += 5
    with pytest.raises(LeaseLost):
        store.journal_step(began.id, StepRecord("www", "applied"), lease.token)
    with pytest.raises(LeaseLost):
        store.renew_lease(lease, 5)
    # Expired but not taken: re-acquiring gives a new token, the old one stays dead.
    again = lease_for(store, "a", 5)
    assert again.token == lease.token + 1
    assert store.transition(began.id).steps == ()


def test_renewal_extends_the_lease(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, "a", 5)
    clock.now += 4
    renewed = store.renew_lease(lease, 5)
    assert (renewed.token, renewed.expires_at) == (lease.token, clock.now + 5)
    clock.now += 4  # past the first expiry, within the renewed one
    assert store.acquire_lease("b", 5) is None


def test_an_attempt_in_flight_is_fenced_changes_the_revision_and_clears_with_its_outcome(
    store: StateStore, clock: Clock
) -> None:
    began = store.begin_transition(new(), store.state().version)
    assert began is not None
    lease = lease_for(store, "a", 5)
    marker = InFlight("www", 1, clock.now, "a", lease.token)
    store.mark_in_flight(began.id, marker, lease.token)
    marked = store.transition(began.id)
    assert marked.in_flight == marker and marked.revision > began.revision
    assert store.state().in_progress.in_flight == marker  # type: ignore[union-attr]
    # An attempt past its timeout stays in flight while its failure is recorded.
    attempts = Attempts("www", False, 1, clock.now, clock.now, "timed out", clock.now + 1)
    store.record_attempts(began.id, attempts, lease.token, (), marker)
    assert store.transition(began.id).in_flight == marker
    store.mark_in_flight(began.id, None, lease.token)
    cleared = store.transition(began.id)
    assert cleared.in_flight is None and cleared.revision > marked.revision
    store.mark_in_flight(began.id, marker, lease.token)
    store.journal_step(began.id, StepRecord("www", "applied"), lease.token)
    assert store.transition(began.id).in_flight is None  # returned: its outcome clears it
    clock.now += 5
    with pytest.raises(LeaseLost):
        store.mark_in_flight(began.id, marker, lease.token)
    lease = lease_for(store, "b", 5)
    store.mark_in_flight(began.id, marker, lease.token)
    finished = store.finish_transition(began.id, "completed", lease.token)
    assert finished.in_flight is None and store.transition(began.id).in_flight is None
    assert verify(store.audit_log(), KEYS).ok


def test_journal_needs_a_transition_in_progress(store: StateStore) -> None:
    lease = lease_for(store)
    with pytest.raises(UnknownTransition):
        store.journal_step("t-missing", StepRecord("www", "applied"), lease.token)


def test_freeze_and_unfreeze(store: StateStore) -> None:
    version = store.state().version
    frozen = store.freeze("alice", "maintenance")
    assert frozen.frozen is not None and (frozen.frozen.by, frozen.frozen.reason) == (
        "alice",
        "maintenance",
    )
    assert frozen.phase == "blocked" and frozen.version == version + 1
    # A second freeze keeps the first reason: it explains why transitions stopped.
    again = store.freeze("bob", "other")
    assert again.frozen is not None and again.frozen.by == "alice"
    assert again.version == version + 1
    thawed = store.unfreeze("alice", "done")
    assert (thawed.frozen, thawed.phase, thawed.version) == (None, "steady", version + 2)
    assert store.unfreeze("alice", "again").version == version + 2  # idempotent
    assert store.status()["frozen"] is False


def test_blocked_decision_with_freeze(store: StateStore, clock: Clock) -> None:
    cause = Cause(alerts=({"fingerprint": "f1", "key": "f1@t"},))
    record = store.record_decision(
        "blocked",
        "cap: 4 transitions",
        cause,
        region=EAST,
        transition_kind="failover",
        freeze=Freeze("responder", "cap: 4 transitions", clock.now, automatic=True),
    )
    state = store.state()
    assert state.frozen is not None and state.frozen.automatic and state.phase == "blocked"
    assert store.history()["decisions"][0]["id"] == record.id
    # A second freezing decision while frozen is still recorded; the first freeze stays.
    clock.now += 1
    second = store.record_decision(
        "blocked",
        "cap again",
        cause,
        region=EAST,
        transition_kind="failover",
        freeze=Freeze("responder", "cap again", clock.now, automatic=True),
    )
    assert [d["id"] for d in store.history()["decisions"]] == [second.id, record.id]
    assert store.state().frozen.reason == "cap: 4 transitions"  # type: ignore[union-attr]


def test_a_blocked_transition_shows_until_its_alerts_resolve(
    store: StateStore, clock: Clock
) -> None:
    firing = Cause(alerts=({"fingerprint": "f1", "key": "f1@t", "status": "firing"},))
    store.record_decision("blocked", "no healthy region", firing, transition_kind="failover")
    assert store.state().phase == "blocked"
    clock.now += 1
    resolved = Cause(alerts=({"fingerprint": "f1", "key": "f1@t", "status": "resolved"},))
    store.record_decision("ignored", "alerts resolved", resolved)
    assert store.state().phase == "steady"


def test_history_shape_newest_first(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=1000)
    ids = []
    for i in range(3):
        began = store.begin_transition(new(fingerprint=f"f{i}"), store.state().version)
        assert began is not None
        ids.append(began.id)
        store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
        clock.now += 1
        store.finish_transition(began.id, "completed", lease.token)
    store.record_decision("ignored", "alerts resolved", Cause())
    clock.now += 1
    store.record_decision("duplicate", "already in progress", Cause(), region=EAST)
    history = store.history(limit=2)
    assert [t["id"] for t in history["transitions"]] == ids[::-1][:2]
    transition = history["transitions"][0]
    assert set(transition) >= {
        "id",
        "kind",
        "from_region",
        "to_region",
        "result",
        "started_at",
        "finished_at",
        "cause",
        "data_at_risk_seconds",
        "steps",
    }
    assert RFC3339.match(transition["started_at"]) and RFC3339.match(transition["finished_at"])
    assert transition["cause"]["alerts"][0]["fingerprint"] == "f2"
    assert transition["data_at_risk_seconds"] == 4.5
    assert (transition["from_region"], transition["to_region"]) == (EAST, WEST)
    assert transition["steps"] == [
        {
            "action": "www",
            "result": "applied",
            "before": 1,
            "after": 2,
            "error": None,
            "at": transition["steps"][0]["at"],
            "attempts": 1,
            "rollback": False,
            "started_at": None,
            "failures": [],
        }
    ]
    assert (transition["attempts"], transition["operations"]) == (None, [])
    assert [d["kind"] for d in history["decisions"]] == ["duplicate", "ignored"]
    assert history["decisions"][0]["reason"] == "already in progress"
    assert history["decisions"][0]["region"] == EAST
    assert len(store.history(limit=100)["transitions"]) == 3
    json.dumps(history)  # the web layer serialises it as is


def test_recent_starts_cover_the_last_hour(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=10**6)
    starts = []
    for i in range(3):
        began = store.begin_transition(new(fingerprint=f"f{i}"), store.state().version)
        assert began is not None
        starts.append(clock.now)
        store.finish_transition(began.id, "completed", lease.token)
        clock.now += 1000
    assert sorted(store.state().recent_starts) == starts


def test_one_of_many_contenders_takes_an_expired_lease(store: StateStore, clock: Clock) -> None:
    lease_for(store, "dead", 5)
    clock.now += 6
    won: list[Lease] = []
    barrier = threading.Barrier(8)

    def contend(name: str) -> None:
        barrier.wait()
        lease = store.acquire_lease(name, 5)
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and won[0].token == 2


def test_same_notification_from_threads_and_processes_gives_one_transition(
    backend: Backend, tmp_path: Path
) -> None:
    """Two Alertmanagers, re-sends, gunicorn workers, replicas: the CAS lets exactly one win."""
    go = tmp_path / "go"
    store = backend.open()
    store.state()  # the store exists before the race, as it does once a responder has started
    threads_per_process = n = 6
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.responder.procs", "race", backend.spec, str(go), str(n)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        local: list[str] = []
        alerts, cfg = region_down_alerts(), config()

        def one() -> None:
            local.append(handle_alerts(alerts, store, cfg, always_ready, time.time()).decision.kind)

        workers = [threading.Thread(target=one) for _ in range(threads_per_process)]
        go.write_text("go")
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        kinds = list(local)
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0
            kinds += json.loads(out.strip().splitlines()[-1])
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    total = threads_per_process * 4
    assert len(kinds) == total
    assert kinds.count("failover") == 1
    assert kinds.count("duplicate") == total - 1
    history = store.history(limit=100)
    assert len(history["transitions"]) == 1
    # Each duplicate is counted: as a decision, or as a repeat of one (same reason).
    assert sum(d["count"] for d in history["decisions"]) == total - 1
    assert {d["kind"] for d in history["decisions"]} == {"duplicate"}
    # Every writer appended to one chain, none lost to a race: genesis, begun, each decision
    # (a repeat is a tally on its decision, not an event).
    verdict = verify(store.audit_log(), KEYS)
    assert verdict.ok, verdict.problems
    assert verdict.events == 2 + len(history["decisions"])


def test_a_live_holder_keeps_its_lease_through_a_slow_action(backend: Backend) -> None:
    """The reconciler renews while an action runs: a slow holder is not a dead one."""
    store = backend.open()
    began = store.begin_transition(new(), store.state().version)
    assert began is not None
    lease, renew = 0.6, 0.15
    contender_saw: list[Lease | None] = []
    release = threading.Event()

    def slow() -> None:
        # Three leases long: without renewal the contender would take over meanwhile.
        deadline = time.monotonic() + 3 * lease
        while time.monotonic() < deadline:
            contender_saw.append(store.acquire_lease("contender", lease))
            release.wait(lease / 4)

    world: dict[str, object] = {}
    action = MemoryAction("www", world, on_apply=slow)
    reconciler = Reconciler(
        store, [action], Retry(), holder="slow", lease_seconds=lease, renew_seconds=renew
    )
    done = reconciler.run_once()
    assert done is not None and done.result == "completed"
    assert len(contender_saw) >= 4 and contender_saw == [None] * len(contender_saw)
    assert [s.result for s in done.steps] == ["applied"]
    # Once released, the lease is free for the next holder, with a larger token.
    taken = wait_until(lambda: store.acquire_lease("contender", lease), 30, 0.05, "lease")
    assert taken.token > done.steps[0].fencing_token  # type: ignore[operator]


def test_any_json_survives_the_journal(backend: Backend, store: StateStore) -> None:
    """Actions report whatever JSON they read: the store gives back exactly that."""
    began = store.begin_transition(new(), 0)
    assert began is not None
    before = {"ttl": 300, "weight": 0.25, "name": "", "ips": ["10.0.0.1"], "meta": None}
    after = ["ünïcode ✓", 1e-9, True, {"nested": {"deep": [1, [2, [3]]]}}]
    lease = lease_for(store)
    store.journal_step(began.id, StepRecord("odd", "applied", before, after), lease.token)
    store.journal_step(began.id, StepRecord("empty", "unchanged", None, ""), lease.token)
    again = backend.open().completed_steps(began.id)
    assert (again["odd"].before, again["odd"].after) == (before, after)
    assert (again["empty"].before, again["empty"].after) == (None, "")


def attempts(action: str = "lb", count: int = 1, retry_at: float | None = 1.0) -> Attempts:
    return Attempts(action, False, count, 0.5, 0.5 + count, f"HTTP 503 #{count}", retry_at)


def test_attempts_are_fenced_and_cleared_by_the_next_step(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=1000)
    began = store.begin_transition(new(), store.state().version)
    assert began is not None and began.revision == 0
    store.record_attempts(began.id, attempts(count=2), lease.token)
    running = store.state().in_progress
    assert running is not None and running.attempts == attempts(count=2)
    assert running.revision == 1
    with pytest.raises(LeaseLost):
        store.record_attempts(began.id, attempts(count=3), lease.token + 1)
    store.journal_step(began.id, StepRecord("lb", "applied", 1, 2, attempts=3), lease.token)
    running = store.state().in_progress
    assert running is not None and running.attempts is None and running.revision == 2
    # A permanent error halts: stalled at once, whatever the deadline.
    store.record_attempts(began.id, attempts("env", retry_at=None), lease.token)
    assert store.state().phase == "stalled"


def test_operator_commands_compare_and_set_on_the_revision(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=1000)
    began = store.begin_transition(new(), store.state().version)
    assert began is not None
    store.record_attempts(began.id, attempts(retry_at=None), lease.token)
    seen = store.state().in_progress
    assert seen is not None
    skip = Operation("skip", "alice", "moved by hand", clock.now, action="lb")
    step = StepRecord("lb", "skipped", error="skipped by alice: moved by hand", at=clock.now)
    # A command decided on an older read is refused, not applied.
    assert store.operate(began.id, seen.revision - 1, skip, None, step) is None
    after = store.operate(began.id, seen.revision, skip, None, step)
    assert after is not None and after.revision == seen.revision + 1
    assert after.operations == (skip,) and after.attempts is None
    assert [(s.action, s.result) for s in after.steps] == [("lb", "skipped")]
    assert store.completed_steps(began.id)["lb"].result == "skipped"
    assert store.operate(began.id, seen.revision, skip, None, step) is None  # stale again
    reopened = store.transition(began.id)
    assert reopened.operations == (skip,)
    assert reopened.to_json()["operations"][0]["by"] == "alice"
    store.finish_transition(began.id, "completed", lease.token)
    with pytest.raises(UnknownTransition):
        store.operate(began.id, reopened.revision + 1, skip, None)


def test_an_aborted_transition_keeps_the_active_region(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=1000)
    began = store.begin_transition(new(), store.state().version)
    assert began is not None
    store.journal_step(began.id, StepRecord("www", "applied", EAST, WEST), lease.token)
    abort = Operation("abort", "bob", "back out", clock.now, rollback=True)
    store.operate(began.id, store.state().in_progress.revision, abort, None)  # type: ignore[union-attr]
    state = store.state()
    assert (state.desired_region, state.phase) == (EAST, "failing_over")
    back = StepRecord("www", "applied", WEST, EAST, rollback=True)
    store.journal_step(began.id, back, lease.token)
    assert store.completed_steps(began.id) == {
        "www": StepRecord("www", "applied", EAST, WEST, at=clock.now, fencing_token=lease.token)
    }  # forward steps only: a rollback step does not make its action done
    assert store.action_results()["www"]["region"] == EAST  # where the rollback left it
    done = store.finish_transition(began.id, "aborted", lease.token, "aborted by bob")
    assert (done.result, done.error) == ("aborted", "aborted by bob")
    state = store.state()
    assert (state.active_region, state.desired_region, state.phase) == (EAST, EAST, "steady")


def test_action_region_is_where_the_last_verified_step_left_it(
    store: StateStore, clock: Clock
) -> None:
    lease = lease_for(store, ttl=1000)
    began = store.begin_transition(new(), store.state().version)
    assert began is not None
    store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
    store.journal_step(began.id, StepRecord("lb", "unchanged", 1, 1), lease.token)
    store.journal_step(began.id, StepRecord("env", "would_apply", 1, 2), lease.token)
    store.finish_transition(began.id, "completed", lease.token)
    results = store.action_results()
    assert {a: r["region"] for a, r in results.items()} == {"www": WEST, "lb": WEST, "env": None}
    back = store.begin_transition(new(to=EAST, fingerprint="b"), store.state().version)
    assert back is not None
    skipped = Operation("skip", "x", "y", clock.now, action="www")
    store.operate(back.id, back.revision, skipped, None, StepRecord("www", "skipped"))
    assert store.action_results()["www"] == {
        **store.action_results()["www"],
        "result": "skipped",
        "region": WEST,  # a skipped step verified nothing: the region stays
    }


def test_stalled_past_the_deadline_and_frozen_at_a_step(store: StateStore, clock: Clock) -> None:
    began = store.begin_transition(
        NewTransition("failover", EAST, WEST, Cause(), None, False, deadline_at=clock.now + 900),
        store.state().version,
    )
    assert began is not None and began.deadline_at == clock.now + 900
    clock.now += 899
    assert store.state().phase == "failing_over"
    clock.now += 2
    assert store.state().phase == "stalled"
    store.freeze("carol", "hold")
    assert store.state().phase == "frozen"  # an operator's stop outranks the stall


def test_prune_forgets_old_history_but_not_the_newest_transition(
    store: StateStore, clock: Clock
) -> None:
    lease = lease_for(store, ttl=10**7)
    for index in range(3):
        began = store.begin_transition(new(fingerprint=f"p{index}"), store.state().version)
        assert began is not None
        store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
        store.finish_transition(began.id, "completed", lease.token)
        store.record_decision("ignored", f"old {index}", Cause())
        clock.now += 86400
    newest = store.state().last_transition
    assert newest is not None
    store.record_decision("ignored", "recent", Cause())
    # Everything older than a day ago: two transitions and three decisions, but the newest
    # transition stays whatever its age (the state derives from it).
    gone = store.prune(clock.now - 86400)
    assert gone == 2 + 2
    history = store.history(limit=100)
    assert [t["id"] for t in history["transitions"]] == [newest.id]
    assert [d["reason"] for d in history["decisions"]] == ["recent", "old 2"]
    assert store.state().last_transition == newest
    assert store.prune(clock.now + 10**6) == 2  # the decisions; the newest transition stays
    assert [t["id"] for t in store.history()["transitions"]] == [newest.id]


def notice(notice_id: str, at: float, receivers: tuple[str, ...] = ("chat", "pd")) -> Notice:
    return Notice(
        notice_id, "started", at, "t", {"summary": "x"}, {r: Delivery() for r in receivers}
    )


def test_notices_are_queued_with_the_change_they_report(store: StateStore, clock: Clock) -> None:
    lease = lease_for(store, ttl=10**6)
    version = store.state().version
    began = store.begin_transition(new(), version, lambda t: [notice(f"{t.id}:started", clock.now)])
    assert began is not None
    # The loser of a race queues nothing: its change did not happen.
    assert store.begin_transition(new(), version, lambda t: [notice("lost", clock.now)]) is None
    clock.now += 1
    store.record_decision(
        "blocked", "no", Cause(), announce=lambda d: [notice(f"{d.id}:blocked", clock.now)]
    )
    clock.now += 1
    done = store.finish_transition(
        began.id, "completed", lease.token, notices=[notice(f"{began.id}:completed", clock.now)]
    )
    # The same event queued again (a retried write) is not told twice.
    store.record_decision(
        "ignored", "x", Cause(), announce=lambda d: [notice(f"{began.id}:completed", clock.now)]
    )
    queued = store.notices(clock.now)
    assert [n.id.split(":")[1] for n in queued] == ["started", "blocked", "completed"]
    assert queued[0].subject == "t" and done.result == "completed"
    assert [d["reason"] for d in store.history()["decisions"]] == ["x", "no"]


def test_a_claimed_notice_is_delivered_by_one_holder(store: StateStore, clock: Clock) -> None:
    store.record_decision("blocked", "no", Cause(), announce=lambda d: [notice("n1", clock.now)])
    claimed = store.claim_notice("n1", "a", clock.now + 30, clock.now)
    assert claimed is not None and claimed.claimed_by == "a"
    assert store.claim_notice("n1", "b", clock.now + 30, clock.now) is None
    (listed,) = store.notices(clock.now)  # still pending, and shown as claimed
    assert (listed.claimed_by, listed.claim_until) == ("a", clock.now + 30)
    with pytest.raises(LeaseLost):
        store.update_notice(claimed, "b")
    retry = Delivery("pending", 1, clock.now + 10, "HTTP 429")
    delivered = Delivery("delivered", 1, 0.0, None, clock.now)
    store.update_notice(claimed.with_delivery("pd", retry).with_delivery("chat", delivered), "a")
    (later,) = store.notices(clock.now)
    assert later.due(clock.now) == [] and later.claimed_by is None  # pd's next try is in 10 s
    clock.now += 11
    (again,) = store.notices(clock.now)
    assert again.due(clock.now) == ["pd"] and again.deliveries["chat"].state == "delivered"
    mine = store.claim_notice("n1", "b", clock.now + 30, clock.now)
    assert mine is not None
    store.update_notice(mine.with_delivery("pd", delivered), "b")
    assert store.notices(clock.now + 10**6) == []
    assert store.claim_notice("n1", "c", clock.now + 30, clock.now) is None  # nothing left to do


def test_an_approval_waits_then_its_decision_is_kept(store: StateStore, clock: Clock) -> None:
    waiting = Approval("waiting", clock.now + 600, "abort", requested_by="alice",
                       preview=({"action": "www", "current": 1, "desired": 2},))  # fmt: skip
    began = store.begin_transition(
        NewTransition("failover", EAST, WEST, Cause(), None, False, clock.now + 900, waiting),
        store.state().version,
    )
    assert began is not None and began.approval == waiting
    state = store.state()
    assert (state.phase, state.desired_region) == ("awaiting_approval", WEST)
    clock.now += 1000  # far past the transition's own deadline: waiting is not stalling
    assert store.state().phase == "awaiting_approval"
    approved = replace(waiting, state="approved", decided_by="bob", decided_at=clock.now)
    op = Operation("approve", "bob", "go", clock.now)
    after = store.operate(began.id, began.revision, op, None, approval=approved)
    assert after is not None and after.approval == approved
    assert store.state().phase == "failing_over"  # its deadline counts from the approval
    clock.now += 901
    assert store.state().phase == "stalled"
    assert store.transition(began.id).approval == approved
