"""The operator API: status, history, plan, failover, switchover, practice, freeze, unfreeze,
retry, skip, abort, repair, approve and decline.

Mutations need the token. A command that does not apply to the transition as it
is now (nothing failing, another step in trouble, no transition) answers 409.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ddb_failover.logs import kv
from responder.decide.decision import OperatorRequest, UnknownRegion
from responder.intake.handling import Handled
from responder.intake.practice import EXTENSION as PRACTICES
from responder.intake.practice import Practices
from responder.intake.practice import Refused as PracticeRefused
from responder.state.records import TransitionRecord
from responder.state.store import Refused, UnknownTransition
from responder.web.common import RequestProblem, error, operator, read_json, require, service

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
HISTORY_MAX = 500


def _answer(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _string(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        need = "a non-empty string" if default is None else "a string"
        raise RequestProblem(400, f"{key} must be {need}", key)
    return value[:500]


def _body() -> dict[str, Any]:
    """The request's JSON object body ({} when there is none); its token was checked first."""
    data = read_json(service().config.responder.max_body_bytes, optional=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RequestProblem(400, "body must be a JSON object")
    return data


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise RequestProblem(400, f"{key} must be true or false", key)
    return value


def _transition_id(data: dict[str, Any]) -> str | None:
    """The transition the client means, when it names one (guards against acting on another)."""
    return _string(data, "transition_id") if "transition_id" in data else None


def _accepted(record: TransitionRecord) -> Response:
    return _answer({"transition": record.to_json()}, 202)


@bp.errorhandler(Refused)
def _refused(refused: Refused) -> Response:
    return error(409, str(refused))


@bp.get("/status")
def status() -> Response:
    """Active and desired region, phase, freeze, last transition, each action's last result."""
    require("read", "status")
    return _answer(service().status())


@bp.get("/history")
def history() -> Response:
    """Transitions with their steps, and decisions that changed nothing, newest first."""
    require("read", "history")
    raw = request.args.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= HISTORY_MAX:
        raise RequestProblem(400, f"limit must be an integer from 1 to {HISTORY_MAX}", "limit")
    return _answer(service().store.history(int(raw)))


@bp.get("/plan")
def plan() -> Response:
    """The last evaluation of the failover plan on this replica; ?to=REGION narrows it."""
    require("read", "plan")
    to_region = request.args.get("to")
    try:
        return _answer(service().plan(to_region))
    except UnknownRegion as exc:
        raise RequestProblem(400, str(exc), "to") from None


@bp.get("/transitions/<transition_id>")
def transition(transition_id: str) -> Response:
    """One transition with its steps, attempts and operator commands; 404 when unknown."""
    require("read", "history")
    try:
        record = service().store.transition(transition_id)
    except UnknownTransition:
        raise RequestProblem(404, f"no transition {transition_id!r}", "transition_id") from None
    return _answer({"transition": record.to_json()})


@bp.post("/failover")
def failover() -> Response:
    """An operator transition through the same safety checks: 202, 400 or 409."""
    by = operator()
    data = _body()
    force = _flag(data, "force")
    wanted = OperatorRequest(
        to_region=_string(data, "to"),
        by=by,
        reason=_string(data, "reason", ""),
        force=force,
    )
    try:
        handled = service().handle_operator(wanted)
    except UnknownRegion as exc:
        raise RequestProblem(400, str(exc), "to") from None
    return _decided(handled)


@bp.post("/switchover")
def switchover() -> Response:
    """A planned move (fence, drain, move, unfence) through the same safety checks and the
    freeze: 202, 400 or 409."""
    by = operator()
    data = _body()
    force = _flag(data, "force")
    to_region, reason = _string(data, "to"), _string(data, "reason")
    try:
        handled = service().switchover(to_region, by, reason, force)
    except UnknownRegion as exc:
        raise RequestProblem(400, str(exc), "to") from None
    return _decided(handled)


def _decided(handled: Handled) -> Response:
    """202 with the transition begun; 409 with the reason when none was."""
    body: dict[str, Any] = {"decision": handled.to_json(), "transition": None}
    if handled.transition is None:
        body["error"] = handled.record.reason if handled.record else handled.decision.reason
        return _answer(body, 409)
    body["transition"] = handled.transition.to_json()
    return _answer(body, 202)


@bp.post("/freeze")
def freeze() -> Response:
    """Stop automatic transitions until unfreeze; idempotent."""
    by = operator()
    freeze_now(by, _string(_body(), "reason", ""))
    return _answer(service().status())


def freeze_now(by: str, reason: str) -> None:
    """Freeze (the API's and the page's form): idempotent."""
    service().store.freeze(by, reason)
    log.warning(kv(event="frozen", by=by, reason=reason))


@bp.post("/unfreeze")
def unfreeze() -> Response:
    """Resume automatic transitions; idempotent."""
    by = operator()
    unfreeze_now(by, _string(_body(), "reason", ""))
    return _answer(service().status())


def unfreeze_now(by: str, reason: str) -> None:
    """Unfreeze (the API's and the page's form): idempotent."""
    svc = service()
    svc.store.unfreeze(by, reason)
    log.warning(kv(event="unfrozen", by=by, reason=reason))
    svc.runner.wake()  # a transition stopped at a step boundary goes on now, not next poll


@bp.post("/retry")
def retry() -> Response:
    """Run the failing step of the transition in progress again now: 202 or 409."""
    by = operator()
    data = _body()
    reason = _string(data, "reason", "")
    return _accepted(service().retry(by, reason, _transition_id(data)))


@bp.post("/skip")
def skip() -> Response:
    """Record the failing step as skipped (a reason is required) and go on: 202 or 409."""
    by = operator()
    data = _body()
    svc = service()
    action = _string(data, "action")
    configured = [a.name for a in svc.actions]
    if action not in configured:
        raise RequestProblem(
            400, f"unknown action {action!r}; configured: {', '.join(configured)}", "action"
        )
    reason = _string(data, "reason")
    return _accepted(svc.skip(action, by, reason, _transition_id(data)))


@bp.post("/abort")
def abort() -> Response:
    """Stop the transition in progress, rolling back applied steps if asked: 202 or 409."""
    by = operator()
    data = _body()
    rollback = _flag(data, "rollback")
    reason = _string(data, "reason")
    return _accepted(service().abort(by, reason, rollback, _transition_id(data)))


@bp.post("/repair")
def repair() -> Response:
    """Reconcile drifted actions (or the one named) to the active region: 202, 400 or 409."""
    by = operator()
    data = _body()
    svc = service()
    action = _string(data, "action") if data.get("action") is not None else None
    configured = [a.name for a in svc.actions]
    if action is not None and action not in configured:
        raise RequestProblem(
            400, f"unknown action {action!r}; configured: {', '.join(configured)}", "action"
        )
    return _accepted(svc.repair(by, _string(data, "reason"), action))


@bp.post("/approve")
def approve() -> Response:
    """Yes to the transition waiting for approval: 202; 409 if its target is no longer ready."""
    by = operator()
    data = _body()
    transition_id = _string(data, "transition_id")
    record = service().approve(transition_id, by, _string(data, "reason", ""))
    approval = record.approval
    if approval is not None and approval.state == "blocked":
        body = {"transition": record.to_json(), "error": approval.reason}
        return _answer(body, 409)
    return _accepted(record)


@bp.post("/decline")
def decline() -> Response:
    """No to the transition waiting for approval (a reason is required): 202 or 409."""
    by = operator()
    data = _body()
    transition_id = _string(data, "transition_id")
    return _accepted(service().decline(transition_id, by, _string(data, "reason")))


def _practices() -> Practices:
    found: Practices = current_app.extensions[PRACTICES]
    return found


@bp.get("/practice")
def practice_status() -> Response:
    """Practice runs: when the next starts, the run under way, the newest runs, the last
    success and whether it is overdue (max_age_days)."""
    require("read", "history")
    return _answer(_practices().status())


@bp.post("/practice/run")
def practice_run() -> Response:
    """Start a practice run: 202 begun, 409 blocked (recorded) or refused (one under way;
    outside the schedule's slots without now)."""
    by = operator()
    data = _body()
    now = _flag(data, "now")
    hold = data.get("hold_seconds")
    if hold is not None and (
        isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 < hold <= 86400
    ):
        raise RequestProblem(400, "hold_seconds must be a number from 0 to 86400", "hold_seconds")
    try:
        started = _practices().start(by, float(hold) if hold is not None else None, now)
    except PracticeRefused as exc:
        raise RequestProblem(409, str(exc)) from None
    if started.get("outcome") == "BLOCKED":
        return _answer({"error": started["reason"], **started}, 409)
    return _answer(started, 202)
