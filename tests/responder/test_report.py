"""Transition reports: causal timeline, phases that add up, evidence, links, markdown."""

from __future__ import annotations

from dataclasses import replace

from ddb_failover.config import Report
from responder.records import report_markdown
from responder.records.report import build
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    Failure,
    Operation,
    StepRecord,
    TransitionRecord,
)

T0 = 1_800_000_000.0  # the source's last successful write
EAST, WEST = "us-east-1", "eu-west-1"
STARTS = "2027-01-15T08:00:25.000Z"  # T0 + 25: the alert fired
CONFIG = Report(grafana_url="https://grafana.example/", runbook_url="https://runbook.example")


def down_alert(**annotations: str) -> dict[str, object]:
    return {
        "alertname": "DynamoDBRegionDown",
        "fingerprint": "f1",
        "status": "firing",
        "starts_at": STARTS,
        "generator_url": "http://prometheus.test/graph?g0.expr=x",
        "labels": {"alertname": "DynamoDBRegionDown", "region": EAST, "table": "posts"},
        "annotations": {
            "last_write_success_timestamp": f"{T0:.0f}",
            "runbook_url": "https://runbook.example#dynamodbregiondown",
            **annotations,
        },
    }


def failover(**changes: object) -> TransitionRecord:
    """A completed failover: a retried step, an operator's retry, and an approval."""
    cause = Cause(alerts=({"alertname": "DynamoDBRegionDown", "fingerprint": "f1",
                           "region": EAST, "status": "firing", "starts_at": STARTS,
                           "key": f"f1@{STARTS}"},))  # fmt: skip
    evidence = {
        "received_at": T0 + 26,
        "alertmanager_url": "http://alertmanager.test:9093",
        "alerts": [down_alert(vantages_down="vm-b, vm-a")],
        "alerts_total": 1,
        "reason": f"failover from {EAST} to {WEST}",
        "rpo_seconds": 60.0,
        "readiness": [{"region": WEST, "canary_ok": True, "data_at_risk_seconds": 1.5,
                       "detail": ""}],
    }  # fmt: skip
    steps = (
        StepRecord("www", "applied", ["10.0.0.1"], ["10.0.0.2"], at=T0 + 29, attempts=1,
                   started_at=T0 + 28),
        StepRecord("glb", "applied", {"a|b": 1}, {"a|b": 2}, at=T0 + 40, attempts=3,
                   started_at=T0 + 29,
                   failures=(Failure("HTTP 503 | busy", 2, T0 + 30, T0 + 33),)),
    )  # fmt: skip
    record = TransitionRecord(
        id="t-1",
        kind="failover",
        from_region=EAST,
        to_region=WEST,
        result="completed",
        started_at=T0 + 27,
        finished_at=T0 + 41,
        cause=cause,
        data_at_risk_seconds=1.5,
        dry_run=False,
        steps=steps,
        operations=(
            Operation("approve", "alice", "looks right", T0 + 27.5),
            Operation("retry", "bob", "API back", T0 + 35, action="glb"),
        ),
        evidence=evidence,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_the_timeline_runs_from_onset_to_completion_in_causal_order() -> None:
    report = build(failover(), CONFIG, T0 + 100)
    events = [e["event"] for e in report["timeline"]]
    assert events == [
        "onset", "alert_firing", "webhook_received", "decision", "operator_approve",
        "step_started", "step_finished", "step_started", "attempt_failed", "operator_retry",
        "step_finished", "completed",
    ]  # fmt: skip
    times = [e["unix"] for e in report["timeline"]]
    assert times == sorted(times) and not any(e["out_of_order"] for e in report["timeline"])
    assert report["timeline"][0]["offset_seconds"] == 0.0
    assert report["timeline"][-1]["offset_seconds"] == 41.0


def test_the_phases_add_up_to_the_total() -> None:
    report = build(failover(), CONFIG, T0 + 100)
    phases = {p["name"]: p["seconds"] for p in report["phases"]}
    assert phases == {
        "detection": 25.0,  # last write to firing
        "notification": 1.0,  # firing to the webhook
        "decision": 1.0,  # webhook to the recorded decision
        "approval": 0.5,
        "action": 13.5,
    }
    assert sum(phases.values()) == report["total_seconds"] == 41.0


def test_an_approve_that_found_the_target_no_longer_ready_says_blocked() -> None:
    blocked = Approval("blocked", T0 + 627, "abort", decided_by="alice", decided_at=T0 + 27.5,
                       reason="target no longer ready: canary failing")  # fmt: skip
    report = build(failover(approval=blocked), CONFIG, T0 + 100)
    (entry,) = [e for e in report["timeline"] if e["event"] == "operator_approve"]
    assert entry["detail"].startswith("approve (blocked) by alice")
    plain = build(failover(), CONFIG, T0 + 100)
    (entry,) = [e for e in plain["timeline"] if e["event"] == "operator_approve"]
    assert entry["detail"] == "approve by alice: looks right"


def test_the_evidence_names_the_vantage_points_and_keeps_before_and_after() -> None:
    report = build(failover(), CONFIG, T0 + 100)
    evidence = report["evidence"]
    assert evidence["vantages_down"] == {
        "names": ["vm-a", "vm-b"],
        "source": "annotation vantages_down",
    }
    assert evidence["source_last_write"] == "2027-01-15T08:00:00.000Z"
    assert evidence["readiness"][0]["region"] == WEST and evidence["rpo_seconds"] == 60.0
    glb = report["steps"][1]
    assert (glb["before"], glb["after"], glb["duration_seconds"]) == ({"a|b": 1}, {"a|b": 2}, 11.0)
    assert glb["failures"][0]["count"] == 2
    assert report["notes"] == []


def test_links_point_at_the_alert_grafana_at_that_time_and_the_runbook_section() -> None:
    links = build(failover(), CONFIG, T0 + 100)["links"]
    assert links["alert_sources"] == [
        {"alertname": "DynamoDBRegionDown", "url": "http://prometheus.test/graph?g0.expr=x"}
    ]
    start, end = int((T0 - 300) * 1000), int((T0 + 41 + 300) * 1000)
    assert links["grafana"] == (
        f"https://grafana.example/d/ddb-failover-overview/?from={start}&to={end}&timezone=utc"
    )
    assert links["runbook"] == "https://runbook.example#dynamodbregiondown"
    assert build(failover(), Report(), T0)["links"]["grafana"] is None


def test_a_record_with_times_out_of_order_is_flagged_not_hidden() -> None:
    evidence = {**failover().evidence, "received_at": T0 + 27.2}  # after the decision
    report = build(failover(evidence=evidence), CONFIG, T0 + 100)
    flagged = [e["event"] for e in report["timeline"] if e["out_of_order"]]
    assert flagged == ["decision"]
    phases = {p["name"]: p["seconds"] for p in report["phases"]}
    assert phases["decision"] < 0
    assert round(sum(phases.values()), 3) == report["total_seconds"]


def test_an_operator_transition_without_evidence_and_one_in_progress() -> None:
    manual = failover(
        kind="manual",
        cause=Cause(operator="carol", reason="drill"),
        evidence=None,
        operations=(),
    )
    report = build(manual, CONFIG, T0 + 100)
    assert next(e["event"] for e in report["timeline"]) == "decision"
    assert [p["name"] for p in report["phases"]] == ["action"]
    assert report["notes"] == [
        "recorded before reports kept their evidence: alerts and readiness unknown"
    ]
    stuck = Attempts("env", False, 2, T0 + 45, T0 + 46, "HTTP 401", None, T0 + 44,
                     (Failure("HTTP 401", 2, T0 + 45, T0 + 46),))  # fmt: skip
    running = failover(result="in_progress", finished_at=None, attempts=stuck)
    report = build(running, CONFIG, T0 + 100)
    assert report["timeline"][-1]["event"] == "attempt_failed"
    assert report["phases"][-1]["name"] == "action"
    assert round(sum(p["seconds"] for p in report["phases"]), 3) == report["total_seconds"]
    assert "in progress: the report ends at its newest entry" in report["notes"]


def test_markdown_pastes_as_tables_with_one_line_per_row() -> None:
    text = report_markdown.markdown(build(failover(), CONFIG, T0 + 100))
    assert text.startswith("# Transition t-1: failover us-east-1 → eu-west-1 (completed)\n")
    for heading in ("## Timeline", "## Durations", "## Evidence", "## Actions", "## Links"):
        assert f"\n{heading}\n" in text
    tables = [b.splitlines() for b in text.split("\n\n") if b.startswith("|")]
    assert len(tables) == 4  # summary, timeline, durations, actions
    for rows in tables:
        # Escaped pipes inside cells do not split them: every row has the header's cells.
        assert len({row.replace("\\|", "").count("|") for row in rows}) == 1, rows
    assert "HTTP 503 \\| busy" in text and '`{"a\\|b": 1}`' in text
    assert "| **total** |  |  | **41.000** |" in text
    assert "<https://grafana.example/d/ddb-failover-overview/?from=" in text
    assert "Vantage points that saw us-east-1 down: vm-a, vm-b (annotation vantages_down)" in text


HOSTILE_LINKS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/graph",  # scheme-relative: whatever the page was served over
    "http:///no-host",
    'http://x.test/" onmouseover="alert(1)',
    "https://x.test/> [click](javascript:alert(1))",
    " https://x.test/lead-space",
]


def test_links_an_alert_brings_are_rendered_only_when_http_or_https() -> None:
    for url in HOSTILE_LINKS:
        alert = {**down_alert(runbook_url=url), "generator_url": url}
        evidence = {**(failover().evidence or {}), "alerts": [alert], "alertmanager_url": url}
        report = build(failover(evidence=evidence), CONFIG, T0 + 100)
        links = report["links"]
        assert (links["alert_sources"], links["alertmanager"]) == ([], None), url
        assert links["runbook"] == CONFIG.runbook_url  # the configured one instead
        text = report_markdown.markdown(report)
        assert f"<{url}>" not in text and "Alert source" not in text
    for url in ("http://prometheus.test/graph?g0.expr=up", "HTTPS://runbook.example/x#y"):
        alert = {**down_alert(runbook_url=url), "generator_url": url}
        evidence = {**(failover().evidence or {}), "alerts": [alert], "alertmanager_url": url}
        links = build(failover(evidence=evidence), CONFIG, T0 + 100)["links"]
        assert (links["alert_sources"][0]["url"], links["alertmanager"], links["runbook"]) == (
            url,
            url,
            url,
        )
