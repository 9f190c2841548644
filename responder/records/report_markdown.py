"""A transition report (records.report's JSON) as markdown that pastes into an incident doc.

GitHub-flavoured tables, one heading per part, every cell on one line with its pipes
escaped, JSON values as inline code. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from ddb_failover.consistency import RPO_ZERO, STRONG
from responder.state.records import Json

MAX_VALUE_CHARS = 300


def cell(value: object) -> str:
    """Text safe in a table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def code(value: Json) -> str:
    """A JSON value as inline code (for a table cell, which escapes its pipes), cut when long."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return "`" + text.replace("`", "'") + "`"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f} s"


def _summary(report: Json) -> list[str]:
    t = report["transition"]
    evidence = report["evidence"]
    risk = _seconds(evidence["data_at_risk_seconds"])
    if evidence.get("rpo"):
        risk = f"none: {evidence['rpo']}"
    elif evidence.get("rpo_seconds") is not None:
        risk += f" (RPO {evidence['rpo_seconds']:g} s)"
    rows = [
        ("Transition", f"`{t['id']}`"),
        ("Kind", t["kind"] + (" (dry run)" if t.get("dry_run") else "")),
        ("From → to", f"{t['from_region']} → {t['to_region']}"),
        ("Result", t["result"] + (f": {t['error']}" if t.get("error") else "")),
        ("Started", t["started_at"]),
        ("Finished", t["finished_at"] or "not yet"),
        ("Total", f"{report['total_seconds']:.3f} s, first to last entry of the timeline"),
        ("Data at risk", risk),
    ]
    if t["cause"].get("operator"):
        rows.append(("Asked by", f"{t['cause']['operator']}: {t['cause'].get('reason') or '-'}"))
    return table(("", ""), rows)


def _timeline(report: Json) -> list[str]:
    rows = [
        (
            e["at"],
            f"+{e['offset_seconds']:.3f}",
            e["event"],
            e["detail"]
            + (" (OUT OF ORDER: earlier than the entry before)" if e["out_of_order"] else ""),
        )
        for e in report["timeline"]
    ]
    return table(("Time (UTC)", "Since first", "Event", "Detail"), rows)


def _phases(report: Json) -> list[str]:
    rows = [(p["name"], p["from"], p["to"], f"{p['seconds']:.3f}") for p in report["phases"]]
    rows.append(("**total**", "", "", f"**{report['total_seconds']:.3f}**"))
    return table(("Phase", "From", "To", "Seconds"), rows)


def _evidence(report: Json) -> list[str]:
    evidence = report["evidence"]
    t = report["transition"]
    vantages = evidence["vantages_down"]
    lines = []
    if vantages["names"]:
        seen = ", ".join(vantages["names"])
        lines.append(
            f"- Vantage points that saw {t['from_region']} down: {seen} ({vantages['source']})"
        )
    elif t["cause"].get("alerts"):
        lines.append("- Vantage points that saw it down: not stated by the alert")
    if evidence.get("source_last_write"):
        lines.append(
            f"- Last successful write in {t['from_region']}: {evidence['source_last_write']}"
        )
    for alert in evidence["alerts"]:
        labels = ", ".join(
            f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k != "alertname"
        )
        since = f"{alert['status']} since {alert['starts_at']}"
        lines.append(f"- Alert {alert['alertname']} {{{cell(labels)}}} {since}")
    more = evidence.get("alerts_total", 0) - len(evidence["alerts"])
    if more > 0:
        lines.append(f"- … and {more} more alert(s)")
    for reading in evidence.get("readiness") or ():
        state = (
            "canary read OK"
            if reading["canary_ok"]
            else f"canary read failed ({reading['detail']})"
        )
        risk = f"data at risk {_seconds(reading['data_at_risk_seconds'])}"
        if reading.get("consistency") == STRONG:
            risk = f"{RPO_ZERO}, write {'OK' if reading.get('write_ok') else 'failed'}"
        lines.append(f"- Readiness of {reading['region']} at the decision: {state}, {risk}")
    return lines or ["- none recorded"]


def _steps(report: Json) -> list[str]:
    rows = []
    for s in report["steps"]:
        name = s["action"] + (" (rollback)" if s["rollback"] else "")
        duration = "" if s["duration_seconds"] is None else f"{s['duration_seconds']:.3f} s"
        rows.append(
            (name, s["result"], s["started_at"] or "", s["finished_at"], duration, s["attempts"],
             code(s["before"]), code(s["after"]), s["error"] or "")
        )  # fmt: skip
    header = (
        "Action",
        "Result",
        "Started",
        "Ended",
        "Took",
        "Attempts",
        "Before",
        "After",
        "Error",
    )
    lines = table(header, rows)
    failures = [
        f"- {s['action']}: {f['error']} ({f['count']} times, {f['first_at']} to {f['last_at']})"
        for s in report["steps"]
        for f in s["failures"]
    ]
    return lines + (["", "Failed attempts:", "", *failures] if failures else [])


def _links(report: Json) -> list[str]:
    links = report["links"]
    lines = [f"- Alert source ({a['alertname']}): <{a['url']}>" for a in links["alert_sources"]]
    if links.get("alertmanager"):
        lines.append(f"- Alertmanager: <{links['alertmanager']}>")
    if links.get("grafana"):
        lines.append(f"- Grafana, this time range: <{links['grafana']}>")
    else:
        lines.append("- Grafana: set responder.report.grafana_url for a link")
    lines.append(f"- Runbook: <{links['runbook']}>")
    return lines


def markdown(report: Json) -> str:
    """The whole report."""
    t = report["transition"]
    title = (
        f"# Transition {t['id']}: {t['kind']} {t['from_region']} → {t['to_region']} ({t['result']})"
    )
    parts = [
        [title, "", f"Report generated {report['generated_at']}."],
        _summary(report),
        ["## Timeline", "", *_timeline(report)],
        ["## Durations", "", *_phases(report)],
        ["## Evidence", "", *_evidence(report)],
        ["## Actions", "", *_steps(report)],
        ["## Links", "", *_links(report)],
    ]
    if report["notes"]:
        parts.append(["## Notes", "", *(f"- {n}" for n in report["notes"])])
    parts.append(
        [
            "## Integrity",
            "",
            "Every record above is covered by the state store's audit chain: "
            "`ddb-responder audit verify --config FILE` checks it.",
        ]
    )
    return "\n\n".join("\n".join(p) for p in parts) + "\n"
