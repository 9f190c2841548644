"""The SQLite state store on a real file: compare-and-set, journal, lease, history, races."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from responder.handling import handle_alerts
from responder.state.base import (
    Cause,
    Freeze,
    LeaseLost,
    NewTransition,
    StepRecord,
    StoreUnavailable,
    UnknownTransition,
)
from responder.state.sqlite import SqliteStore
from tests.responder.fakes import EAST, WEST, always_ready, config, region_down_alerts

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A settable clock for lease expiry and timestamps."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db", EAST, clock=clock)


def new(to: str = WEST, dry_run: bool = False, fingerprint: str = "abc") -> NewTransition:
    cause = Cause(alerts=({"fingerprint": fingerprint, "key": f"{fingerprint}@t"},))
    return NewTransition("failover", EAST, to, cause, 4.5, dry_run)


def test_new_store_starts_steady_on_the_primary(store: SqliteStore) -> None:
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


def test_state_survives_reopening(tmp_path: Path, store: SqliteStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    lease = store.acquire_lease("me", 10)
    assert lease is not None
    store.finish_transition(began.id, "completed", lease.token)
    # The primary argument only seeds a new store.
    again = SqliteStore(tmp_path / "state.db", EAST, clock=clock)
    assert again.state().active_region == WEST


def test_begin_transition_is_a_compare_and_set(store: SqliteStore) -> None:
    version = store.state().version
    first = store.begin_transition(new(), version)
    assert first is not None and first.in_progress
    assert store.begin_transition(new(), version) is None  # stale version
    state = store.state()
    assert state.version == version + 1
    assert store.begin_transition(new(), state.version) is None  # one in progress
    assert (state.phase, state.desired_region, state.in_progress) == ("failing_over", WEST, first)


def test_finish_moves_the_active_region(store: SqliteStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    lease = store.acquire_lease("me", 10)
    assert lease is not None
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


def test_dry_run_and_failed_transitions_keep_the_active_region(store: SqliteStore) -> None:
    lease = store.acquire_lease("me", 10)
    assert lease is not None
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


def test_journal_and_completed_steps(store: SqliteStore) -> None:
    began = store.begin_transition(new(), 0)
    lease = store.acquire_lease("me", 10)
    assert began is not None and lease is not None
    store.journal_step(
        began.id, StepRecord("www", "applied", {"ip": "a"}, {"ip": "b"}), lease.token
    )
    store.journal_step(began.id, StepRecord("lb", "failed", error="boom"), lease.token)
    done = store.completed_steps(began.id)
    assert list(done) == ["www"]
    assert (done["www"].before, done["www"].after) == ({"ip": "a"}, {"ip": "b"})
    assert store.action_results()["lb"]["result"] == "failed"
    assert store.action_results()["www"]["transition_id"] == began.id


def test_lease_and_fencing(store: SqliteStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    assert began is not None
    old = store.acquire_lease("a", 10)
    assert old is not None
    assert store.acquire_lease("b", 10) is None  # held
    assert store.acquire_lease("a", 10) == old  # re-acquiring our own keeps the token
    clock.now += 11  # a paused past its lease
    new_lease = store.acquire_lease("b", 10)
    assert new_lease is not None and new_lease.token == old.token + 1
    with pytest.raises(LeaseLost):
        store.journal_step(began.id, StepRecord("www", "applied"), old.token)
    with pytest.raises(LeaseLost):
        store.renew_lease(old, 10)
    with pytest.raises(LeaseLost):
        store.finish_transition(began.id, "completed", old.token)
    store.journal_step(began.id, StepRecord("www", "applied"), new_lease.token)
    store.release_lease(old)  # not ours any more: no effect
    assert store.acquire_lease("c", 10) is None
    store.release_lease(new_lease)
    third = store.acquire_lease("c", 10)
    assert third is not None and third.token == new_lease.token + 1
    assert [s.fencing_token for s in store.transition(began.id).steps] == [new_lease.token]


def test_an_expired_lease_cannot_journal(store: SqliteStore, clock: Clock) -> None:
    began = store.begin_transition(new(), 0)
    lease = store.acquire_lease("a", 5)
    assert began is not None and lease is not None
    clock.now += 5
    with pytest.raises(LeaseLost):
        store.journal_step(began.id, StepRecord("www", "applied"), lease.token)


def test_freeze_and_unfreeze(store: SqliteStore) -> None:
    version = store.state().version
    frozen = store.freeze("alice", "maintenance")
    assert frozen.frozen is not None and (frozen.frozen.by, frozen.frozen.reason) == (
        "alice",
        "maintenance",
    )
    assert frozen.phase == "blocked" and frozen.version == version + 1
    # A second freeze keeps the first reason: it explains why transitions stopped.
    assert store.freeze("bob", "other").frozen.by == "alice"  # type: ignore[union-attr]
    thawed = store.unfreeze("alice", "done")
    assert (thawed.frozen, thawed.phase) == (None, "steady")


def test_blocked_decision_with_freeze(store: SqliteStore, clock: Clock) -> None:
    record = store.record_decision(
        "blocked",
        "cap: 4 transitions",
        Cause(alerts=({"fingerprint": "f1", "key": "f1@t"},)),
        region=EAST,
        transition_kind="failover",
        freeze=Freeze("responder", "cap: 4 transitions", clock.now, automatic=True),
    )
    state = store.state()
    assert state.frozen is not None and state.frozen.automatic and state.phase == "blocked"
    assert store.history()["decisions"][0]["id"] == record.id


def test_history_shape_newest_first(store: SqliteStore, clock: Clock) -> None:
    lease = store.acquire_lease("me", 1000)
    assert lease is not None
    ids = []
    for i in range(3):
        began = store.begin_transition(new(fingerprint=f"f{i}"), store.state().version)
        assert began is not None
        ids.append(began.id)
        store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
        clock.now += 1
        store.finish_transition(began.id, "completed", lease.token)
    store.record_decision("ignored", "alerts resolved", Cause())
    store.record_decision("duplicate", "already in progress", Cause())
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
    assert transition["steps"] == [
        {
            "action": "www",
            "result": "applied",
            "before": 1,
            "after": 2,
            "error": None,
            "at": transition["steps"][0]["at"],
            "attempts": 1,
        }
    ]
    assert [d["kind"] for d in history["decisions"]] == ["duplicate", "ignored"]
    assert history["decisions"][0]["reason"] == "already in progress"
    json.dumps(history)  # the web layer serialises it as is


def test_recent_starts_cover_the_last_hour(store: SqliteStore, clock: Clock) -> None:
    lease = store.acquire_lease("me", 10**6)
    assert lease is not None
    starts = []
    for i in range(3):
        began = store.begin_transition(new(fingerprint=f"f{i}"), store.state().version)
        assert began is not None
        starts.append(clock.now)
        store.finish_transition(began.id, "completed", lease.token)
        clock.now += 1000
    assert sorted(store.state().recent_starts) == starts


def test_unusable_file_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", EAST)
    store.ping()
    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()  # the path now names a directory
    with pytest.raises(StoreUnavailable, match="state store"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.state()


def test_unwritable_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        SqliteStore(tmp_path / "file" / "state.db", EAST)


def test_same_notification_from_threads_and_processes_gives_one_transition(tmp_path: Path) -> None:
    """Two Alertmanagers, re-sends, gunicorn workers: the CAS lets exactly one win."""
    db, go = tmp_path / "state.db", tmp_path / "go"
    store = SqliteStore(db, EAST)
    threads_per_process = n = 8
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.responder.procs", "race", str(db), str(go), str(n)],
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
    assert len(history["decisions"]) == total - 1
    assert {d["kind"] for d in history["decisions"]} == {"duplicate"}
