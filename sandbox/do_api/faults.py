"""Injected failures: answer the next N matching calls with 429, 500 or 503."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

STATUSES = (429, 500, 503)
ERROR_BODIES = {
    429: ("too_many_requests", "API Rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    503: ("service_unavailable", "The service is temporarily unavailable. Try again later."),
}


@dataclass
class Fault:
    """Answer `remaining` more calls under path_prefix with status."""

    status: int
    remaining: int
    retry_after: int | None = None
    path_prefix: str = "/v2/"


def parse_fault(body: Any) -> Fault:
    """A Fault from the control endpoint's JSON; ValueError naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {"status", "count", "retry_after", "path_prefix"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    status, count = body.get("status"), body.get("count", 1)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {list(STATUSES)}, got {status!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    retry_after = body.get("retry_after")
    if retry_after is not None:
        if status != 429:
            raise ValueError("retry_after applies to status 429 only")
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError(f"retry_after must be a non-negative integer, got {retry_after!r}")
    elif status == 429:
        retry_after = 1
    prefix = body.get("path_prefix", "/v2/")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"path_prefix must be a path starting with '/', got {prefix!r}")
    return Fault(status, count, retry_after, prefix)


class Faults:
    """The queue of pending faults, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, path: str) -> Fault | None:
        """Consume one call's worth of the first fault matching path, if any."""
        with self._lock:
            for fault in self._pending:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._pending.remove(fault)
                    return Fault(fault.status, 1, fault.retry_after, fault.path_prefix)
            return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [vars(f).copy() for f in self._pending]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
