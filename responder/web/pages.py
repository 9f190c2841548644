"""GET /: the human status page (server-rendered, escaped, self-refreshing, no outside assets)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from responder.state.store import StoreUnavailable
from responder.web.common import RequestProblem, error, require, service

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
REFRESH_SECONDS = 5
RECENT = 20


def refused_reader() -> Response | None:
    """None when the request may read pages; else the 401 or 403 answer for a browser."""
    try:
        require("read", "page")
    except RequestProblem as problem:
        # Browsers cannot send a bearer token: they prompt for Basic credentials (the token
        # as password) when challenged so.
        answer = error(problem.status, problem.message)
        if problem.status == 401:
            answer.headers["WWW-Authenticate"] = 'Basic realm="ddb-failover", charset="UTF-8"'
        return answer
    return None


@bp.get("/")
def index() -> tuple[str, int] | Response:
    """Active region first, then phase, freeze, the last transition, the plan, recent history."""
    refused = refused_reader()
    if refused is not None:
        return refused
    svc = service()
    try:
        status = svc.status()
        history = svc.store.history(RECENT)
    except StoreUnavailable as exc:
        page = render_template("status.html", error=str(exc), refresh=REFRESH_SECONDS)
        return page, 503
    page = render_template(
        "status.html",
        status=status,
        history=history,
        plan=svc.plan(),
        refresh=REFRESH_SECONDS,
        error=None,
    )
    return page, 200
