"""The reconciler over a real SQLite file, with in-memory actions as its collaborators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ddb_failover.config import Retry
from responder.errors import PermanentError, TemporaryError
from responder.reconciler import Reconciler, StepEvent, backoff
from responder.state.base import Cause, NewTransition, TransitionRecord
from responder.state.sqlite import SqliteStore
from sandbox.net import wait_until
from tests.responder.fakes import EAST, WEST, FileAction, MemoryAction

REPO = Path(__file__).resolve().parents[2]
RETRY = Retry(max_attempts=3, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db", EAST, clock=clock)


def begin(store: SqliteStore, dry_run: bool = False, kind: str = "failover") -> TransitionRecord:
    cause = Cause(alerts=({"fingerprint": "f1", "key": "f1@t"},))
    new = NewTransition(kind, EAST, WEST, cause, 2.0, dry_run)  # type: ignore[arg-type]
    began = store.begin_transition(new, store.state().version)
    assert began is not None
    return began


class Recorder:
    """Collects the reconciler's callbacks and sleeps."""

    def __init__(self) -> None:
        self.steps: list[StepEvent] = []
        self.finished: list[TransitionRecord] = []
        self.sleeps: list[float] = []


def reconciler(
    store: SqliteStore, actions: list[Any], recorder: Recorder, **kwargs: Any
) -> Reconciler:
    return Reconciler(
        store,
        actions,
        kwargs.pop("retry", RETRY),
        holder=kwargs.pop("holder", "test"),
        sleep=recorder.sleeps.append,
        rand=lambda: 0.5,
        on_step=recorder.steps.append,
        on_finished=recorder.finished.append,
        **kwargs,
    )


def test_drives_every_action_and_moves_the_active_region(store: SqliteStore) -> None:
    world: dict[str, Any] = {"www": {"region": EAST}, "lb": {"region": WEST}}
    actions = [MemoryAction("www", world), MemoryAction("lb", world)]
    recorder = Recorder()
    began = begin(store)
    done = reconciler(store, actions, recorder).run_once()
    assert done is not None and (done.id, done.result) == (began.id, "completed")
    assert world == {"www": {"region": WEST}, "lb": {"region": WEST}}
    assert [(s.action, s.result, s.before, s.after) for s in done.steps] == [
        ("www", "applied", {"region": EAST}, {"region": WEST}),
        ("lb", "unchanged", {"region": WEST}, {"region": WEST}),
    ]
    state = store.state()
    assert (state.active_region, state.phase, state.in_progress) == (WEST, "steady", None)
    assert [(e.action, e.result, e.final) for e in recorder.steps] == [
        ("www", "applied", True),
        ("lb", "unchanged", True),
    ]
    assert [f.id for f in recorder.finished] == [began.id]
    assert store.action_results()["www"]["result"] == "applied"


def test_nothing_in_progress_does_nothing(store: SqliteStore) -> None:
    action = MemoryAction("www", {})
    assert reconciler(store, [action], Recorder()).run_once() is None
    assert action.calls == 0


def test_temporary_errors_are_retried_with_backoff(store: SqliteStore) -> None:
    world: dict[str, Any] = {}
    flaky = MemoryAction(
        "www",
        world,
        failures=[TemporaryError("HTTP 500"), TemporaryError("HTTP 429", retry_after=3.0)],
    )
    recorder = Recorder()
    begin(store)
    done = reconciler(store, [flaky], recorder).run_once()
    assert done is not None and done.result == "completed"
    assert flaky.applied == [{"region": WEST}]  # changed once, after two refusals
    # rand=0.5: attempt 1 waits 0.25 + 0.125; attempt 2 honours Retry-After over 0.75.
    assert recorder.sleeps == [0.375, 3.0]
    assert [(e.result, e.attempt, e.final) for e in recorder.steps] == [
        ("failed", 1, False),
        ("failed", 2, False),
        ("applied", 3, True),
    ]
    assert done.steps[0].attempts == 3


def test_backoff_grows_and_caps() -> None:
    waits = [backoff(n, RETRY, 1.0, None) for n in range(1, 7)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff(n, RETRY, 0.0, None) for n in (1, 4)] == [0.25, 2.0]


def test_temporary_errors_give_up_after_max_attempts(store: SqliteStore) -> None:
    world: dict[str, Any] = {}
    down = MemoryAction("www", world, failures=[TemporaryError("timeout")] * 5)
    after = MemoryAction("lb", world)
    recorder = Recorder()
    begin(store)
    done = reconciler(store, [down, after], recorder).run_once()
    assert done is not None and done.result == "failed"
    assert done.error == "www: gave up after 3 attempts: timeout"
    assert [(s.action, s.result, s.attempts) for s in done.steps] == [("www", "failed", 3)]
    assert after.calls == 0
    assert len(recorder.sleeps) == 2


def test_permanent_error_fails_the_transition(store: SqliteStore) -> None:
    world: dict[str, Any] = {}
    first = MemoryAction("www", world)
    broken = MemoryAction("lb", world, failures=[PermanentError("HTTP 403: forbidden")])
    last = MemoryAction("env", world)
    recorder = Recorder()
    begin(store)
    done = reconciler(store, [first, broken, last], recorder).run_once()
    assert done is not None and done.result == "failed"
    assert [(s.action, s.result, s.error) for s in done.steps] == [
        ("www", "applied", None),
        ("lb", "failed", "HTTP 403: forbidden"),
    ]
    assert recorder.sleeps == [] and last.calls == 0
    state = store.state()
    assert (state.active_region, state.desired_region, state.phase) == (EAST, WEST, "blocked")
    assert [f.result for f in recorder.finished] == ["failed"]


def test_a_crashing_action_fails_the_transition_not_the_reconciler(store: SqliteStore) -> None:
    buggy = MemoryAction("www", {}, failures=[KeyError("droplet_ids")])
    begin(store)
    done = reconciler(store, [buggy], Recorder()).run_once()
    assert done is not None and done.result == "failed"
    assert done.steps[0].error == "unexpected KeyError: 'droplet_ids'"


def test_dry_run_changes_nothing(store: SqliteStore) -> None:
    world: dict[str, Any] = {"www": {"region": EAST}, "lb": {"region": WEST}}
    actions = [MemoryAction("www", world), MemoryAction("lb", world)]
    begin(store, dry_run=True)
    done = reconciler(store, actions, Recorder()).run_once()
    assert done is not None and (done.result, done.dry_run) == ("completed", True)
    assert [(s.action, s.result, s.after) for s in done.steps] == [
        ("www", "would_apply", {"region": WEST}),
        ("lb", "unchanged", {"region": WEST}),
    ]
    assert world == {"www": {"region": EAST}, "lb": {"region": WEST}}
    assert store.state().active_region == EAST


def test_another_holder_means_hands_off(store: SqliteStore) -> None:
    begin(store)
    assert store.acquire_lease("someone-else", 60) is not None
    action = MemoryAction("www", {})
    assert reconciler(store, [action], Recorder()).run_once() is None
    assert action.calls == 0 and store.state().in_progress is not None


def test_a_holder_that_lost_its_lease_journals_nothing(store: SqliteStore, clock: Clock) -> None:
    """Paused past its lease while applying: a newer holder took over; the old one stops."""
    world: dict[str, Any] = {}
    taken: list[Any] = []

    def paused_past_the_lease() -> None:
        clock.now += 60
        taken.append(store.acquire_lease("newer", 15))

    slow = MemoryAction("www", world, on_apply=paused_past_the_lease)
    other = MemoryAction("lb", world)
    began = begin(store)
    assert reconciler(store, [slow, other], Recorder(), lease_seconds=15).run_once() is None
    assert taken[0] is not None
    assert store.completed_steps(began.id) == {}
    assert other.calls == 0
    assert store.state().in_progress is not None
    # The newer holder finishes it; the change already made is seen as unchanged.
    done = reconciler(store, [slow, other], Recorder(), holder="newer").run_once()
    assert done is not None and [s.result for s in done.steps] == ["unchanged", "applied"]
    assert {s.fencing_token for s in done.steps} == {taken[0].token}


def test_resumes_after_sigkill_without_repeating_a_step(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(db, EAST)
    began = begin(store)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.responder.procs", "crash", str(db), str(tmp_path)],
        cwd=REPO,
        start_new_session=True,
    )
    try:
        wait_until((tmp_path / "second.reached").exists, 30, message="second action reached")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    first = FileAction("first", tmp_path)
    assert first.apply_count() == 1
    assert list(store.completed_steps(began.id)) == ["first"]
    # The dead holder's lease expires; a store whose clock is past it lets us take over.
    later = SqliteStore(db, EAST, clock=lambda: time.time() + 60)
    world: dict[str, Any] = {}
    first_again = MemoryAction("first", world)
    second = MemoryAction("second", world)
    done = reconciler(later, [first_again, second], Recorder(), holder="restarted").run_once()
    assert done is not None and (done.id, done.result) == (began.id, "completed")
    assert first_again.calls == 0  # skipped from the journal: not even read
    assert second.applied == [{"region": WEST}]
    assert [s.action for s in done.steps] == ["first", "second"]
    assert first.apply_count() == 1
    assert later.state().active_region == WEST
