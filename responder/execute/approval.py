"""A person's yes or no before a transition acts: approve, decline, and the timeout (pure).

Each function checks the transition as it is now and returns the Change to write
(responder.execute.operations applies it, compare-and-set). Readiness is re-checked when
the yes arrives, by the caller, and passed in as `problem`: a target that is no
longer ready blocks the transition, as a decision would.
"""

from __future__ import annotations

from dataclasses import replace

from responder.execute.operations import Change
from responder.model.alerts import format_time
from responder.state.records import Approval, ApprovalState, Operation, TransitionRecord
from responder.state.store import Refused

RESPONDER = "responder"  # who decides when the timeout does


def waiting(record: TransitionRecord, now: float | None = None) -> Approval:
    """The approval record is waiting on; Refused when there is none to give.

    With now (a person's answer): also Refused once the deadline has passed, when
    on_timeout decides, or once an abort was asked for.
    """
    approval = record.approval
    if approval is None or not approval.waiting:
        state = approval.state if approval else "not needed"
        raise Refused(f"transition {record.id} is not waiting for approval ({state})")
    if now is not None and record.abort is not None:
        raise Refused(f"transition {record.id} is being aborted: nothing to approve")
    if now is not None and now >= approval.deadline_at:
        raise Refused(
            f"transition {record.id} waited past its approval deadline "
            f"({format_time(approval.deadline_at)}): on_timeout {approval.on_timeout} decides"
        )
    return approval


def approve(
    record: TransitionRecord, by: str, reason: str, now: float, problem: str | None
) -> Change:
    """Yes: the transition acts; blocked instead when its target is no longer ready."""
    approval = waiting(record, now)
    if approval.requested_by is not None and approval.requested_by == by:
        raise Refused(
            f"transition {record.id} was requested by {by}: another operator's token must "
            "approve it"
        )
    state: ApprovalState = "blocked" if problem else "approved"
    decided = replace(
        approval,
        state=state,
        decided_by=by,
        decided_at=now,
        reason=f"target no longer ready: {problem}" if problem else reason,
    )
    operation = Operation("approve", by, reason, now)
    return Change(operation, record.attempts, approval=decided)


def decline(record: TransitionRecord, by: str, reason: str, now: float) -> Change:
    """No: the transition ends declined, having changed nothing."""
    approval = waiting(record, now)
    if not reason.strip():
        raise Refused("decline needs a reason: it is kept in the history")
    decided = replace(approval, state="declined", decided_by=by, decided_at=now, reason=reason)
    return Change(Operation("decline", by, reason, now), record.attempts, approval=decided)


def expire(record: TransitionRecord, now: float, problem: str | None) -> Change:
    """Nobody answered in time: on_timeout proceed (if still ready) or abort, recorded as such."""
    approval = waiting(record)
    waited = f"no answer within {approval.deadline_at - record.started_at:g}s"
    if approval.on_timeout == "abort":
        decided = replace(
            approval,
            state="expired",
            decided_by=RESPONDER,
            decided_at=now,
            reason=f"{waited}; on_timeout: abort",
        )
        return Change(
            Operation("decline", RESPONDER, decided.reason or "", now), None, None, decided
        )
    if problem:
        reason = f"{waited}; on_timeout: proceed, but target no longer ready: {problem}"
        decided = replace(
            approval, state="blocked", decided_by=RESPONDER, decided_at=now, reason=reason
        )
    else:
        decided = replace(
            approval,
            state="approved",
            decided_by=RESPONDER,
            decided_at=now,
            reason=f"{waited}; on_timeout: proceed",
        )
    return Change(
        Operation("approve", RESPONDER, decided.reason or "", now),
        record.attempts,
        approval=decided,
    )


def resolved(record: TransitionRecord, now: float) -> Approval | None:
    """The approval marked 'its alerts resolved' (the person still decides); None if moot."""
    approval = record.approval
    if approval is None or not approval.waiting or approval.alerts_resolved_at is not None:
        return None
    return replace(approval, alerts_resolved_at=now)
