"""The one shape every action has: current, desired, apply, verify; and inspect, read-only."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from responder.actions.inspection import Inspection, Limits, Problem, problem_of
from responder.model.errors import ActionError, PermanentError

Json = Any
Result = Literal["applied", "unchanged", "would_apply"]


@dataclass(frozen=True)
class Transition:
    """What an action needs to know about the transition it is part of."""

    id: str
    kind: str
    from_region: str | None
    to_region: str
    dry_run: bool = False
    fence: str | None = None  # a switchover's fence step: "fenced" or "open"


@dataclass(frozen=True)
class StepOutcome:
    """The journaled result of one action in one transition."""

    action: str
    result: Result
    before: Json
    after: Json


class Action(ABC):
    """Drives one outside object to the state a region needs; idempotent."""

    type: str = ""
    # The bound on one attempt of the step; the registry sets the configured value.
    timeout_seconds: float = 60.0

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def current(self) -> Json:
        """Read the outside object's state now, as JSON-serialisable data."""

    @abstractmethod
    def desired(self, region: str) -> Json:
        """The state the object should have for region, comparable with current()."""

    @abstractmethod
    def apply(self, desired: Json, transition: Transition) -> None:
        """Change the outside object to desired; raise TemporaryError or PermanentError."""

    def inspect(self, region: str, limits: Limits | None = None) -> Inspection:
        """Read-only: the object now, what region wants, and what would stop the move.

        Never writes and never raises ActionError: a failed read is a problem of its kind.
        """
        desired = self.desired(region)
        problems: list[Problem] = []
        try:
            current = self.examine(region, desired, limits or Limits(), problems)
        except ActionError as exc:
            problems.append(problem_of(exc))
            return Inspection(self.name, self.type, None, desired, None, tuple(problems))
        changes = current != desired
        return Inspection(self.name, self.type, current, desired, changes, tuple(problems))

    def digitalocean_calls(self) -> int:
        """The DigitalOcean API calls one attempt of a move to a region makes, at most.

        The plan keeps a failover's and a failback's worth of them in reserve
        (responder.actions.do_budget); actions that do not call DigitalOcean make none.
        """
        return 0

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Read the object (once) and return current(); append what stands in region's way.

        Override to add the action's own read-only checks; problems appended before a
        read raises are kept.
        """
        return self.current()

    def verify(self, desired: Json) -> Json:
        """Read back and return the state; PermanentError when it is not desired."""
        after = self.current()
        if after != desired:
            raise PermanentError(f"{self.name}: verify failed: wanted {desired!r}, read {after!r}")
        return after


def reconcile(action: Action, transition: Transition) -> StepOutcome:
    """Read, compare, change only if different, verify; report what happened."""
    desired = action.desired(transition.to_region)
    before = action.current()
    if before == desired:
        return StepOutcome(action.name, "unchanged", before, before)
    if transition.dry_run:
        return StepOutcome(action.name, "would_apply", before, desired)
    action.apply(desired, transition)
    after = action.verify(desired)
    return StepOutcome(action.name, "applied", before, after)
