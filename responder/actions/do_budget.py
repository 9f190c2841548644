"""DigitalOcean's API budget as its answers tell it, and on whose behalf each call is made.

Every DigitalOcean answer carries ``ratelimit-limit`` (the token's requests an hour),
``ratelimit-remaining`` and ``ratelimit-reset``: the Unix time at which the oldest request
still counted expires, each request counting for one hour from when it was made. The client
hands every answer's headers to a Budget, which the process's clients share; it keeps the
newest and tells its listeners (the metrics). A 429's word lasts only its ``Retry-After``:
DigitalOcean answers ``ratelimit-remaining: 0`` while a minute's burst limit is reached too,
and a call refused is not counted, so once that has passed the next read may find out.

A call is made for a Caller, set for the current thread with calling_as(): a transition's
step (the lease holder and its fencing token, sent as headers, so that a request log can
show who wrote what and when), or the plan's evaluation, which keeps a reserve: a read of
its is refused (BudgetKept) when it would leave the token fewer calls than the reserve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from responder.actions.inspection import RATELIMIT
from responder.model.errors import TemporaryError

HOLDER_HEADER = "X-DDB-Failover-Holder"
FENCE_HEADER = "X-DDB-Failover-Fence"
HOUR_SECONDS = 3600.0


@dataclass(frozen=True)
class RateLimit:
    """One answer's word on the token's budget, and when it was seen."""

    limit: int
    remaining: int
    reset: float  # Unix time at which the oldest counted request expires
    seen_at: float
    refused_for: float | None = None  # a 429's Retry-After, in seconds

    def left(self, now: float) -> int | None:
        """The calls the token has at least by now, as far as this answer tells.

        One more once the oldest counted request has expired; all of them once every
        request counted when it was seen has (another client's calls since are unknown).
        None once a refusal's Retry-After has passed: it no longer tells.
        """
        if self.refused_for is not None and now >= self.seen_at + self.refused_for:
            return None
        if now >= self.seen_at + HOUR_SECONDS:
            return self.limit
        if now >= self.reset:
            return min(self.limit, self.remaining + 1)
        return self.remaining


def ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also takes ² (a header's byte 0xB2) and ٣, which float()
    refuses or reads as a number the sender never wrote."""
    return text.isascii() and text.isdigit()


def read_ratelimit(
    headers: Mapping[str, str], now: float, refused_for: float | None = None
) -> RateLimit | None:
    """The ratelimit-* headers of an answer; None unless all three are whole numbers.

    refused_for is a 429's Retry-After, kept with them: its word lasts that long only.
    """
    named = {k.lower(): v.strip() for k, v in headers.items()}
    values = [named.get(f"ratelimit-{n}", "") for n in ("limit", "remaining", "reset")]
    if not all(ascii_digits(v) for v in values):
        return None
    limit, remaining, reset = (int(v) for v in values)
    return RateLimit(limit, remaining, float(reset), now, refused_for)


class Budget:
    """The newest rate limit DigitalOcean's answers told this process; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: RateLimit | None = None
        self._listeners: list[Callable[[RateLimit], None]] = []

    def listen(self, listener: Callable[[RateLimit], None]) -> None:
        """Call listener with every rate limit seen from now on."""
        self._listeners.append(listener)

    def observe(self, headers: Mapping[str, str], refused_for: float | None = None) -> None:
        """Keep what an answer's headers say, if they say it (refused_for: a 429's wait)."""
        seen = read_ratelimit(headers, self._clock(), refused_for)
        if seen is None:
            return
        with self._lock:
            self._latest = seen
        for listener in self._listeners:
            listener(seen)

    def latest(self) -> RateLimit | None:
        """The newest rate limit seen, or None before any answer carried one."""
        with self._lock:
            return self._latest

    def now(self) -> float:
        """The budget's clock."""
        return self._clock()

    def left(self) -> int | None:
        """The calls the token has at least now; None while nothing is known."""
        latest = self.latest()
        return None if latest is None else latest.left(self._clock())


@dataclass
class Caller:
    """On whose behalf DigitalOcean is called; counts the calls made and refused for it."""

    holder: str
    fence: int | None = None
    # Calls to keep for transitions: a call that would leave fewer is refused. None: none kept.
    reserve: int | None = None
    calls: int = 0
    kept: int = 0

    def headers(self) -> dict[str, str]:
        """The headers naming the caller on each of its requests."""
        named = {HOLDER_HEADER: self.holder}
        if self.fence is not None:
            named[FENCE_HEADER] = str(self.fence)
        return named


class BudgetKept(TemporaryError):
    """A call refused before it was made, to keep the reserve of the token's budget."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=RATELIMIT)


_CALLER: ContextVar[Caller | None] = ContextVar("digitalocean_caller", default=None)


@contextmanager
def calling_as(caller: Caller) -> Iterator[Caller]:
    """Make this thread's DigitalOcean calls for caller until the block ends."""
    token = _CALLER.set(caller)
    try:
        yield caller
    finally:
        _CALLER.reset(token)


def current_caller() -> Caller | None:
    """The caller this thread's DigitalOcean calls are made for, if one is set."""
    return _CALLER.get()


def spend(budget: Budget, what: str) -> None:
    """Count one call for the current caller; BudgetKept when it would eat into its reserve."""
    caller = current_caller()
    if caller is None:
        return
    left = budget.left()
    if caller.reserve is not None and left is not None and left - 1 < caller.reserve:
        caller.kept += 1
        latest = budget.latest()
        limit = f" of {latest.limit} an hour" if latest is not None else ""
        refused = ""
        if latest is not None and latest.refused_for is not None:
            ago = max(0.0, budget.now() - latest.seen_at)
            refused = (
                f" (DigitalOcean answered HTTP 429 {ago:.1f} s ago, "
                f"retry after {latest.refused_for:.0f} s)"
            )
        raise BudgetKept(
            f"{what}: not read, to keep DigitalOcean's API budget for a failover: {left} "
            f"call(s) left{limit}{refused}, {caller.reserve} kept for a failover and a failback"
        )
    caller.calls += 1
