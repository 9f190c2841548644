"""The reconciler: drives the recorded transition through its actions, one journaled step at a time.

Only the lease holder acts; each step is journaled with the lease's fencing token,
so a holder that lost its lease cannot record anything. Steps journaled as done
are skipped, so a transition resumed after a crash does not redo them.

A started transition ends only converged or stopped by a person. A temporary
error (429, 5xx, timeouts) is recorded as the step's attempts with the time of
the next one (capped exponential backoff with jitter, Retry-After honoured up to
the cap), for as long as it takes; past its deadline the transition shows as
stalled and pages, and still converges by itself when the provider recovers. A
permanent error (401, 403, 404, 422, a verify that reads back something else)
halts the step: stalled until an operator retries, skips or aborts. Each pass
does at most one attempt per step, so operator commands and a freeze take
effect at the next step boundary, and every attempt outlives a crash.

Each attempt is marked in flight in the record before it starts; while it runs
(even past its timeout) the worker keeps the lease (responder.execute.keeper),
skip refuses its step and abort waits for it: no attempt outlives its lease.

Dry run: reconcile() reports `would_apply` (or `unchanged`) and changes nothing;
the transition completes as a dry-run record and the active region stays put.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ddb_failover.config import Retry
from ddb_failover.logs import kv
from responder.actions.base import Action, StepOutcome, Transition, reconcile
from responder.actions.do_budget import Caller, calling_as
from responder.execute import approval as approvals
from responder.execute.keeper import Keeper
from responder.execute.switchover import Course
from responder.model import fence
from responder.model.backoff import backoff
from responder.model.errors import PermanentError, TemporaryError
from responder.model.holder import default_holder
from responder.notify.notices import Announcer
from responder.state.outbox import Notice
from responder.state.phases import freeze_stops
from responder.state.records import (
    Attempts,
    InFlight,
    Lease,
    State,
    StepRecord,
    StepResult,
    TransitionRecord,
    TransitionResult,
    add_failure,
)
from responder.state.store import LeaseLost, StateStore, UnknownTransition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepEvent:
    """One action run, reported to on_step: every attempt, final or to be retried."""

    transition: TransitionRecord
    action: str
    result: StepResult  # applied, unchanged, would_apply, or failed
    attempt: int
    final: bool  # False for a temporary failure that will be retried
    error: str | None = None
    rollback: bool = False


def direction(record: TransitionRecord) -> Transition:
    """The move the next steps make: forward, or back to the source during a rollback."""
    if record.rolling_back and record.from_region is not None:
        return Transition(
            record.id, record.kind, record.to_region, record.from_region, record.dry_run
        )
    return Transition(record.id, record.kind, record.from_region, record.to_region, record.dry_run)


def current_attempts(record: TransitionRecord) -> Attempts | None:
    """The attempts that belong to the current direction (forward ones go stale on rollback)."""
    attempts = record.attempts
    if attempts is None or attempts.rollback != record.rolling_back:
        return None
    return attempts


def due_in(state: State, now: float) -> float | None:
    """Seconds until the transition in progress wants a pass; None when it waits for a person."""
    running = state.in_progress
    if running is None:
        return None
    if running.abort is not None and not running.rolling_back:
        return 0.0
    approval = running.approval
    if approval is not None and approval.waiting:
        return max(0.0, approval.deadline_at - now)  # a person decides, or the timeout does
    if approval is not None and approval.state != "approved":
        return 0.0  # a no to record
    if freeze_stops(state.frozen, running):
        return None
    attempts = current_attempts(running)
    if attempts is None:
        return 0.0
    if attempts.retry_at is None:
        return None
    return max(0.0, attempts.retry_at - now)


class _TimedOut(TemporaryError):
    """An attempt that outlived its timeout: it still runs, under the keeper's lease."""


class Reconciler:
    """Finishes the transition in progress; clock, sleep and randomness are injected."""

    def __init__(
        self,
        store: StateStore,
        actions: Sequence[Action],
        retry: Retry,
        *,
        holder: str | None = None,
        lease_seconds: float = 15.0,
        renew_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        on_step: Callable[[StepEvent], None] | None = None,
        on_finished: Callable[[TransitionRecord], None] | None = None,
        redact: Callable[[str], str] = str,
        announcer: Announcer | None = None,
        readiness: Callable[[TransitionRecord], str | None] | None = None,
        exit: Callable[[int], object] = os._exit,
        course: Course | None = None,
    ) -> None:
        self.store = store
        self._redact = redact
        self._announcer = announcer
        # Why the target may not take traffic now (None: ready); re-checked when an approval
        # times out into "proceed", as a person's yes is.
        self._readiness = readiness or (lambda record: None)
        self.actions = tuple(actions)
        # Which actions each transition runs: a switchover's fence, drain and unfence too.
        self.course = course or Course(self.actions)
        self.retry = retry
        self.holder = holder or default_holder()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds or lease_seconds / 3
        self._clock = clock
        self._rand = rand
        self._on_step = on_step
        self._on_finished = on_finished
        self._running = threading.Lock()  # one pass at a time per instance
        # Holds the lease while any attempt thread lives; runner.wake() once a stray returns.
        self.keeper = Keeper(
            store, self.holder, lease_seconds, self.renew_seconds, clock=clock, exit=exit
        )

    def due_in(self, state: State) -> float | None:
        """Seconds until the running transition wants a pass; None while it waits for a person."""
        return due_in(state, self._clock())

    def run_once(self) -> TransitionRecord | None:
        """Take the lease and drive the transition in progress; the finished record, or None.

        None when there is nothing to do, another holder has the lease, the lease was
        lost midway (the new holder resumes from the journal), or the transition
        waits: for its next attempt, for an operator (stalled), or for an unfreeze.
        StoreUnavailable propagates: the transition stays in progress for the next pass.
        """
        with self._running:
            return self._run_once()

    def _run_once(self) -> TransitionRecord | None:
        lease = self.keeper.acquire()
        if lease is None:
            return None
        try:
            running = self.store.state().in_progress
            if running is None:
                return None
            return self._drive(running.id)
        except (LeaseLost, UnknownTransition) as exc:
            log.warning(kv(event="reconciler_stopped", holder=self.holder, error=str(exc)))
            return None
        finally:
            self.keeper.end_pass()

    def _renew(self) -> int:
        return self.keeper.renew().token

    def _drive(self, transition_id: str) -> TransitionRecord | None:
        """Step until the transition finishes or must wait; re-read between steps."""
        started = False
        while True:
            state = self.store.state()
            record = state.in_progress
            if record is None or record.id != transition_id:
                return None
            if not started:
                self._log_start(record)
                started = True
            if record.in_flight is not None and not self._settled(record):
                return None  # an attempt still runs: everything waits for its step boundary
            abort = record.abort
            if abort is not None and not record.rolling_back:
                if record.steps and self._next_action(record) is None:
                    # Every step had applied: ending it aborted would leave the record on the
                    # source while the world is on the target.
                    log.info(kv(event="abort_after_last_step", transition=record.id))
                    return self._finish(record, *self.course.ending(record))
                return self._finish(record, "aborted", f"aborted by {abort.by}: {abort.reason}")
            if abort is None and record.approval is not None:
                go, finished = self._settle_approval(record)
                if not go:
                    return finished
                if record.approval.waiting:
                    continue  # the timeout has just decided: read the record again
            if freeze_stops(state.frozen, record):
                log.info(kv(event="transition_frozen", transition=record.id))
                return None
            action = self._next_action(record)
            if action is None:
                if record.rolling_back:
                    assert abort is not None
                    error = f"aborted by {abort.by} and rolled back: {abort.reason}"
                    return self._finish(record, "aborted", error)
                return self._finish(record, *self.course.ending(record))
            attempts = current_attempts(record)
            if attempts is not None and attempts.action == action.name:
                if attempts.retry_at is None or attempts.retry_at > self._clock():
                    return None  # halted, or not yet time for the next attempt
            else:
                attempts = None
            if not self._step(action, record, attempts):
                return None

    def _settled(self, record: TransitionRecord) -> bool:
        """False while this worker's attempt runs; else clears the marker a dead one left."""
        in_flight = record.in_flight
        assert in_flight is not None
        if self.keeper.busy():
            return False
        # Its worker is gone (it could not have lost the lease and lived), or it returned and
        # the keeper has not cleared the marker yet: the next attempt reads the object back.
        log.warning(
            kv(
                event="in_flight_cleared",
                transition=record.id,
                action=in_flight.action,
                attempt=in_flight.attempt,
                holder=in_flight.holder,
            )
        )
        self.store.mark_in_flight(record.id, None, self._renew())
        return True

    def _settle_approval(self, record: TransitionRecord) -> tuple[bool, TransitionRecord | None]:
        """(go on stepping, the finished record): wait for a person, time out, or end a no."""
        approval = record.approval
        assert approval is not None
        now = self._clock()
        if approval.waiting:
            if now < approval.deadline_at:
                return False, None
            problem = self._readiness(record) if approval.on_timeout == "proceed" else None
            change = approvals.expire(record, now, problem)
            notices: list[Notice] = []
            if change.approval is not None and change.approval.state == "approved":
                notices = self._notices("started", replace(record, approval=change.approval))
            self.store.operate(
                record.id,
                record.revision,
                change.operation,
                change.attempts,
                approval=change.approval,
                notices=notices,
            )
            log.warning(
                kv(event="approval_timed_out", transition=record.id, on_timeout=approval.on_timeout)
            )
            return True, None
        if approval.state in ("declined", "expired"):
            error = f"declined by {approval.decided_by}: {approval.reason}"
            return False, self._finish(record, "declined", error)
        if approval.state == "blocked":
            return False, self._finish(record, "blocked", approval.reason)
        return True, None

    def _notices(
        self, event: str, record: TransitionRecord, detail: str | None = None
    ) -> list[Notice]:
        """What the announcer makes of event; none without one."""
        if self._announcer is None:
            return []
        now = self._clock()
        if event == "started":
            return self._announcer.started(record, now)
        if event == "finished":
            return self._announcer.finished(record, now)
        return self._announcer.transition(record, event, now, detail)

    def _next_action(self, record: TransitionRecord) -> Action | None:
        """The next action to run in the current direction, or None when all are done.

        A rollback moves every action of the transition's course back to the source
        region, last first: not only the steps the journal says applied. A crash between a
        change and its journal write, a failed attempt that changed the object anyway, a
        stray that returned late or a skipped step all leave objects the journal does not
        name; each is read, compared, and changed only if it differs, like any step.
        """
        steps = self.course.steps(record)
        done = record.done_steps(rollback=record.rolling_back)
        scope = record.scope  # a repair of one action
        order = reversed(steps) if record.rolling_back else iter(steps)
        return next(
            (a for a in order if a.name not in done and (scope is None or a.name in scope)), None
        )

    def _step(self, action: Action, record: TransitionRecord, attempts: Attempts | None) -> bool:
        """One attempt of one step, journaled; True when it is done and the next may run."""
        transition = direction(record)
        rollback = record.rolling_back
        number = (attempts.count if attempts else 0) + 1
        started = attempts.began if attempts else self._clock()
        token = self._renew()
        in_flight = InFlight(action.name, number, self._clock(), self.holder, token, rollback)
        self.store.mark_in_flight(record.id, in_flight, token)
        try:
            outcome = self._attempt(action, transition, record.id)
        except TemporaryError as exc:
            wait = backoff(number, self.retry, self._rand(), exc.retry_after)
            error = self._redact(str(exc))
            still = in_flight if isinstance(exc, _TimedOut) else None
            self._trouble(record, action, attempts, error, self._clock() + wait, started, still)
            self._event(record, action.name, "failed", number, False, error, rollback)
            return False
        except PermanentError as exc:
            error = self._redact(str(exc))
            self._trouble(record, action, attempts, error, None, started)
            self._event(record, action.name, "failed", number, True, error, rollback)
            return False
        except Exception as exc:  # a bug in an action must not wedge the reconciler
            error = self._redact(f"unexpected {type(exc).__name__}: {exc}")
            log.exception(kv(event="action_crashed", action=action.name))
            self._trouble(record, action, attempts, error, None, started)
            self._event(record, action.name, "failed", number, True, error, rollback)
            return False
        step = StepRecord(
            outcome.action,
            outcome.result,
            outcome.before,
            outcome.after,
            at=self._clock(),
            attempts=number,
            rollback=rollback,
            started_at=started,
            failures=attempts.failures if attempts else (),
        )
        self.store.journal_step(record.id, step, self._renew())
        self._event(record, action.name, outcome.result, number, True, None, rollback)
        return True

    def _trouble(
        self,
        record: TransitionRecord,
        action: Action,
        attempts: Attempts | None,
        error: str,
        retry_at: float | None,
        started: float,
        in_flight: InFlight | None = None,
    ) -> None:
        now = self._clock()
        recorded = Attempts(
            action=action.name,
            rollback=record.rolling_back,
            count=(attempts.count if attempts else 0) + 1,
            first_at=attempts.first_at if attempts else now,
            last_at=now,
            error=error,
            retry_at=retry_at,
            started_at=started,
            failures=add_failure(attempts.failures if attempts else (), error, now),
        )
        after = replace(record, attempts=recorded)
        # Told once per stall: the outbox keeps one notice per id however often it is queued.
        notices = (
            self._notices("stalled", after, f"{action.name}: {error}") if after.stalled(now) else []
        )
        self.store.record_attempts(record.id, recorded, self._renew(), notices, in_flight)

    def _attempt(self, action: Action, transition: Transition, transition_id: str) -> StepOutcome:
        """reconcile() in a thread bounded by the action's timeout_seconds.

        A call that hangs past it counts as a temporary failure, but it cannot be stopped:
        the keeper keeps the lease until it returns (or exits the process), the marker in
        flight keeps skip and abort off its step, and its outside writes are fenced by the
        lease's deadline. When it returns, the marker is cleared and the next attempt reads
        the object back: what the stray changed is never assumed, nor redone blindly.
        """
        box: dict[str, object] = {}
        lease = self.keeper.lease
        # Its DigitalOcean calls name the holder and fencing token, and may spend the reserve.
        caller = Caller(self.holder, fence=lease.token if lease else None)
        deadline = self.keeper.deadline

        def run() -> None:
            try:
                with calling_as(caller), fence.guarding(deadline):
                    box["outcome"] = reconcile(action, transition)
            except BaseException as exc:
                box["error"] = exc

        attempt = self.keeper.start(run, f"step-{action.name}")
        attempt.thread.join(action.timeout_seconds)
        if attempt.thread.is_alive():
            self.keeper.when_ended(attempt, lambda held: self._stray_returned(transition_id, held))
            raise _TimedOut(
                f"{action.name}: no result within {action.timeout_seconds:g}s (timeout_seconds)"
            )
        self.keeper.forget(attempt)
        error = box.get("error")
        if isinstance(error, BaseException):
            raise error
        outcome = box["outcome"]
        assert isinstance(outcome, StepOutcome)
        return outcome

    def _stray_returned(self, transition_id: str, lease: Lease) -> None:
        """A stray attempt returned: clear its marker (its outcome is read back, not kept)."""
        try:
            self.store.mark_in_flight(transition_id, None, lease.token)
        except UnknownTransition:
            return  # finished meanwhile (its finish cleared the marker)
        log.info(kv(event="stray_attempt_returned", transition=transition_id))

    def _finish(
        self, record: TransitionRecord, result: TransitionResult, error: str | None
    ) -> TransitionRecord:
        assert result != "in_progress"
        left = self.course.note(record) if result == "aborted" else None
        error = f"{error}; {left}" if error and left else error
        ended = replace(record, result=result, error=error, finished_at=self._clock())
        finished = self.store.finish_transition(
            record.id, result, self._renew(), error, self._notices("finished", ended)
        )
        self._finished(finished)
        return finished

    def _log_start(self, record: TransitionRecord) -> None:
        log.info(
            kv(
                event="transition_resume"
                if record.steps or record.attempts
                else "transition_start",
                transition=record.id,
                kind=record.kind,
                from_region=record.from_region,
                to_region=record.to_region,
                dry_run=record.dry_run,
            )
        )

    def _event(
        self,
        record: TransitionRecord,
        action: str,
        result: StepResult,
        attempt: int,
        final: bool,
        error: str | None,
        rollback: bool,
    ) -> None:
        level = logging.INFO if result != "failed" else logging.WARNING
        log.log(
            level,
            kv(
                event="step",
                transition=record.id,
                action=action,
                result=result,
                attempt=attempt,
                final=final,
                rollback=rollback or None,
                error=error,
            ),
        )
        if self._on_step is not None:
            try:
                self._on_step(StepEvent(record, action, result, attempt, final, error, rollback))
            except Exception:  # metrics must never stop a transition
                log.exception(kv(event="on_step_failed", action=action))

    def _finished(self, record: TransitionRecord) -> None:
        log.info(
            kv(
                event="transition_finished",
                transition=record.id,
                result=record.result,
                to_region=record.to_region,
                dry_run=record.dry_run,
                error=record.error,
            )
        )
        if self._on_finished is not None:
            try:
                self._on_finished(record)
            except Exception:
                log.exception(kv(event="on_finished_failed", transition=record.id))
