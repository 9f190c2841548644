"""The plan's share of DigitalOcean's API budget: the reserve a failover needs, and what is left.

The reserve is what one attempt of a failover and one of a failback would call
(each action's digitalocean_calls(), twice). The evaluation's reads keep it: a read that
would leave the token fewer calls is not made (do_budget.Caller.reserve), and the action's
inspection says so with a problem of kind ratelimit. A transition may spend the reserve.
When fewer than WARN_RESERVES reserves are left, every DigitalOcean action's inspection
carries a ratelimit problem, so the plan is not ready and FailoverPlanNotReady says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from responder.actions.base import Action
from responder.actions.do_budget import Budget, Caller
from responder.actions.inspection import RATELIMIT, Inspection, Problem
from responder.model.alerts import format_time

WARN_RESERVES = 3


def reserve(actions: Sequence[Action]) -> int:
    """The DigitalOcean calls one attempt of a failover and one of a failback make."""
    return 2 * sum(action.digitalocean_calls() for action in actions)


@dataclass(frozen=True)
class BudgetReport:
    """DigitalOcean's API budget after an evaluation, and what the evaluation spent of it."""

    reserve: int
    calls: int  # the calls the evaluation made
    kept: int  # the reads it did not make, to keep the reserve
    limit: int | None = None  # None: no answer has told it yet
    left: int | None = None
    reset: float | None = None

    @property
    def low(self) -> bool:
        """True when fewer than WARN_RESERVES reserves are left."""
        return self.left is not None and self.left < WARN_RESERVES * self.reserve

    def problem(self) -> Problem:
        """The ratelimit problem a low budget is, naming the numbers."""
        expires = ""
        if self.reset is not None:
            expires = f"; the oldest call counted expires at {format_time(self.reset)}"
        return Problem(
            RATELIMIT,
            f"DigitalOcean API budget low: {self.left} call(s) left of {self.limit} an hour, "
            f"under {WARN_RESERVES} x the {self.reserve} a failover and a failback need"
            f"{expires}",
        )

    def to_json(self) -> dict[str, Any]:
        """The plan's "digitalocean" entry."""
        return {
            "limit": self.limit,
            "left": self.left,
            "reset": format_time(self.reset) if self.reset is not None else None,
            "reserve": self.reserve,
            "low": self.low,
            "calls": self.calls,
            "kept": self.kept,
        }


def report(budget: Budget | None, caller: Caller) -> BudgetReport:
    """What budget says now, with what caller (the evaluation) spent and kept."""
    assert caller.reserve is not None
    latest = budget.latest() if budget is not None else None
    if budget is None or latest is None:
        return BudgetReport(caller.reserve, caller.calls, caller.kept)
    return BudgetReport(
        caller.reserve, caller.calls, caller.kept, latest.limit, budget.left(), latest.reset
    )


def flagged(inspection: Inspection, problem: Problem) -> Inspection:
    """inspection with problem, unless it has a ratelimit problem already (a read not made)."""
    if any(p.kind == RATELIMIT for p in inspection.problems):
        return inspection
    return replace(inspection, problems=(*inspection.problems, problem))
