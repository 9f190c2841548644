"""Injected failures: HTTP errors or late answers on matching calls, and failing deployments.

A fault lasts for its next `count` matches, for `duration_seconds` from when it was added,
or, given neither, until it is cleared (DELETE /_sandbox/faults or a state reset).

A delay fault answers `delay_seconds` late; its `apply` says what becomes of the call's change:
made before the delay (`before`), after it (`after`), or never, the call then answering 504
(`never`). With it a client's timeout can be made to fire after the write has landed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

HTTP_STATUSES = (401, 403, 422, 429, 500, 503)
# DigitalOcean's error ids and messages for each status a fault can answer with.
ERROR_BODIES = {
    401: ("unauthorized", "Unable to authenticate you."),
    403: ("forbidden", "You do not have access for the attempted action."),
    422: ("unprocessable_entity", "The request could not be processed."),
    429: ("too_many_requests", "API Rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    503: ("service_unavailable", "The service is temporarily unavailable. Try again later."),
}
# Where a deployment fault stops a deployment, and what its failed step says by default.
DEPLOYMENT_FAILURES = {
    "BUILDING": ("BuildJobFailed", "Your build job failed: the build command exited with 1."),
    "DEPLOYING": (
        "DeployContainerHealthChecksFailed",
        "Your deploy failed because your container did not pass its health checks.",
    ),
}
# What a delay fault's call answers when its change is never made: a gateway timed out.
TIMEOUT_BODY = ("gateway_timeout", "The server did not answer in time.")
APPLY = ("before", "after", "never")
MAX_DELAY_SECONDS = 600
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_MATCH_FIELDS = {"path_prefix", "method"}
_HTTP_FIELDS = {"status", "message", "retry_after"} | _MATCH_FIELDS
_DELAY_FIELDS = {"delay_seconds", "apply"} | _MATCH_FIELDS
_DEPLOYMENT_FIELDS = {"deployment", "phase", "message", "app_id"}
_LIFETIME_FIELDS = {"count", "duration_seconds"}


@dataclass(frozen=True)
class Fault:
    """One injected failure: an HTTP status, a late answer or a failing deployment."""

    status: int | None = None
    delay_seconds: float | None = None
    apply: str | None = None  # for a delay: when the call's change is made (APPLY)
    phase: str | None = None
    message: str | None = None
    count: int | None = None  # matches left; None: no limit by count
    until: float | None = None  # time.monotonic() at which it ends; None: no limit by time
    retry_after: int | None = None
    path_prefix: str = "/v2/"
    method: str | None = None
    app_id: str | None = None

    def live(self, now: float) -> bool:
        return (self.count is None or self.count > 0) and (self.until is None or now < self.until)

    def view(self, now: float) -> dict[str, Any]:
        """The fault as the control API lists it (seconds_left instead of a monotonic time)."""
        shown = {k: v for k, v in vars(self).items() if k != "until" and v is not None}
        if self.until is not None:
            shown["seconds_left"] = round(max(0.0, self.until - now), 3)
        return shown


def _positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return value


def _lifetime(body: dict[str, Any], now: float) -> tuple[int | None, float | None]:
    count = _positive_int(body, "count")
    seconds = body.get("duration_seconds")
    if seconds is not None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            raise ValueError(f"duration_seconds must be a positive number, got {seconds!r}")
        if count is not None:
            raise ValueError("set at most one of count or duration_seconds")
        return None, now + float(seconds)
    return count, None


def _message(body: dict[str, Any]) -> str | None:
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or not message):
        raise ValueError(f"message must be a non-empty string, got {message!r}")
    return message


def _call_fault(body: dict[str, Any], now: float, **what: Any) -> Fault:
    """A fault on calls (an HTTP error or a delay): which calls and how long, from body."""
    prefix = body.get("path_prefix", "/v2/")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"path_prefix must be a path starting with '/', got {prefix!r}")
    method = body.get("method")
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    count, until = _lifetime(body, now)
    return Fault(path_prefix=prefix, method=method, count=count, until=until, **what)


def _http_fault(body: dict[str, Any], now: float) -> Fault:
    status = body.get("status")
    if status not in HTTP_STATUSES:
        raise ValueError(f"status must be one of {list(HTTP_STATUSES)}, got {status!r}")
    retry_after = body.get("retry_after")
    if retry_after is not None:
        if status != 429:
            raise ValueError("retry_after applies to status 429 only")
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError(f"retry_after must be a non-negative integer, got {retry_after!r}")
    elif status == 429:
        retry_after = 1
    return _call_fault(body, now, status=status, message=_message(body), retry_after=retry_after)


def _delay_fault(body: dict[str, Any], now: float) -> Fault:
    delay = body["delay_seconds"]
    if (
        not isinstance(delay, int | float)
        or isinstance(delay, bool)
        or not 0 < delay <= MAX_DELAY_SECONDS
    ):
        raise ValueError(
            f"delay_seconds must be a number above 0 and at most {MAX_DELAY_SECONDS}, got {delay!r}"
        )
    apply = body.get("apply", "after")
    if apply not in APPLY:
        raise ValueError(f"apply must be one of {list(APPLY)}, got {apply!r}")
    return _call_fault(body, now, delay_seconds=float(delay), apply=apply)


def _deployment_fault(body: dict[str, Any], now: float) -> Fault:
    if body["deployment"] != "ERROR":
        raise ValueError(f"deployment must be 'ERROR', got {body['deployment']!r}")
    phase = body.get("phase", "DEPLOYING")
    if phase not in DEPLOYMENT_FAILURES:
        raise ValueError(f"phase must be one of {list(DEPLOYMENT_FAILURES)}, got {phase!r}")
    app_id = body.get("app_id")
    if app_id is not None and (not isinstance(app_id, str) or not app_id):
        raise ValueError(f"app_id must be an app's id, got {app_id!r}")
    count, until = _lifetime(body, now)
    return Fault(phase=phase, message=_message(body), count=count, until=until, app_id=app_id)


# Each kind of fault: the field that names it -> (the fields it takes, its parser).
_KINDS: dict[str, tuple[set[str], Callable[[dict[str, Any], float], Fault]]] = {
    "status": (_HTTP_FIELDS, _http_fault),
    "delay_seconds": (_DELAY_FIELDS, _delay_fault),
    "deployment": (_DEPLOYMENT_FIELDS, _deployment_fault),
}


def parse_fault(body: Any, now: float | None = None) -> Fault:
    """A Fault from the control endpoint's JSON; ValueError naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    now = time.monotonic() if now is None else now
    kinds = [kind for kind in _KINDS if kind in body]
    if len(kinds) != 1:
        raise ValueError(
            'set exactly one of "status" (an HTTP error), "delay_seconds" (a late answer) '
            'or "deployment" (a failing deployment)'
        )
    fields, parse = _KINDS[kinds[0]]
    unknown = set(body) - _LIFETIME_FIELDS - fields
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    return parse(body, now)


class Faults:
    """The pending faults, oldest first; thread-safe; the clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, path: str, method: str) -> Fault | None:
        """Consume one call's worth of the first live HTTP or delay fault matching the call."""
        return self._take(
            lambda f: (
                f.phase is None
                and path.startswith(f.path_prefix)
                and f.method in (None, method.upper())
            )
        )

    def take_deployment(self, app_id: str) -> Fault | None:
        """Consume one deployment's worth of the first live deployment fault for app_id."""
        return self._take(lambda f: f.phase is not None and f.app_id in (None, app_id))

    def _take(self, matches: Callable[[Fault], bool]) -> Fault | None:
        with self._lock:
            now = self._clock()
            self._pending = [f for f in self._pending if f.live(now)]
            for index, fault in enumerate(self._pending):
                if matches(fault):
                    if fault.count is not None:
                        self._pending[index] = replace(fault, count=fault.count - 1)
                    return fault
            return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            return [f.view(now) for f in self._pending if f.live(now)]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
