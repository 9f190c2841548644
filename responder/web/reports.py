"""A transition's report: /api/v1/transitions/<id>/report (JSON) and /transitions/<id> (HTML)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from responder.state.store import UnknownTransition
from responder.web.common import RequestProblem, require, service
from responder.web.pages import refused_reader

bp = Blueprint("reports", __name__, template_folder="templates")


def _report(transition_id: str) -> dict[str, object]:
    try:
        found: dict[str, object] = service().report(transition_id)
    except UnknownTransition:
        raise RequestProblem(404, f"no transition {transition_id!r}", "transition_id") from None
    return found


@bp.get("/api/v1/transitions/<transition_id>/report")
def report(transition_id: str) -> Response:
    """The report's JSON: timeline, phases, evidence, steps, links; 404 when unknown."""
    require("read", "history")
    return jsonify(_report(transition_id))


@bp.get("/transitions/<transition_id>")
def page(transition_id: str) -> tuple[str, int] | Response:
    """The report as a page for people (viewer role; the status page's headers and style)."""
    refused = refused_reader()
    if refused is not None:
        return refused
    return render_template("transition.html", report=_report(transition_id)), 200
