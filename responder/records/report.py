"""A transition's report: what happened when, how long each part took, the evidence, the links.

Built from the transition's record alone (steps, operator commands, and the evidence
the decision kept: responder.decide.evidence), so it can be rebuilt at any time and checked
against the audit chain. Pure: the record, the links and the time in; JSON out
(rendered as markdown by responder.records.report_markdown, as HTML by the report page).

The timeline runs in causal order: the source's last successful write (the
`last_write_success_timestamp` annotation: the outage's onset as the probes saw it),
the alert firing (startsAt), the notification received, the decision, then each
step's start, failed attempts and end with operator commands and approvals among
them by time, and the end. Each phase (detection, notification, decision, approval,
action) runs from one of those to the next, so the phases add up to the total.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from ddb_failover.config import Report as ReportConfig
from responder.decide.evidence import VANTAGES_DOWN
from responder.model.alerts import LAST_WRITE_SUCCESS, format_time
from responder.model.links import http_link
from responder.state.records import Json, StepRecord, TransitionRecord

# Margin around the transition in the dashboard link, so the onset and the end show.
GRAFANA_MARGIN_SECONDS = 300
# Operator commands that approve or decline a transition: they end the approval phase.
APPROVALS = ("approve", "decline")


@dataclass(frozen=True)
class Entry:
    """One moment of the timeline."""

    at: float
    event: str
    detail: str
    phase_end: str | None = None  # the phase this entry ends (the first phase ends at it)

    def to_json(self, origin: float, previous: float | None) -> Json:
        return {
            "at": format_time(self.at),
            "unix": self.at,
            "offset_seconds": _span(origin, self.at),
            "event": self.event,
            "detail": self.detail,
            "out_of_order": previous is not None and self.at < previous,
        }


def _unix(text: str | None) -> float | None:
    """An RFC 3339 time (as the records keep them) as Unix seconds; None when absent."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _time(value: float | None) -> str | None:
    return None if value is None else format_time(value)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _alerts(record: TransitionRecord) -> list[Json]:
    return list((record.evidence or {}).get("alerts") or [])


def _onset(record: TransitionRecord) -> float | None:
    """The source's last successful write, as the alerts' annotation gives it."""
    found = [_number(a.get("annotations", {}).get(LAST_WRITE_SUCCESS)) for a in _alerts(record)]
    known = [f for f in found if f is not None]
    return max(known) if known else None


def _firing(record: TransitionRecord) -> float | None:
    """When the alerts behind the transition started firing (the earliest startsAt)."""
    starts = [_unix(a.get("starts_at")) for a in record.cause.alerts]
    known = [s for s in starts if s is not None]
    return min(known) if known else None


def _prefix(record: TransitionRecord) -> list[Entry]:
    """Onset, firing, received, decision: the entries before anything is done."""
    out: list[Entry] = []
    source = record.from_region or "the source region"
    onset = _onset(record)
    if onset is not None:
        out.append(Entry(onset, "onset", f"last successful write probe in {source}"))
    firing = _firing(record)
    if firing is not None:
        names = sorted({a.get("alertname", "?") for a in record.cause.alerts})
        out.append(Entry(firing, "alert_firing", f"{', '.join(names)} firing", "detection"))
    received = (record.evidence or {}).get("received_at")
    if received is not None:
        what = "webhook_received" if record.cause.alerts else "request_received"
        who = "Alertmanager's notification" if record.cause.alerts else "the operator's request"
        phase = "notification" if record.cause.alerts else None
        out.append(Entry(float(received), what, f"{who} reached the responder", phase))
    reason = (record.evidence or {}).get("reason") or (
        f"{record.kind} from {record.from_region} to {record.to_region}"
    )
    by = f" by {record.cause.operator}" if record.cause.operator else ""
    out.append(Entry(record.started_at, "decision", f"{reason}{by}: recorded", "decision"))
    return out


def _step_entries(step: StepRecord) -> list[Entry]:
    where = f"{step.action}" + (" (rollback)" if step.rollback else "")
    out = []
    if step.started_at is not None:
        out.append(Entry(step.started_at, "step_started", where))
    for failure in step.failures:
        times = f"{failure.count} attempt(s)" if failure.count > 1 else "an attempt"
        out.append(Entry(failure.first_at, "attempt_failed", f"{where}: {times}: {failure.error}"))
    error = f": {step.error}" if step.error else ""
    attempts = f" after {step.attempts} attempt(s)" if step.attempts > 1 else ""
    out.append(Entry(step.at, "step_finished", f"{where}: {step.result}{attempts}{error}"))
    return out


def _execution(record: TransitionRecord) -> list[Entry]:
    """Steps, failed attempts, operator commands and approvals, by time (stable on ties)."""
    entries: list[Entry] = []
    for step in record.steps:
        entries.extend(_step_entries(step))
    for op in record.operations:
        what = op.op + (f" {op.action}" if op.action and op.op == "skip" else "")
        what += " with rollback" if op.rollback else ""
        approval = record.approval
        if op.op in APPROVALS and approval is not None and approval.decided_at == op.at:
            what += f" ({approval.state})"  # an approve can end blocked
        phase = "approval" if op.op in APPROVALS else None
        entries.append(Entry(op.at, f"operator_{op.op}", f"{what} by {op.by}: {op.reason}", phase))
    running = record.attempts
    if running is not None and record.in_progress:
        for failure in running.failures:
            entries.append(
                Entry(failure.first_at, "attempt_failed", f"{running.action}: {failure.error}")
            )
    return sorted(entries, key=lambda e: e.at)


def timeline(record: TransitionRecord) -> list[Entry]:
    """Every entry, in causal order."""
    entries = _prefix(record) + _execution(record)
    if record.finished_at is not None:
        detail = record.result + (f": {record.error}" if record.error else "")
        entries.append(Entry(record.finished_at, record.result, detail, "action"))
    return entries


def phases(entries: list[Entry]) -> list[Json]:
    """Consecutive phases from the first entry to the last: they add up to the total.

    Each phase ends at an entry that ends one (several approvals make one approval
    phase); a transition in progress has its action phase so far.
    """
    spans: list[tuple[str, Entry, Entry]] = []
    start = entries[0]
    for entry in entries[1:]:
        name = entry.phase_end
        if name is None:
            continue
        if spans and spans[-1][0] == name:
            start = spans.pop()[1]
        spans.append((name, start, entry))
        start = entry
    if entries[-1] is not start:
        spans.append(("action", start, entries[-1]))
    return [
        {"name": name, "from": a.event, "to": b.event, "seconds": _span(a.at, b.at)}
        for name, a, b in spans
    ]


def _span(start: float, end: float) -> float:
    """Seconds between two times to the millisecond the report shows them at, so spans add up."""
    return (round(end * 1000) - round(start * 1000)) / 1000


def _vantages(record: TransitionRecord) -> Json:
    """Which vantage points saw the source down, as the alerts say (or do not)."""
    named: list[str] = []
    source = None
    for alert in _alerts(record):
        listed = alert.get("annotations", {}).get(VANTAGES_DOWN)
        if listed:
            named += [v for v in re.split(r"[,\s]+", listed) if v]
            source = f"annotation {VANTAGES_DOWN}"
        elif alert.get("labels", {}).get("vantage"):
            named.append(alert["labels"]["vantage"])
            source = source or "label vantage"
    if not named:
        return {"names": None, "source": None}
    return {"names": sorted(set(named)), "source": source}


def _step(step: StepRecord) -> Json:
    out = step.to_json()
    out["finished_at"] = out.pop("at")
    start = step.started_at
    out["duration_seconds"] = None if start is None else _span(start, step.at)
    return out


def _links(record: TransitionRecord, config: ReportConfig, first: float, last: float) -> Json:
    """The links of the report; those the alerts brought only when http(s) (model.links)."""
    alerts = _alerts(record)
    sources = [
        {"alertname": a.get("alertname"), "url": url}
        for a in alerts
        if (url := http_link(a.get("generator_url")))
    ]
    runbook = next(
        (url for a in alerts if (url := http_link(a.get("annotations", {}).get("runbook_url")))),
        config.runbook_url,
    )
    grafana = None
    if config.grafana_url:
        query = urllib.parse.urlencode(
            {
                "from": int((first - GRAFANA_MARGIN_SECONDS) * 1000),
                "to": int((last + GRAFANA_MARGIN_SECONDS) * 1000),
                "timezone": "utc",
            }
        )
        grafana = f"{config.grafana_url.rstrip('/')}/d/{config.dashboard_uid}/?{query}"
    return {
        "alert_sources": sources,
        "alertmanager": http_link((record.evidence or {}).get("alertmanager_url")),
        "grafana": grafana,
        "runbook": runbook,
    }


def build(record: TransitionRecord, config: ReportConfig, now: float) -> Json:
    """The report of one transition, as of now (one in progress ends at its newest entry)."""
    entries = timeline(record)
    first, last = entries[0].at, entries[-1].at
    evidence = record.evidence or {}
    shown = []
    previous: float | None = None
    for entry in entries:
        shown.append(entry.to_json(first, previous))
        previous = entry.at if previous is None else max(previous, entry.at)
    steps = [_step(s) for s in record.steps]
    notes = []
    if record.evidence is None:
        notes.append("recorded before reports kept their evidence: alerts and readiness unknown")
    elif record.cause.alerts and _vantages(record)["names"] is None:
        notes.append(
            f"the alert does not name the vantage points that saw it (annotation {VANTAGES_DOWN})"
        )
    if record.in_progress:
        notes.append("in progress: the report ends at its newest entry")
    return {
        "generated_at": format_time(now),
        "transition": {k: v for k, v in record.to_json().items() if k not in ("steps", "evidence")},
        "timeline": shown,
        "phases": phases(entries),
        "total_seconds": _span(first, last),
        "evidence": {
            "vantages_down": _vantages(record),
            "alerts": _alerts(record),
            "alerts_total": evidence.get("alerts_total", len(_alerts(record))),
            "readiness": evidence.get("readiness"),
            "rpo_seconds": evidence.get("rpo_seconds"),
            "consistency": evidence.get("consistency"),
            "rpo": evidence.get("rpo"),
            "data_at_risk_seconds": record.data_at_risk_seconds,
            "source_last_write": _time(_onset(record)),
        },
        "steps": steps,
        "links": _links(record, config, first, last),
        "notes": notes,
    }
