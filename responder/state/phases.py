"""The phase rules: the phase, the desired region and the freeze, from the records (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from responder.state.records import DecisionRecord, Freeze, Phase, TransitionRecord


@dataclass
class PhaseInputs:
    """What phase() needs; kept separate so every backend derives the phase the same way."""

    frozen: Freeze | None
    in_progress: TransitionRecord | None
    last_transition: TransitionRecord | None
    last_blocked_at: float | None = None
    last_unfrozen_at: float | None = None
    now: float = 0.0


def blocks_phase(record: DecisionRecord) -> bool:
    """An automatic transition was blocked: the phase shows blocked until something changes."""
    return record.kind == "blocked" and record.transition_kind in ("failover", "failback")


def clears_block(record: DecisionRecord) -> bool:
    """The alerts behind a block resolved: the phase goes back to steady."""
    alerts = record.cause.alerts
    return bool(alerts) and all(a.get("status") == "resolved" for a in alerts)


def freeze_stops(frozen: Freeze | None, transition: TransitionRecord) -> bool:
    """A freeze stops a transition at its next step boundary.

    Not an operator's transition asked for after the freeze: freezing automation and
    then moving traffic by hand is the usual way to take over.
    """
    if frozen is None:
        return False
    return not (transition.kind == "manual" and transition.started_at > frozen.at)


def desired_region(active: str, last: TransitionRecord | None) -> str:
    """Where the outside world is being driven: the running transition's end, or active."""
    if last is None:
        return active
    if last.in_progress:
        if last.rolling_back and last.from_region is not None:
            return last.from_region
        return last.to_region
    return last.to_region if last.result == "failed" else active


def phase(inputs: PhaseInputs) -> Phase:
    """Derive the phase.

    A transition in progress awaits approval, or is frozen (a freeze stopped it), stalled
    (a permanent error, or past its deadline), else failing over or back. Otherwise blocked when
    frozen, after a failed transition, or while an automatic transition is blocked
    (until a transition, an unfreeze, or its alerts resolve).
    """
    running = inputs.in_progress
    if running is not None:
        if running.approval is not None and running.approval.waiting:
            return "awaiting_approval"
        if freeze_stops(inputs.frozen, running):
            return "frozen"
        if running.stalled(inputs.now):
            return "stalled"
        return "failing_back" if running.kind == "failback" else "failing_over"
    if inputs.frozen is not None:
        return "blocked"
    last = inputs.last_transition
    if last is not None and last.result == "failed":
        return "blocked"
    if inputs.last_blocked_at is not None:
        newer_than = max(
            (last.finished_at or last.started_at) if last else 0.0,
            inputs.last_unfrozen_at or 0.0,
        )
        if inputs.last_blocked_at > newer_than:
            return "blocked"
    return "steady"
