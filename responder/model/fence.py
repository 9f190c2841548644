"""The lease's deadline, checked right before each outside write of an attempt.

A worker that can no longer renew its lease exits (responder.execute.keeper), but a
write already on its way when the lease runs out would still land after another
worker took over. So every outside write (a DigitalOcean or AWS change, an env file
replaced, a command started) first asks check(): past the deadline of the lease the
attempt runs under, it is refused. Threads without a deadline (reads, the plan, tests
of one action) are never refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from responder.model.alerts import format_time
from responder.model.errors import TemporaryError


class LeaseDeadlinePassed(TemporaryError):
    """An outside write refused: the lease it would be made under has run out."""


class Deadline:
    """The lease's expiry as this worker last renewed it; moved forward on each renewal."""

    def __init__(self, until: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self._until = until
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def until(self) -> float:
        """The time after which no write may start."""
        with self._lock:
            return self._until

    def extend(self, until: float) -> None:
        """The lease was renewed (or taken) until then."""
        with self._lock:
            self._until = until

    def check(self, what: str) -> None:
        """LeaseDeadlinePassed when the deadline has passed."""
        until = self.until
        if self._clock() >= until:
            raise LeaseDeadlinePassed(
                f"{what}: not written: the lease ran out at {format_time(until)}"
            )


_DEADLINE: ContextVar[Deadline | None] = ContextVar("lease_deadline", default=None)


@contextmanager
def guarding(deadline: Deadline) -> Iterator[Deadline]:
    """Check this thread's outside writes against deadline until the block ends."""
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def check(what: str) -> None:
    """Right before an outside write: LeaseDeadlinePassed once this thread's lease ran out."""
    deadline = _DEADLINE.get()
    if deadline is not None:
        deadline.check(what)
