"""Operational endpoints: /metrics, /healthz (liveness), /readyz (the state store answers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from responder.metrics import APPROVAL_WINDOW
from responder.state.store import StoreUnavailable
from responder.web.common import require, service

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition; gauges refreshed from the store and the plan file first."""
    require("read", "metrics")
    svc = service()
    try:
        state, actions = svc.store.state(), svc.store.action_results()
        recent = svc.store.history(APPROVAL_WINDOW)["transitions"]
    except StoreUnavailable:
        state, actions, recent = None, None, []
    svc.metrics.refresh(state, actions)
    svc.metrics.approvals(recent)
    svc.metrics.refresh_plan(svc.plan(), state.active_region if state else None)
    return Response(svc.metrics.render(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. Touches nothing else."""
    require("read", "healthz")
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: 200 when the state store answers, 503 with the reason when not."""
    require("read", "readyz")
    try:
        service().store.ping()
    except StoreUnavailable as exc:
        response = jsonify({"status": "unavailable", "error": str(exc)})
        response.status_code = 503
        return response
    return jsonify({"status": "ok"})
