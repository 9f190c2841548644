"""The reconciler over a real SQLite file, with in-memory actions as its collaborators."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ddb_failover.config import Retry
from responder.actions.do_client import DOClient
from responder.actions.do_dns_record import DNSRecord
from responder.execute import operations
from responder.execute.reconciler import Reconciler, StepEvent
from responder.execute.runner import Runner
from responder.model.backoff import backoff
from responder.model.errors import PermanentError, TemporaryError
from responder.model.fence import LeaseDeadlinePassed
from responder.model.holder import default_holder
from responder.state.records import Cause, InFlight, NewTransition, TransitionRecord
from responder.state.sqlite.store import SqliteStore
from responder.state.store import AttemptInFlight, Refused
from sandbox.net import wait_until
from tests.responder.dosandbox import Sandbox
from tests.responder.fakes import EAST, WEST, FileAction, MemoryAction
from tests.responder.procs import kill_when_reached
from tests.responder.test_actions_do import dns_action

REPO = Path(__file__).resolve().parents[2]
RETRY = Retry(initial_backoff_seconds=0.5, max_backoff_seconds=4.0)


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


def begin(
    store: SqliteStore, dry_run: bool = False, kind: str = "failover", deadline: float = 900
) -> TransitionRecord:
    cause = Cause(alerts=({"fingerprint": "f1", "key": "f1@t"},))
    now = store.state().last_completed_at or 0.0
    started = max(now, store._clock())
    new = NewTransition(
        kind,  # type: ignore[arg-type]
        EAST,
        WEST,
        cause,
        2.0,
        dry_run,
        deadline_at=started + deadline,
    )
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
        rand=lambda: 0.5,
        clock=kwargs.pop("clock", store._clock),
        on_step=recorder.steps.append,
        on_finished=recorder.finished.append,
        exit=kwargs.pop("exit", _no_exit),
        **kwargs,
    )


def _no_exit(code: int) -> None:
    raise AssertionError(f"the worker would have exited with {code}")


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


def one_pass(rec: Reconciler, clock: Clock) -> TransitionRecord | None:
    """A pass as the runner makes it: when the last attempt's backoff is over."""
    state = rec.store.state()
    wait = rec.due_in(state)
    if state.in_progress is None or wait is None:
        return None
    clock.now += wait
    return rec.run_once()


def drive(rec: Reconciler, clock: Clock, passes: int = 50) -> TransitionRecord | None:
    """Passes until the transition ends or waits for a person."""
    for _ in range(passes):
        done = one_pass(rec, clock)
        if done is not None or rec.due_in(rec.store.state()) is None:
            return done
    raise AssertionError(f"no end after {passes} passes")


def test_temporary_errors_are_retried_with_backoff(store: SqliteStore, clock: Clock) -> None:
    world: dict[str, Any] = {}
    flaky = MemoryAction(
        "www",
        world,
        failures=[TemporaryError("HTTP 500"), TemporaryError("HTTP 429", retry_after=3.0)],
    )
    recorder = Recorder()
    begun = begin(store)
    rec = reconciler(store, [flaky], recorder)
    assert rec.run_once() is None  # one attempt per pass: the failure is recorded, not slept
    attempts = store.state().in_progress.attempts  # type: ignore[union-attr]
    assert attempts is not None
    # rand=0.5: attempt 1 waits 0.25 + 0.125.
    assert (attempts.action, attempts.count, attempts.error) == ("www", 1, "HTTP 500")
    assert attempts.retry_at == clock.now + 0.375
    assert rec.run_once() is None and flaky.calls == 1  # not due yet: nothing read or applied
    done = drive(rec, clock)
    assert done is not None and (done.id, done.result) == (begun.id, "completed")
    assert flaky.applied == [{"region": WEST}]  # changed once, after two refusals
    assert [(e.result, e.attempt, e.final) for e in recorder.steps] == [
        ("failed", 1, False),
        ("failed", 2, False),
        ("applied", 3, True),
    ]
    assert done.steps[0].attempts == 3 and done.attempts is None
    assert recorder.sleeps == []  # the reconciler never sleeps: the runner waits between passes


def test_backoff_grows_caps_and_honours_retry_after_up_to_the_cap() -> None:
    retry = Retry(initial_backoff_seconds=0.5, max_backoff_seconds=4.0)
    assert [backoff(n, retry, 1.0, None) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff(n, retry, 0.0, None) for n in (1, 4)] == [0.25, 2.0]
    assert backoff(1, retry, 0.0, 3.0) == 3.0
    # A server asking for a day is asked again at the cap.
    assert backoff(1, retry, 0.0, 86400.0) == 4.0
    assert backoff(1, Retry(), 0.0, 86400.0) == 30.0  # the default cap


def test_a_long_provider_outage_stalls_then_converges_by_itself(
    store: SqliteStore, clock: Clock
) -> None:
    world: dict[str, Any] = {}
    outage = [TemporaryError("HTTP 503: service_unavailable")] * 400  # 3 s apart: longer than 600 s
    down = MemoryAction("lb", world, failures=outage)
    dns = MemoryAction("www", world)
    begun = begin(store, deadline=600)
    rec = reconciler(store, [dns, down], Recorder())
    while clock.now < begun.started_at + 599:
        assert one_pass(rec, clock) is None
    state = store.state()
    assert state.phase == "failing_over"
    clock.now = begun.started_at + 601
    state = store.state()
    assert state.phase == "stalled" and state.in_progress is not None
    attempts = state.in_progress.attempts
    assert attempts is not None and not attempts.halted and attempts.action == "lb"
    gaps = []
    while down.failures:
        before = clock.now
        assert one_pass(rec, clock) is None
        gaps.append(clock.now - before)
    assert max(gaps) <= RETRY.max_backoff_seconds  # still retrying, at the cap
    done = one_pass(rec, clock)  # the provider is back: converges with no one's help
    assert done is not None and done.result == "completed"
    assert world == {"www": {"region": WEST}, "lb": {"region": WEST}}
    assert down.applied == [{"region": WEST}] and dns.applied == [{"region": WEST}]
    assert (store.state().active_region, store.state().phase) == (WEST, "steady")


def test_permanent_error_stalls_until_an_operator_retries(store: SqliteStore, clock: Clock) -> None:
    world: dict[str, Any] = {}
    first = MemoryAction("www", world)
    broken = MemoryAction("lb", world, failures=[PermanentError("HTTP 401: unauthorized")])
    last = MemoryAction("env", world)
    recorder = Recorder()
    begun = begin(store)
    rec = reconciler(store, [first, broken, last], recorder)
    assert rec.run_once() is None
    state = store.state()
    assert (state.active_region, state.desired_region, state.phase) == (EAST, WEST, "stalled")
    running = state.in_progress
    assert running is not None and running.attempts is not None
    assert (running.attempts.action, running.attempts.error, running.attempts.halted) == (
        "lb",
        "HTTP 401: unauthorized",
        True,
    )
    assert [(s.action, s.result) for s in running.steps] == [("www", "applied")]
    assert rec.due_in(state) is None  # nothing runs until a person acts
    clock.now += 3600
    assert rec.run_once() is None and broken.calls == 1 and last.calls == 0

    operations.apply(store, lambda r: operations.retry(r, "alice", "token rotated", clock.now))
    done = rec.run_once()
    assert done is not None and (done.id, done.result) == (begun.id, "completed")
    assert [(s.action, s.result) for s in done.steps] == [
        ("www", "applied"),
        ("lb", "applied"),
        ("env", "applied"),
    ]
    assert [(o.op, o.by, o.reason, o.action) for o in done.operations] == [
        ("retry", "alice", "token rotated", "lb")
    ]
    assert [(e.action, e.result, e.final) for e in recorder.steps][1] == ("lb", "failed", True)


def test_skip_records_the_step_and_goes_on(store: SqliteStore, clock: Clock) -> None:
    world: dict[str, Any] = {}
    broken = MemoryAction("lb", world, failures=[PermanentError("HTTP 403: forbidden")])
    last = MemoryAction("env", world)
    begin(store)
    rec = reconciler(store, [broken, last], Recorder())
    rec.run_once()
    with pytest.raises(Refused, match="cannot skip env: the step in trouble is lb"):
        operations.apply(store, lambda r: operations.skip(r, "env", "bob", "no", clock.now))
    why = "LB moved by hand"
    operations.apply(store, lambda r: operations.skip(r, "lb", "bob", why, clock.now))
    done = rec.run_once()
    assert done is not None and done.result == "completed"
    assert [(s.action, s.result, s.error) for s in done.steps] == [
        ("lb", "skipped", "skipped by bob: LB moved by hand"),
        ("env", "applied", None),
    ]
    assert world == {"env": {"region": WEST}}  # the skipped object was not touched
    assert store.action_results()["lb"]["region"] is None  # never verified anywhere


def test_abort_without_rollback_stops_where_it_is(store: SqliteStore, clock: Clock) -> None:
    world: dict[str, Any] = {}
    first = MemoryAction("www", world)
    broken = MemoryAction("lb", world, failures=[PermanentError("HTTP 422: bad droplet")])
    begin(store)
    rec = reconciler(store, [first, broken], Recorder())
    rec.run_once()
    with pytest.raises(Refused, match="abort needs a reason"):
        operations.apply(store, lambda r: operations.abort(r, "carol", " ", False, clock.now))
    why = "site is fine"
    operations.apply(store, lambda r: operations.abort(r, "carol", why, False, clock.now))
    done = rec.run_once()
    assert done is not None and done.result == "aborted"
    assert done.error == "aborted by carol: site is fine"
    assert done.attempts is not None and done.attempts.action == "lb"  # kept as evidence
    state = store.state()
    assert (state.active_region, state.desired_region, state.phase) == (EAST, EAST, "steady")
    assert world == {"www": {"region": WEST}}  # left where it was: a split the status shows
    assert store.action_results()["www"]["region"] == WEST


def test_an_abort_that_arrives_during_the_last_step_completes_the_transition(
    store: SqliteStore, clock: Clock
) -> None:
    """Nothing is left to stop: ending it aborted would put the record on the source."""
    world: dict[str, Any] = {}

    def abort() -> None:
        operations.apply(
            store, lambda r: operations.abort(r, "carol", "too late", False, clock.now)
        )

    actions = [MemoryAction("www", world), MemoryAction("lb", world, on_apply=abort)]
    begin(store)
    done = reconciler(store, actions, Recorder()).run_once()
    assert done is not None and (done.result, done.error) == ("completed", None)
    assert done.abort is not None  # the request stays on the record
    state = store.state()
    assert (state.active_region, state.phase) == (WEST, "steady")
    assert world == {"www": {"region": WEST}, "lb": {"region": WEST}}


def test_rollback_includes_a_step_a_failed_attempt_may_have_changed(
    store: SqliteStore, clock: Clock
) -> None:
    world: dict[str, Any] = {}
    landed = [lambda: world.update(www={"region": WEST})]  # the write landed, the answer did not
    dns = MemoryAction(
        "www",
        world,
        failures=[TemporaryError("read timed out")],
        on_apply=lambda: landed.pop()() if landed else None,
    )
    broken = MemoryAction("lb", world, failures=[PermanentError("verify failed")])
    begin(store)
    rec = reconciler(store, [dns, broken], Recorder())
    assert drive(rec, clock) is None  # www retried and found unchanged; lb halted
    (www,) = [s for s in store.state().in_progress.steps if s.action == "www"]  # type: ignore[union-attr]
    assert www.result == "unchanged" and www.failures
    operations.apply(store, lambda r: operations.abort(r, "dave", "back out", True, clock.now))
    done = drive(rec, clock)
    assert done is not None and done.result == "aborted"
    assert world["www"] == {"region": EAST}


def test_rollback_moves_every_action_back_whatever_the_journal_says(
    store: SqliteStore, clock: Clock
) -> None:
    # env already WEST: the change landed before a crash, so the re-run journaled `unchanged`.
    world: dict[str, Any] = {"env": {"region": WEST}}
    dns = MemoryAction("www", world)
    env = MemoryAction("env", world)
    landed = [lambda: world.update(cmd={"region": WEST})]  # changed, then failed for good
    cmd = MemoryAction(
        "cmd",
        world,
        failures=[PermanentError("exit 1")],
        on_apply=lambda: landed.pop()() if landed else None,
    )
    broken = MemoryAction("lb", world, failures=[PermanentError("verify failed")])
    recorder = Recorder()
    begin(store)
    rec = reconciler(store, [dns, env, cmd, broken], recorder)
    rec.run_once()
    operations.apply(store, lambda r: operations.skip(r, "cmd", "erin", "later", clock.now))
    drive(rec, clock)
    operations.apply(store, lambda r: operations.abort(r, "dave", "back out", True, clock.now))
    assert store.state().desired_region == EAST
    done = drive(rec, clock)
    assert done is not None and done.result == "aborted"
    assert done.error == "aborted by dave and rolled back: back out"
    forward = [(s.action, s.result) for s in done.steps if not s.rollback]
    back = [(s.action, s.result, s.after) for s in done.steps if s.rollback]
    assert forward == [("www", "applied"), ("env", "unchanged"), ("cmd", "skipped")]
    # Every configured action, last first, each read and changed only if it differs.
    assert back == [(name, "applied", {"region": EAST}) for name in ("lb", "cmd", "env", "www")]
    assert world == {name: {"region": EAST} for name in ("www", "env", "cmd", "lb")}
    assert (store.state().active_region, store.state().phase) == (EAST, "steady")
    assert store.action_results()["www"]["region"] == EAST
    assert [e.rollback for e in recorder.steps][-4:] == [True] * 4


def test_freeze_stops_at_the_next_step_and_unfreeze_resumes(
    store: SqliteStore, clock: Clock
) -> None:
    world: dict[str, Any] = {}
    first = MemoryAction("www", world, on_apply=lambda: store.freeze("erin", "hold on"))
    second = MemoryAction("lb", world)
    begin(store)
    rec = reconciler(store, [first, second], Recorder())
    assert rec.run_once() is None
    state = store.state()
    assert state.phase == "frozen" and rec.due_in(state) is None
    assert [s.action for s in state.in_progress.steps] == ["www"]  # type: ignore[union-attr]
    assert second.calls == 0  # the step under way finished; the next did not start
    store.unfreeze("erin", "go")
    done = rec.run_once()
    assert done is not None and done.result == "completed" and second.applied


def test_an_operator_transition_after_a_freeze_still_runs(store: SqliteStore, clock: Clock) -> None:
    store.freeze("erin", "automation off; moving by hand")
    clock.now += 1
    begin(store, kind="manual")
    action = MemoryAction("www", {})
    done = reconciler(store, [action], Recorder()).run_once()
    assert done is not None and done.result == "completed"


def test_a_crashing_action_stalls_the_transition_not_the_reconciler(store: SqliteStore) -> None:
    buggy = MemoryAction("www", {}, failures=[KeyError("droplet_ids")])
    begin(store)
    assert reconciler(store, [buggy], Recorder()).run_once() is None
    running = store.state().in_progress
    assert running is not None and running.attempts is not None
    assert running.attempts.error == "unexpected KeyError: 'droplet_ids'"
    assert store.state().phase == "stalled"


def test_a_hung_step_keeps_the_lease_until_it_returns(store: SqliteStore, clock: Clock) -> None:
    release = threading.Event()
    world: dict[str, Any] = {"www": {"region": EAST}}
    hung = MemoryAction("www", world, on_apply=lambda: release.wait(30))
    hung.timeout_seconds = 0.2
    began = begin(store)
    rec = reconciler(store, [hung], Recorder())
    assert rec.run_once() is None
    running = store.state().in_progress
    assert running is not None and running.attempts is not None
    assert running.attempts.error == "www: no result within 0.2s (timeout_seconds)"
    in_flight = running.in_flight  # still running, and the record says so
    assert in_flight is not None and (in_flight.action, in_flight.attempt) == ("www", 1)
    assert in_flight.holder == "test" and running.to_json()["in_flight"]["attempt"] == 1
    assert store.acquire_lease("another", 15) is None  # kept while the stray call lives
    with pytest.raises(
        AttemptInFlight, match=r"attempt 1 in flight since 2027-01-15T08:00:00\.000Z"
    ):
        operations.apply(store, lambda r: operations.skip(r, "www", "ops", "stuck", clock.now))
    operations.apply(store, lambda r: operations.abort(r, "ops", "enough", True, clock.now))
    clock.now += 60
    assert rec.run_once() is None  # abort waits for the attempt's step boundary
    assert store.state().in_progress is not None and hung.applied == []
    release.set()
    wait_until(
        lambda: (
            store.state().in_progress is not None and store.state().in_progress.in_flight is None
        ),  # type: ignore[union-attr]
        30,
        message="the stray attempt returned and its marker was cleared",
    )
    assert store.acquire_lease("another", 15) is not None  # given up once it returned
    store.release_lease(store.acquire_lease("another", 15))  # type: ignore[arg-type]
    done = rec.run_once()
    assert done is not None and (done.id, done.result) == (began.id, "aborted")
    assert hung.applied == [{"region": WEST}, {"region": EAST}]  # the stray landed; rolled back
    assert world == {"www": {"region": EAST}} and rec.keeper.exited is None


def test_a_worker_that_cannot_renew_exits_and_writes_nothing_after(
    store: SqliteStore, clock: Clock
) -> None:
    release = threading.Event()
    world: dict[str, Any] = {"www": {"region": EAST}}
    hung = MemoryAction("www", world, on_apply=lambda: release.wait(30))
    hung.timeout_seconds = 0.2
    begin(store)
    exits: list[int] = []
    rec = reconciler(store, [hung], Recorder(), renew_seconds=0.05, exit=exits.append)
    assert rec.run_once() is None
    clock.now += 60  # the lease ran out (a paused worker): another holder takes it
    assert store.acquire_lease("another", 15) is not None
    wait_until(lambda: exits == [75], 30, message="the worker exited when it could not renew")
    with pytest.raises(LeaseDeadlinePassed):
        rec.keeper.deadline.check("www: write")


def test_a_marker_left_by_a_dead_worker_is_cleared_by_the_next(store: SqliteStore) -> None:
    world: dict[str, Any] = {"www": {"region": EAST}}
    began = begin(store)
    dead = store.acquire_lease("dead", 15)
    assert dead is not None
    store.mark_in_flight(began.id, InFlight("www", 1, 0.0, "dead", dead.token), dead.token)
    store.release_lease(dead)
    done = reconciler(store, [MemoryAction("www", world)], Recorder()).run_once()
    assert done is not None and done.result == "completed" and done.in_flight is None
    assert world == {"www": {"region": WEST}}


def test_holder_ids_differ_between_starts_of_one_process() -> None:
    assert default_holder() != default_holder()
    _host, pid, _ = default_holder().split(":")
    assert pid == str(os.getpid())


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
    kill_when_reached("crash", db, tmp_path, "second.reached")
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


def test_the_runner_prunes_history_once_an_hour(store: SqliteStore, clock: Clock) -> None:
    store.record_decision("ignored", "old", Cause())
    clock.now += 200
    runner = Runner(store, reconciler(store, [], Recorder()), retain_seconds=100, clock=clock)
    assert runner.prune_if_due() == 1
    store.record_decision("ignored", "newer", Cause())
    clock.now += 200
    assert runner.prune_if_due() == 0  # pruned a moment ago: not again within the hour
    clock.now += 3600
    assert runner.prune_if_due() == 1
    assert store.history()["decisions"] == []


def test_a_day_long_retry_after_is_asked_again_at_the_cap(
    store: SqliteStore, clock: Clock, do_client: DOClient, sandbox: Sandbox
) -> None:
    """A real 429 with Retry-After: 86400 from the DigitalOcean sandbox: next try at the cap."""
    sandbox.fault(status=429, count=1, retry_after=86400, path_prefix="/v2/domains")
    dns = DNSRecord(dns_action(), do_client)
    begin(store)
    rec = reconciler(store, [dns], Recorder(), retry=Retry(max_backoff_seconds=30.0))
    assert rec.run_once() is None
    attempts = store.state().in_progress.attempts  # type: ignore[union-attr]
    assert attempts is not None and "HTTP 429" in attempts.error
    assert attempts.retry_at == clock.now + 30.0  # not a day: the cap
    clock.now += 30
    done = rec.run_once()
    assert done is not None and done.result == "completed"
    assert sandbox.record(102)["data"] == "198.51.100.20"  # the seed's www A record
