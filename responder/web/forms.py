"""The status page's operator forms: POST /operate/<op>, each with a reason and a CSRF token.

A browser sends its Basic credentials with any request to the responder, including one
another site's page makes it send; the CSRF token is what that page cannot know. It is an
HMAC keyed by the operator token's own secret (so every worker and replica agrees on
it, and a viewer's token cannot make one), over the token's name and the time it was
issued; it is good for CSRF_MAX_AGE_SECONDS. A refused form (no token, a bad one, a
viewer, a missing reason) answers 403 or 400 and changes nothing; a command that does
not apply now answers 409, like the API. A done one redirects to the page (303).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from ddb_failover.logs import kv
from responder.state.store import Refused, UnknownTransition
from responder.web import api
from responder.web.common import AUTH, Authenticator, RequestProblem, require, service

bp = Blueprint("forms", __name__, template_folder="templates")
log = logging.getLogger(__name__)
CSRF_FIELD = "csrf"
CSRF_MAX_AGE_SECONDS = 12 * 3600
# The operations the page offers; each maps the form to the service's command.
OPERATIONS = ("approve", "decline", "retry", "skip", "abort", "freeze", "unfreeze", "repair")
REASON_MAX = 500


def csrf_token(now: float | None = None) -> str | None:
    """The CSRF token for this request's operator; None for a viewer or no token."""
    try:
        token = require("operate", "page")
    except RequestProblem:
        return None
    if token is None:
        return None
    issued = int(now if now is not None else time.time())
    auth: Authenticator = current_app.extensions[AUTH]
    return f"{issued}.{auth.sign(token, f'csrf:{token.name}:{issued}')}"


def _check_csrf(offered: str | None, now: float) -> str:
    """The operator's name when offered is this operator's fresh token; else 403."""
    token = require("operate")
    assert token is not None
    issued, _, mac = (offered or "").partition(".")
    if not issued.isdecimal() or not mac:
        raise RequestProblem(403, "the form has no CSRF token: reload the page and try again")
    auth: Authenticator = current_app.extensions[AUTH]
    expected = auth.sign(token, f"csrf:{token.name}:{issued}")
    if not hmac.compare_digest(mac.encode("utf-8"), expected.encode("utf-8")):
        raise RequestProblem(403, "the form's CSRF token is not valid: reload the page")
    if not -60 <= now - int(issued) <= CSRF_MAX_AGE_SECONDS:
        raise RequestProblem(403, "the form's CSRF token has expired: reload the page")
    return token.name


def _field(name: str, required: bool = True) -> str:
    value = (request.form.get(name) or "").strip()
    if required and not value:
        raise RequestProblem(400, f"{name} is required", name)
    return value[:REASON_MAX]


def offered() -> tuple[str, ...]:
    """The operations this responder can do from the page (repair comes with issue 21)."""
    return tuple(op for op in OPERATIONS if op != "repair" or hasattr(service(), "repair"))


def _repair(by: str, reason: str) -> object:
    repair: Callable[..., object] | None = getattr(service(), "repair", None)
    if repair is None:
        raise RequestProblem(501, "repair is not available in this version of the responder")
    return repair(by=by, reason=reason, action=_field("action", required=False) or None)


def _run(op: str, by: str, reason: str) -> None:
    svc = service()
    tid = _field("transition_id", required=False) or None
    if op == "approve":
        record = svc.approve(_field("transition_id"), by, reason)
        if record.approval is not None and record.approval.state == "blocked":
            raise RequestProblem(409, record.approval.reason or "the target is not ready")
    elif op == "decline":
        svc.decline(_field("transition_id"), by, reason)
    elif op == "retry":
        svc.retry(by, reason, tid)
    elif op == "skip":
        svc.skip(_field("action"), by, reason, tid)
    elif op == "abort":
        svc.abort(by, reason, request.form.get("rollback") == "yes", tid)
    elif op == "freeze":
        api.freeze_now(by, reason)
    elif op == "unfreeze":
        api.unfreeze_now(by, reason)
    else:
        _repair(by, reason)


@bp.post("/operate/<op>")
def operate(op: str) -> WerkzeugResponse:
    """One operator form: 303 back to the page when done; else the problem, with its status."""
    try:
        if op not in OPERATIONS:
            raise RequestProblem(
                404, f"no operation {op!r}; the page offers {', '.join(OPERATIONS)}"
            )
        limit = service().config.responder.max_body_bytes
        if (request.content_length or 0) > limit:
            raise RequestProblem(413, f"the form exceeds the limit of {limit} bytes")
        by = _check_csrf(request.form.get(CSRF_FIELD), time.time())
        _run(op, by, _field("reason"))
    except RequestProblem as problem:
        return _refused(op, problem.status, problem.message)
    except Refused as refused:
        return _refused(op, 409, str(refused))
    except UnknownTransition:
        return _refused(op, 404, "no such transition")
    return redirect(url_for("pages.index"), 303)


def _refused(op: str, status: int, message: str) -> Response:
    """The problem as a page for people; 401 asks the browser for credentials."""
    log.warning(kv(event="operator_form_refused", op=op[:40], status=status, error=message))
    page = render_template("refused.html", status=status, message=message)
    response = Response(page, status=status, mimetype="text/html")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="ddb-failover", charset="UTF-8"'
    return response
