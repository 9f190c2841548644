"""How long to wait before the next attempt: capped exponential backoff with jitter."""

from __future__ import annotations

from ddb_failover.config import Retry


def backoff(attempt: int, retry: Retry, rand: float, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt number attempt: exponential, half jittered, capped.

    Retry-After is honoured up to the cap: a server asking for a day is asked again
    at the cap, since a regional incident can end sooner than it predicts.
    """
    cap = retry.max_backoff_seconds
    ceiling = min(cap, retry.initial_backoff_seconds * 2 ** (attempt - 1))
    delay = ceiling / 2 + rand * ceiling / 2
    return min(max(delay, retry_after or 0.0), cap)
