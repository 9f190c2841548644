"""Operator commands on the transition in progress: retry, skip and abort.

Each command is checked against the transition as it is now (a pure function
of the record), then written as one compare-and-set on the transition's
revision, so a command decided on a stale read is re-checked, never applied.
The reconciler carries it out at its next step boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from responder.model.alerts import format_time
from responder.state.outbox import Notice
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    NewTransition,
    Operation,
    State,
    StepRecord,
    TransitionRecord,
)
from responder.state.store import AttemptInFlight, Refused, StateStore, UnknownTransition

NOTHING_APPLIED = "nothing was applied: nothing to roll back"
# Losing the compare-and-set this often means the reconciler is busy changing the record.
ATTEMPTS = 3


@dataclass(frozen=True)
class Change:
    """What one command writes: the operation, attempts, a step, the approval, notices."""

    operation: Operation | None
    attempts: Attempts | None
    step: StepRecord | None = None
    approval: Approval | None = None
    notices: tuple[Notice, ...] = ()


def retry(record: TransitionRecord, by: str, reason: str, now: float) -> Change:
    """Run the step in trouble again now: after fixing a token, a record, a permission."""
    attempts = record.attempts
    _not_waiting(record)
    if record.abort is not None and not record.rolling_back:
        raise Refused(f"transition {record.id} is being aborted")
    if attempts is None:
        raise Refused(f"nothing to retry: no step of transition {record.id} is failing")
    operation = Operation("retry", by, reason, now, action=attempts.action)
    return Change(operation, replace(attempts, retry_at=now))


def skip(record: TransitionRecord, action: str, by: str, reason: str, now: float) -> Change:
    """Record the step in trouble as skipped, so the transition goes on without it."""
    attempts = record.attempts
    if not reason.strip():
        raise Refused("skip needs a reason: it is kept in the history")
    if attempts is None or attempts.action != action:
        stuck = f"the step in trouble is {attempts.action}" if attempts else "no step is failing"
        raise Refused(f"cannot skip {action}: {stuck}")
    in_flight = record.in_flight
    if in_flight is not None and in_flight.action == action:
        raise AttemptInFlight(
            f"cannot skip {action}: attempt {in_flight.attempt} in flight since "
            f"{format_time(in_flight.started_at)}; skip it once it has returned"
        )
    step = StepRecord(
        action,
        "skipped",
        error=f"skipped by {by}: {reason}",
        at=now,
        attempts=attempts.count,
        rollback=attempts.rollback,
        started_at=attempts.began,
        failures=attempts.failures,
    )
    return Change(Operation("skip", by, reason, now, action=action), None, step)


def abort(record: TransitionRecord, by: str, reason: str, rollback: bool, now: float) -> Change:
    """Stop the transition; with rollback, first drive its applied steps back to the source."""
    if not reason.strip():
        raise Refused("abort needs a reason: it is kept in the history")
    earlier = record.abort
    if earlier is not None:
        raise Refused(f"transition {record.id} is already being aborted by {earlier.by}")
    if rollback and record.from_region is None:
        raise Refused(f"transition {record.id} has no source region to roll back to")
    approval = record.approval
    if approval is not None and approval.waiting:
        # Nothing was applied: the transition ends at once, with nothing to roll back.
        declined = replace(approval, state="declined", decided_by=by, decided_at=now, reason=reason)
        operation = Operation("abort", by, f"{reason}; {NOTHING_APPLIED}", now)
        return Change(operation, record.attempts, approval=declined)
    stuck = record.attempts.action if record.attempts else None
    operation = Operation("abort", by, reason, now, action=stuck, rollback=rollback)
    # A rollback starts fresh: its own steps, each retried like any other.
    attempts = record.attempts if not rollback else None
    return Change(operation, attempts)


def repair(
    state: State,
    by: str,
    reason: str,
    actions: Sequence[str],
    now: float,
    deadline_seconds: float,
    dry_run: bool = False,
) -> NewTransition:
    """A repair: every action (or those named) reconciled to the ACTIVE region's state.

    Never automatic: a person asks, after drift was reported. Refused while another
    transition runs: it would fight that transition over the same objects.
    """
    if not reason.strip():
        raise Refused("repair needs a reason: it is kept in the history")
    running = state.in_progress
    if running is not None:
        raise Refused(f"cannot repair: transition {running.id} ({running.kind}) is in progress")
    active = state.active_region
    return NewTransition(
        "repair",
        active,
        active,
        Cause(operator=by, reason=reason),
        None,
        dry_run,
        deadline_at=now + deadline_seconds,
        evidence={"repair": {"actions": list(actions)}},
    )


def apply(
    store: StateStore,
    command: Callable[[TransitionRecord], Change],
    expected_id: str | None = None,
) -> TransitionRecord:
    """Check command against the transition in progress, then write it; Refused if it cannot."""
    for _ in range(ATTEMPTS):
        record = store.state().in_progress
        if record is None:
            raise Refused("no transition in progress")
        if expected_id is not None and record.id != expected_id:
            raise Refused(f"transition {expected_id} is not in progress (running: {record.id})")
        change = command(record)
        try:
            written = store.operate(
                record.id,
                record.revision,
                change.operation,
                change.attempts,
                change.step,
                change.approval,
                change.notices,
            )
        except UnknownTransition:  # it ended between the read and the write
            raise Refused(
                f"transition {record.id} ended meanwhile: no longer in progress"
            ) from None
        if written is not None:
            return written
    raise Refused("the transition kept changing under the command; try again")


def _not_waiting(record: TransitionRecord) -> None:
    if record.approval is not None and record.approval.waiting:
        raise Refused(f"transition {record.id} is waiting for approval: approve or decline it")
