"""GET /: the page an SRE reads at 3 a.m. (server-rendered, escaped, no outside assets).

From the top: the banners of states that need someone (with the exact command, and an
operator's forms), one card per region (web/health.py, from Prometheus), the current or
last transition as a timeline, the plan, then the history. static/page.js only refreshes
it every REFRESH_SECONDS (pausing while the tab is hidden or a form is being filled in)
and asks before a form is sent; without it, the page still reads and refreshes.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from flask import Blueprint, Response, render_template, request

from ddb_failover.consistency import RPO_ZERO, STRONG
from responder.records import words
from responder.state.store import StoreUnavailable, UnknownTransition
from responder.web import banners, health, present, promql
from responder.web.common import RequestProblem, error, require, service
from responder.web.forms import csrf_token, offered

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
REFRESH_SECONDS = 5
RECENT = 20
# The dashboard's range around the transition shown, or the last hour without one.
GRAFANA_MARGIN_SECONDS = 300
Json = Any


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


class Words:
    """Actions' states and changes in words (records.words), with their configured facts."""

    def __init__(self, actions: list[Any], configured: list[Any]) -> None:
        self.kinds = {a.name: a.type for a in actions}
        self.facts = {a.name: words.facts(a.model_dump(mode="json")) for a in configured}

    def change(self, action: str, before: Json, after: Json, kind: str | None = None) -> str:
        """kind: the action's type when the entry says it (plan, preview); else configured."""
        kind = kind or self.kinds.get(action) or action  # the plan's readiness and site
        return words.change(kind, self.facts.get(action, {}), before, after)

    def state(self, action: str, value: Json, kind: str | None = None) -> str:
        return self.change(action, value, value, kind)


def _cards(plan: Json, status: Json) -> list[health.Card]:
    config = service().config
    url = config.responder.prometheus_url
    samples, reason = None, None
    if url is not None:
        try:
            samples = promql.query(str(url), health.EXPR)
        except promql.PromUnavailable as exc:
            reason = str(exc)
    witnesses = list((plan.get("consistency") or {}).get("witnesses") or {})
    return health.cards(
        config.region_names,
        config.primary,
        status["active_region"],
        plan,
        samples,
        reason,
        witnesses,
    )


def _report(status: Json) -> Json | None:
    last = status.get("last_transition")
    if not last:
        return None
    try:
        return service().report(last["id"])
    except UnknownTransition:  # pruned between the two reads
        return None


def _links(report: Json | None, now: float, phase: str, shown: list[banners.Banner]) -> Json:
    """Grafana for the time range, Alertmanager's silences, the runbook's section."""
    config = service().config.responder.report
    grafana = None
    if config.grafana_url is not None:
        first, last = now - 3600, now
        if report and report.get("timeline"):
            first = float(report["timeline"][0]["unix"]) - GRAFANA_MARGIN_SECONDS
            last = float(report["timeline"][-1]["unix"]) + GRAFANA_MARGIN_SECONDS
        query = urllib.parse.urlencode(
            {"from": int(first * 1000), "to": int(last * 1000), "timezone": "utc"}
        )
        grafana = f"{str(config.grafana_url).rstrip('/')}/d/{config.dashboard_uid}/?{query}"
    alertmanager = str(config.alertmanager_url) if config.alertmanager_url else None
    if alertmanager is None and report:
        alertmanager = (report.get("links") or {}).get("alertmanager")
    silences = f"{alertmanager.rstrip('/')}/#/silences" if alertmanager else None
    runbook = str(config.runbook_url)
    section = shown[0].section if shown else None
    return {
        "grafana": grafana,
        "silences": silences,
        "runbook": f"{runbook}#{section}" if section else runbook,
        "runbook_base": runbook,
        "phase": phase,
    }


def _blocked_reason(history: Json) -> str | None:
    for decision in history.get("decisions") or ():
        if decision.get("kind") == "blocked":
            return str(decision.get("reason"))
    return None


def _plan_rpo(plan: Json) -> str | None:
    """The plan's RPO words ("RPO 0 (strong consistency)") when every table is strongly
    consistent: its `consistency` block's `rpo` (ddb_failover.consistency)."""
    block = plan.get("consistency")
    if block == STRONG:
        return RPO_ZERO
    return block.get("rpo") if isinstance(block, dict) else None


def _report_rpo(report: Json | None) -> str | None:
    """The same words for a transition, as its evidence kept them when it was decided."""
    evidence = (report or {}).get("evidence") or {}
    return evidence.get("rpo") or (RPO_ZERO if evidence.get("consistency") == STRONG else None)


@bp.get("/")
def index() -> tuple[str, int] | Response:
    """Banners, region cards, the transition's timeline, the plan, the history."""
    refused = refused_reader()
    if refused is not None:
        return refused
    # ?refresh=off holds the page still: to read it at length, or to screenshot it.
    refresh = 0 if request.args.get("refresh") == "off" else REFRESH_SECONDS
    svc = service()
    try:
        status = svc.status()
        history = svc.store.history(RECENT)
        report = _report(status)
    except StoreUnavailable as exc:
        page = render_template("status.html", error=str(exc), refresh=refresh)
        return page, 503
    plan = svc.plan()
    now = svc.clock()
    said = Words(list(svc.actions), list(svc.config.responder.actions))
    entries = present.timeline(report, now) if report else []
    shown = banners.banners(status, plan, said.state, _blocked_reason(history))
    page = render_template(
        "status.html",
        status=status,
        history=history,
        plan=plan,
        report=report,
        timeline=entries,
        total=present.total(entries),
        cards=_cards(plan, status),
        banners=shown,
        words=said,
        csrf=csrf_token(now),
        offered=offered(),
        links=_links(report, now, status["phase"], shown),
        consistency=_plan_rpo(plan),
        transition_rpo=_report_rpo(report),
        seconds=words.seconds,
        when=lambda value: present.when(value, now),
        refresh=refresh,
        error=None,
    )
    return page, 200
