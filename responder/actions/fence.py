"""A switchover's fence: an ordinary action driven to a fixed value, fenced or open.

The configured action (responder.switchover.fence) sets a value where it would set a
region's name: WordPress's read-only flag in an env file, an App Platform variable,
an SSM parameter, or a maintenance-mode command (it reads DDB_FAILOVER_FENCE). Fence
wraps it: desired(region) is the fenced value for the region it fences for, the open
value for any other, so a rollback towards the source opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from responder.actions.base import Action, Json, Transition
from responder.actions.inspection import Limits, Problem

FENCE_PREFIX = "fence:"
UNFENCE_PREFIX = "unfence:"


@dataclass(frozen=True)
class FenceValues:
    """The two values of a fence action."""

    fenced: str
    open: str


class Fence(Action):
    """inner at `fenced` for the region fenced_for (None: none), at `open` for the others."""

    def __init__(
        self, inner: Action, values: FenceValues, name: str, fenced_for: str | None
    ) -> None:
        super().__init__(name)
        self.inner = inner
        self.values = values
        self.fenced_for = fenced_for
        self.type = inner.type
        self.timeout_seconds = inner.timeout_seconds

    def value(self, region: str) -> str:
        """The value the fence has for a move to region."""
        return self.values.fenced if region == self.fenced_for else self.values.open

    def current(self) -> Json:
        """The inner action's state."""
        return self.inner.current()

    def desired(self, region: str) -> Json:
        """The inner action's state for the fence's value (not for the region)."""
        return self.inner.desired(self.value(region))

    def apply(self, desired: Json, transition: Transition) -> None:
        """The inner action's change; a command learns which value it sets."""
        fenced = desired == self.inner.desired(self.values.fenced)
        self.inner.apply(desired, replace(transition, fence="fenced" if fenced else "open"))

    def verify(self, desired: Json) -> Json:
        """The inner action's read-back."""
        return self.inner.verify(desired)

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """The inner action's read-only checks, for the fence's value."""
        return self.inner.examine(self.value(region), desired, limits, problems)

    def left_on(self, current: Json) -> bool:
        """True when current (a read of the object) holds the fenced value."""
        value = current.get("value") if isinstance(current, dict) else current
        return bool(
            value == self.values.fenced or current == self.inner.desired(self.values.fenced)
        )

    def digitalocean_calls(self) -> int:
        """As many as the inner action makes."""
        return self.inner.digitalocean_calls()


def fence_step(inner: Action, values: FenceValues, target: str) -> Fence:
    """The step that fences writes before the drain (opened again by a rollback)."""
    return Fence(inner, values, FENCE_PREFIX + inner.name, target)


def steady_fence(inner: Action, values: FenceValues) -> Fence:
    """The fence as it must be between switchovers: open. One left on is drift."""
    return Fence(inner, values, FENCE_PREFIX + inner.name, None)


def unfence_step(inner: Action, values: FenceValues) -> Fence:
    """The step that opens writes again, after the move (or after a drain that timed out)."""
    return Fence(inner, values, UNFENCE_PREFIX + inner.name, None)
