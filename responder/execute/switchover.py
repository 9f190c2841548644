"""A switchover's course: fence, drain, the ordinary actions, unfence; and its figures (pure).

The reconciler asks steps(record) for the actions of a transition in its current
direction, so a switchover is journaled step by step like any transition: a crash
resumes it where it stopped, an abort with rollback opens the fence again.

    fence:NAME...  drain  ACTIONS...  unfence:NAME...

A drain that timed out (drained: false in its journaled step) leaves out the actions:
the transition unfences and ends `blocked`, nothing moved, unless the operator forced
it (cause.force), when it moves anyway and the report says what was at risk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from responder.actions.base import Action
from responder.actions.drain import DRAIN
from responder.actions.fence import (
    FENCE_PREFIX,
    UNFENCE_PREFIX,
    FenceValues,
    fence_step,
    steady_fence,
    unfence_step,
)
from responder.state.records import Json, StepRecord, TransitionRecord, TransitionResult

# Transition kinds that fence, drain and unfence around the move.
FENCED_KINDS = frozenset({"switchover", "practice"})
# The drain step of a record: its marker, source and target come from the record.
DrainFactory = Callable[[TransitionRecord], Action]


@dataclass(frozen=True)
class FencePart:
    """A configured fence action and its two values."""

    action: Action
    values: FenceValues


@dataclass(frozen=True)
class Drained:
    """What a journaled drain step says."""

    drained: bool
    seconds: float | None
    error: str | None


def drained(record: TransitionRecord) -> Drained | None:
    """The drain's outcome, once its step is journaled; None before."""
    step = record.done_steps().get(DRAIN)
    if step is None:
        return None
    after = step.after if isinstance(step.after, dict) else {}
    if step.result == "skipped":
        return Drained(False, None, step.error)
    if step.result != "applied":  # unchanged: the marker was there already; would_apply: dry run
        return Drained(True, after.get("seconds"), None)
    return Drained(bool(after.get("drained")), after.get("seconds"), after.get("error"))


def moves(record: TransitionRecord) -> bool:
    """True unless a drain that timed out stops the move: not when forced, or skipped."""
    outcome = drained(record)
    if outcome is None or outcome.drained or record.cause.force:
        return True
    step = record.done_steps()[DRAIN]
    return step.result == "skipped"


class Course:
    """The actions each transition runs, by kind and direction."""

    def __init__(
        self,
        actions: Sequence[Action],
        fences: Sequence[FencePart] = (),
        drain: DrainFactory | None = None,
    ) -> None:
        self.actions = tuple(actions)
        self.fences = tuple(fences)
        self._drain = drain

    def steps(self, record: TransitionRecord) -> tuple[Action, ...]:
        """The actions of record in its current direction, in order (a rollback reverses them)."""
        if record.kind == "repair":  # a fence left on is drift too: a repair opens it
            return (*self.actions, *(steady_fence(f.action, f.values) for f in self.fences))
        if record.kind not in FENCED_KINDS:
            return self.actions
        fence = tuple(fence_step(f.action, f.values, record.to_region) for f in self.fences)
        if record.rolling_back:
            return (*fence, *self.actions)  # the actions go back first, then the fence opens
        unfence = tuple(unfence_step(f.action, f.values) for f in self.fences)
        drain = (self._drain(record),) if self._drain is not None else ()
        middle = self.actions if moves(record) else ()
        return (*fence, *drain, *middle, *unfence)

    def ending(self, record: TransitionRecord) -> tuple[TransitionResult, str | None]:
        """How a transition whose steps are all done ends."""
        if record.kind not in FENCED_KINDS or moves(record):
            return "completed", None
        outcome = drained(record)
        assert outcome is not None
        return "blocked", (
            f"drain timed out: {outcome.error or 'the marker did not arrive'}; "
            "unfenced, nothing moved (--force moves without a complete drain)"
        )

    def note(self, record: TransitionRecord) -> str | None:
        """What an abort leaves behind that the error must say: a fence still on."""
        if record.kind not in FENCED_KINDS or record.rolling_back:
            return None
        done = record.done_steps()
        left = [
            f.action.name
            for f in self.fences
            if _changed(done.get(FENCE_PREFIX + f.action.name))
            and UNFENCE_PREFIX + f.action.name not in done
        ]
        if not left:
            return None
        return (
            f"the fence is left on ({', '.join(left)}): writes stay refused until it is "
            "opened (it shows as drift; repair, or a switchover, opens it)"
        )


def _changed(step: StepRecord | None) -> bool:
    return step is not None and step.result in ("applied", "unchanged")


def _first(steps: Sequence[StepRecord], prefix: str) -> float | None:
    times = [s.started_at or s.at for s in steps if s.action.startswith(prefix)]
    return min(times) if times else None


def _last(steps: Sequence[StepRecord], prefix: str) -> float | None:
    times = [s.at for s in steps if s.action.startswith(prefix)]
    return max(times) if times else None


def _moving(step: StepRecord) -> bool:
    """A step of the ordinary actions: not the fence, the drain or the unfence."""
    return step.action != DRAIN and not step.action.startswith((FENCE_PREFIX, UNFENCE_PREFIX))


def figures(record: TransitionRecord) -> Json:
    """A fenced transition's figures for its report; None for other kinds.

    rpo_seconds: 0 when the drain completed behind a fence; the replication lag the
    decision measured when forced past a drain that timed out; None when nothing moved
    or no fence was configured (writes went on in the source). write_unavailable_seconds:
    from the first fence step's start to the last unfence step's end.
    """
    if record.kind not in FENCED_KINDS:
        return None
    steps = [s for s in record.steps if not s.rollback and s.result != "failed"]
    fence_started = _first(steps, FENCE_PREFIX)
    unfenced = _last(steps, UNFENCE_PREFIX)
    drain = next((s for s in steps if s.action == DRAIN), None)
    outcome = drained(record)
    moved = [s.at for s in steps if _moving(s)]
    fenced = fence_started is not None
    rpo: float | None = None
    if outcome is not None and moves(record) and moved and fenced:
        rpo = 0.0 if outcome.drained else record.data_at_risk_seconds
    unavailable = None
    if fence_started is not None and unfenced is not None:
        unavailable = max(0.0, unfenced - fence_started)
    elif not fenced and record.finished_at is not None:
        unavailable = 0.0
    return {
        "rpo_seconds": rpo,
        "write_unavailable_seconds": unavailable,
        "drain_seconds": outcome.seconds if outcome is not None else None,
        "fence_started_at": fence_started,
        "fenced_at": _last(steps, FENCE_PREFIX),
        "drain_started_at": drain.started_at if drain is not None else None,
        "drained_at": drain.at if drain is not None else None,
        "drained": outcome.drained if outcome is not None else None,
        "drain_error": outcome.error if outcome is not None else None,
        "forced": record.cause.force,
        "moved_at": max(moved) if moved and moves(record) else None,
        "unfenced_at": unfenced,
        "fenced": fenced,
    }
