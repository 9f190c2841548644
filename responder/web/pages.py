"""GET /: the human status page (server-rendered, escaped, self-refreshing, no outside assets)."""

from __future__ import annotations

from flask import Blueprint, render_template

from responder.state.base import StoreUnavailable
from responder.web.common import service

bp = Blueprint("pages", __name__, template_folder="templates")
REFRESH_SECONDS = 5
RECENT = 20


@bp.get("/")
def index() -> tuple[str, int]:
    """Active region first, then phase, freeze, the last transition, the plan, recent history."""
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
