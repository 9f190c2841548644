"""Operational endpoints: /metrics, /healthz (liveness), /readyz (the state store answers).

All three are public by default, so what they read and say is bounded: /metrics reads
the store at most once per STORE_MAX_AGE_SECONDS in each worker, however often it is
scraped, and /readyz says that the store does not answer, not what its error was
(that names paths, tables and ARNs: it goes to the log).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from ddb_failover.logs import kv
from responder.decide import practice
from responder.intake.practice import EXTENSION as PRACTICES
from responder.metrics import APPROVAL_WINDOW
from responder.state.records import Json, State
from responder.state.store import StateStore, StoreUnavailable
from responder.web.common import require, service

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)
# How old the store's values behind a scrape may be. Prometheus scrapes every 5 s (1 s in
# the sandbox's fast profile); the bound keeps a flood of scrapes to one read per second
# per worker and the gauges at most a second behind the store.
STORE_MAX_AGE_SECONDS = 1.0
STORE_READS = "responder.metrics_store_reads"
NOT_READY = "state store unavailable; the responder's log has the error"


@dataclass(frozen=True)
class StoreValues:
    """What the gauges show from the store; state None when it did not answer."""

    state: State | None
    actions: dict[str, Json] | None
    recent: list[Json]


def read_store(store: StateStore) -> StoreValues:
    """The store's values for the gauges, read now."""
    try:
        state, actions = store.state(), store.action_results()
        return StoreValues(state, actions, store.history(APPROVAL_WINDOW)["transitions"])
    except StoreUnavailable:
        return StoreValues(None, None, [])


class Cached:
    """read() at most once per max_age seconds, or after expire(); callers share one read."""

    def __init__(
        self,
        read: Callable[[], StoreValues],
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._max_age, self._clock = read, max_age, clock
        self._lock = threading.Lock()
        self._value: StoreValues | None = None
        self._at = 0.0

    def get(self) -> StoreValues:
        with self._lock:
            if self._value is None or self._clock() - self._at >= self._max_age:
                self._value = self._read()
                self._at = self._clock()
            return self._value

    def expire(self) -> None:
        """The next get() reads: this worker changed what read() returns."""
        with self._lock:
            self._value = None


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition; gauges refreshed from the store (cached) and the plan file first."""
    require("read", "metrics")
    svc = service()
    cached: Cached = current_app.extensions[STORE_READS]
    values = cached.get()
    svc.metrics.refresh(values.state, values.actions)
    svc.metrics.approvals(values.recent)
    active = values.state.active_region if values.state else None
    plan = svc.plan()
    svc.metrics.refresh_plan(plan, active)
    svc.metrics.drift.refresh(plan, values.state)
    if values.state is not None:  # the store answered: read the runs (cached as the rest)
        runs = current_app.extensions[PRACTICES].cached_runs()
        setting = svc.config.responder.practice
        max_age = setting.max_age_days * practice.DAY if setting.enabled else 0.0
        outcomes = [r.outcome for r in runs]
        svc.metrics.refresh_practice(outcomes, practice.last_success(runs), max_age)
    return Response(svc.metrics.render(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.after_app_request
def _expire_after_change(response: Response) -> Response:
    """A request that may have written (a webhook, an operator's command) expires the cache:
    what this worker changed shows at the next scrape, other workers' changes within the bound."""
    if request.method not in ("GET", "HEAD"):
        cached: Cached = current_app.extensions[STORE_READS]
        cached.expire()
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. Touches nothing else."""
    require("read", "healthz")
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: 200 when the state store answers, 503 when not (the error is logged)."""
    require("read", "readyz")
    try:
        service().store.ping()
    except StoreUnavailable as exc:
        log.warning(kv(event="not_ready", error=str(exc)))
        response = jsonify({"status": "unavailable", "error": NOT_READY})
        response.status_code = 503
        return response
    return jsonify({"status": "ok"})
