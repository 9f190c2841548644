"""DigitalOcean's API rate limits, per token, and the ratelimit-* headers each answer carries.

As DigitalOcean describes it: a token may make 5,000 requests an hour and 250 a minute. Each
request counts for one hour from when it was made (its own timer, not a window that resets),
so ``ratelimit-reset`` is the Unix time at which the oldest counted request expires.
``ratelimit-limit`` is the hourly limit and ``ratelimit-remaining`` what is left of it, or 0
while the minute's burst limit is reached. A request over either limit is refused with 429 and
not counted; over the burst limit the 429 also says ``retry-after``, the seconds until the
oldest request of the last minute expires.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOUR_SECONDS = 3600.0
MINUTE_SECONDS = 60.0
MAX_PER_HOUR = 1_000_000  # bounds the timestamps kept per token


@dataclass(frozen=True)
class Limits:
    """What a token may spend: requests per hour and per minute."""

    per_hour: int = 5000
    per_minute: int = 250


def parse_limits(body: Any) -> Limits:
    """Limits from the control endpoint's JSON; a field left out is DigitalOcean's default."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {"per_hour", "per_minute"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    for key, value in body.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PER_HOUR:
            raise ValueError(f"{key} must be an integer from 1 to {MAX_PER_HOUR}, got {value!r}")
    return Limits(**body)


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go ahead, and the ratelimit-* headers its answer carries."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix time at which the oldest counted request expires
    retry_after: int | None = None  # seconds; set only when the burst limit refused it

    def headers(self) -> dict[str, str]:
        shown = {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset),
        }
        if self.retry_after is not None:
            shown["Retry-After"] = str(self.retry_after)
        return shown


class RateLimiter:
    """The requests each token made in the last hour; thread-safe; the clock is injectable."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.limits = Limits()
        self._made: dict[str, collections.deque[float]] = {}

    def spend(self, token: str) -> Verdict:
        """Count one request of token's if both limits allow it; the verdict either way."""
        with self._lock:
            now = self._clock()
            made = _expired_dropped(self._made.setdefault(token, collections.deque()), now)
            last_minute = _since(made, now - MINUTE_SECONDS)
            if len(made) >= self.limits.per_hour:
                return self._verdict(made, last_minute, now, allowed=False)
            if last_minute >= self.limits.per_minute:
                oldest = made[len(made) - last_minute]
                wait = max(1, math.ceil(oldest + MINUTE_SECONDS - now))
                return self._verdict(made, last_minute, now, allowed=False, retry_after=wait)
            made.append(now)
            return self._verdict(made, last_minute + 1, now, allowed=True)

    def peek(self, token: str) -> Verdict:
        """The headers for an answer that does not count (one refused before it was counted)."""
        with self._lock:
            now = self._clock()
            made = self._made_by(token, now)
            return self._verdict(made, _since(made, now - MINUTE_SECONDS), now, allowed=True)

    def set(self, limits: Limits) -> None:
        """Enforce limits from now on; requests already made still count against them."""
        with self._lock:
            self.limits = limits

    def restore(self) -> None:
        """DigitalOcean's limits, and no request counted."""
        with self._lock:
            self.limits = Limits()
            self._made.clear()

    def view(self, token: str) -> dict[str, int]:
        """The limits, and token's requests counted in the last hour and minute."""
        with self._lock:
            now = self._clock()
            made = self._made_by(token, now)
            return {
                "per_hour": self.limits.per_hour,
                "per_minute": self.limits.per_minute,
                "used_last_hour": len(made),
                "used_last_minute": _since(made, now - MINUTE_SECONDS),
            }

    def _made_by(self, token: str, now: float) -> collections.deque[float]:
        """Token's requests of the last hour, without keeping a token never counted."""
        made = self._made.get(token)
        return collections.deque() if made is None else _expired_dropped(made, now)

    def _verdict(
        self,
        made: collections.deque[float],
        last_minute: int,
        now: float,
        allowed: bool,
        retry_after: int | None = None,
    ) -> Verdict:
        burst = last_minute >= self.limits.per_minute
        remaining = 0 if burst else max(0, self.limits.per_hour - len(made))
        reset = math.ceil(made[0] + HOUR_SECONDS) if made else math.ceil(now)
        return Verdict(allowed, self.limits.per_hour, remaining, reset, retry_after)


def _expired_dropped(made: collections.deque[float], now: float) -> collections.deque[float]:
    """made (oldest first) without the requests that no longer count; changed in place."""
    while made and made[0] <= now - HOUR_SECONDS:
        made.popleft()
    return made


def _since(made: collections.deque[float], cutoff: float) -> int:
    """How many of made (oldest first) are later than cutoff."""
    count = 0
    for stamp in reversed(made):
        if stamp <= cutoff:
            break
        count += 1
    return count
