"""POST /webhook: Alertmanager's version-4 notifications, acknowledged with the decisions."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from ddb_failover.logs import kv
from responder.model.alerts import PayloadError, parse_notification
from responder.web.common import RequestProblem, error, read_json, require, service

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)


@bp.post("/webhook")
def webhook() -> Response:
    """Authenticate, validate, decide and record; 202 with the decisions."""
    svc = service()
    received = svc.clock()
    try:
        require("webhook")
        data = read_json(svc.config.responder.max_body_bytes)
        notification = parse_notification(data, svc.bounds)
    except RequestProblem as problem:
        log.info(kv(event="webhook_refused", code=problem.status, error=problem.message))
        return error(problem.status, problem.message, problem.field)
    except PayloadError as exc:
        log.info(kv(event="webhook_refused", code=exc.status, field=exc.path, error=exc.problem))
        return error(exc.status, str(exc), exc.path)
    outcomes = svc.handle_notification(notification, received)
    response = jsonify({"decisions": [h.to_json() for h in outcomes]})
    response.status_code = 202
    return response


@bp.after_request
def count(response: Response) -> Response:
    """Count every webhook answer by status code."""
    service().metrics.webhook_requests.labels(str(response.status_code)).inc()
    return response
