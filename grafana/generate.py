"""Generate grafana/dashboards/*.json: `python grafana/generate.py` (or `--check`).

Dashboards are kept as code so panels share one data source, one variable filter and
thresholds taken from the alert rules; the generated JSON is committed for Grafana's file
provisioning, and tests/deploy/ checks it is current. Edit this file, then regenerate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "ddb-prometheus"}  # provisioning/datasources
RUNBOOK = "https://github.com/ddb-failover/ddb-failover/blob/main/docs/runbook.md"

# Thresholds the alert rules use (prometheus/rules/); tests/deploy/ checks they agree.
REGION_DOWN_RATIO = 0.5  # DynamoDBRegionDown: ddb:region_down_vantages:ratio > 0.5
DEGRADED_RATIO = 0.5  # DynamoDBRegionDegraded: ..._vantages:ratio_2m > 0.5
SLOW_P95_SECONDS = 1  # ddb:region_slow_vantages:ratio_2m: p95 > bool 1
LAG_RPO_SECONDS = 60  # DynamoDBReplicationLagHigh: ddb:replication_lag_seconds:min > 60
PLAN_STALE_SECONDS = 900  # FailoverPlanNotReady: time() - ..._evaluated_timestamp_seconds > 900
SITE_DOWN_FOR = "30s"  # WordPressSiteDown: wordpress:site_up:max == 0 for 30s
SITE_PROBE_TIMEOUT_SECONDS = 3  # blackbox/blackbox.yml: module wordpress_health's timeout

PROBES = 'table=~"$table", vantage=~"$vantage"'  # the variables' filter on exporter series
RED, GREEN, BLUE, ORANGE = "red", "green", "blue", "orange"

Json = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Json:
    """One Prometheus query of a panel."""
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute thresholds: (None, base colour) first, then (value, colour) upwards."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def value_map(**texts: tuple[str, str]) -> list[Json]:
    """Value mappings: value -> (text, colour)."""
    options = {
        value: {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(texts.items())
    }
    return [{"type": "value", "options": options}]


def override(word: str, color: str) -> Json:
    """Colour the series whose legend contains word."""
    return {
        "matcher": {"id": "byRegexp", "options": f".*\\b{word}\\b.*"},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[Json],
    unit: str,
    *,
    steps: Sequence[tuple[float | None, str]] = ((None, GREEN),),
    mappings: list[Json] | None = None,
    overrides: list[Json] | None = None,
    options: Json | None = None,
    custom: Json | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    decimals: int | None = None,
    no_value: str | None = None,
) -> Json:
    """A panel without its position; layout() assigns id and gridPos."""
    defaults: Json = {"unit": unit, "thresholds": thresholds(*steps), "mappings": mappings or []}
    for key, value in (
        ("min", minimum),
        ("max", maximum),
        ("decimals", decimals),
        ("noValue", no_value),
        ("custom", custom),
    ):
        if value is not None:
            defaults[key] = value
    if kind in ("stat", "bargauge"):
        defaults["color"] = {"mode": "thresholds"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Json],
    unit: str,
    *,
    threshold: float | None = None,
    bars: bool = False,
    **kwargs: Any,
) -> Json:
    """A time series; a threshold is drawn as a red dashed line where the alert fires."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": "off" if threshold is None else "dashed"},
    }
    steps = ((None, GREEN),) if threshold is None else ((None, GREEN), (threshold, RED))
    options = {
        "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    kwargs.update(steps=steps, custom=custom, options=options)
    return panel("timeseries", title, description, targets, unit, **kwargs)


def stat(
    title: str, description: str, targets: Sequence[Json], unit: str, text_mode: str, **kw: Any
) -> Json:
    """A single-value panel; text_mode "name" shows the series' legend (e.g. a region)."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": text_mode,
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
    }
    return panel("stat", title, description, targets, unit, options=options, **kw)


def row(title: str) -> Json:
    """A row header (collapsible section)."""
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


Cell = tuple[Json, int, int]  # a panel, its width and its height


def layout(sections: Iterable[tuple[Json, Sequence[Sequence[Cell]]]]) -> list[Json]:
    """Number panels and place them: sections of rows of (panel, width, height)."""
    placed: list[Json] = []
    y = 0
    for header, lines in sections:
        placed.append({**header, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
        y += 1
        for line in lines:
            x = 0
            for item, width, height in line:
                placed.append({**item, "gridPos": {"x": x, "y": y, "w": width, "h": height}})
                x += width
            y += max(height for _, _, height in line)
    return [{"id": index, **item} for index, item in enumerate(placed, start=1)]


def now_section() -> list[list[Cell]]:
    """The state of things at a glance."""
    active = stat(
        "Active region",
        "The region the responder directs traffic to now (responder_active_region == 1). "
        "After a failover this is not the primary; it returns to the primary on failback.",
        [target("max by (region) (responder_active_region == 1)", "{{region}}", instant=True)],
        "none",
        "name",
        steps=((None, BLUE),),
        no_value="unknown: is the responder up?",
    )
    since = stat(
        "In this region for",
        "Time since the active region last changed (to a minute), looking back 7 days; "
        "'over 7 days' when it has not changed since. See the 'Active region over time' panel.",
        [
            target(
                "time() - max(last_over_time("
                "(timestamp(changes(responder_active_region[1m]) > 0))[7d:1m]))",
                "since",
                instant=True,
            )
        ],
        "s",
        "value",
        steps=((None, BLUE),),
        no_value="over 7 days",
    )
    primary = stat(
        "Primary region",
        "The first configured region: where traffic belongs, and where failback returns it "
        "once DynamoDBFailbackReady has held for its window.",
        [target("max by (region) (responder_primary_region == 1)", "{{region}}", instant=True)],
        "none",
        "name",
        steps=((None, BLUE),),
    )
    health = stat(
        "Region health, as the alerts see it",
        "Per region: healthy when, for every table, a majority of the vantage points that are "
        "up saw every probe succeed (ddb:region_healthy:bool). All tables and vantage points, "
        "whatever the variables above select.",
        [target("ddb:region_healthy:bool", "{{region}}", instant=True)],
        "none",
        "value_and_name",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("unhealthy", RED), "1": ("healthy", GREEN)}),
    )
    frozen = stat(
        "Automatic transitions",
        "FROZEN after an operator's `ddb-responder freeze` or when the transition cap per hour "
        "was reached: no automatic failover or failback until `ddb-responder unfreeze`.",
        [target("max(responder_frozen)", "frozen", instant=True)],
        "none",
        "value",
        steps=((None, GREEN), (1, RED)),
        mappings=value_map(**{"0": ("enabled", GREEN), "1": ("FROZEN", RED)}),
    )
    alerts = stat(
        "Firing ddb-failover alerts",
        "How many DynamoDB* and Failover* alerts fire now; each has a runbook entry (link at "
        "the top of this dashboard). DynamoDBRegionDown triggers the failover by itself.",
        [
            target(
                'sum(ALERTS{alertstate="firing", alertname=~"DynamoDB.*|Failover.*"}) or vector(0)',
                "firing",
                instant=True,
            )
        ],
        "none",
        "value",
        steps=((None, GREEN), (1, RED)),
    )
    watchers = stat(
        "Watchers up",
        "Whether Prometheus can scrape each exporter (vantage point) and the responder. "
        "DynamoDBExporterDown / FailoverResponderDown fire after 30 s at DOWN: with no "
        "exporter up nothing is detected; with no responder nothing fails over.",
        [
            target(
                'up{job=~"ddb_exporter|ddb_failover_responder"}',
                "{{job}} {{instance}}",
                instant=True,
            )
        ],
        "none",
        "value_and_name",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("DOWN", RED), "1": ("up", GREEN)}),
    )
    vantages = stat(
        "Vantage points reporting",
        "Exporters whose probes of the selected tables reach Prometheus. Region-down needs a "
        "strict majority of these to agree, so one broken prober cannot cause a failover.",
        [
            target(
                f"count(count by (vantage) (dynamodb_probe_success{{{PROBES}}}))",
                "vantage points",
                instant=True,
            )
        ],
        "none",
        "value",
        steps=((None, RED), (1, GREEN)),
        no_value="0",
    )
    phase = stat(
        "Phase",
        "What the responder is doing: steady; failing_over / failing_back (a transition runs); "
        "stalled (past its deadline or stopped at a permanent error: FailoverStalled pages, "
        "`ddb-responder status` says why); frozen (a freeze stopped it at a step); blocked.",
        [target("max by (phase) (responder_phase == 1)", "{{phase}}", instant=True)],
        "none",
        "name",
        steps=((None, BLUE),),
        no_value="unknown: is the responder up?",
    )
    return [
        [(active, 5, 5), (since, 4, 5), (primary, 4, 5), (health, 6, 5), (frozen, 5, 5)],
        [(phase, 4, 4), (alerts, 4, 4), (watchers, 11, 4), (vantages, 5, 4)],
    ]


def probe_section() -> list[list[Cell]]:
    """Each region's probe success and latency."""

    def quantile(q: float) -> str:
        return (
            f"histogram_quantile({q}, sum by (region, operation, le) "
            f"(rate(dynamodb_probe_duration_seconds_bucket{{{PROBES}}}[$__rate_interval])))"
        )

    success = timeseries(
        "Probe success",
        "1 when the last read (consistent read of the canary item) or write (heartbeat) probe "
        "of a region succeeded, 0 when it failed; worst of the selected tables and vantage "
        "points. A dip shorter than the sustained window does not fail over.",
        [
            target(
                f"min by (region, operation) (dynamodb_probe_success{{{PROBES}}})",
                "{{region}} {{operation}}",
            )
        ],
        "none",
        minimum=0,
        maximum=1,
        decimals=0,
    )
    down = timeseries(
        "Vantage points seeing the region down",
        "Fraction of the vantage points that are up seeing every probe of a region fail. "
        f"Above {REGION_DOWN_RATIO:.0%} (the red line) for 10 s, DynamoDBRegionDown fires and "
        "the responder fails traffic over. Not filtered by vantage: this is the vote itself.",
        [target('ddb:region_down_vantages:ratio{table=~"$table"}', "{{region}} {{table}}")],
        "percentunit",
        threshold=REGION_DOWN_RATIO,
        minimum=0,
        maximum=1,
    )
    latency = timeseries(
        "Probe latency p50 / p99",
        "Probe latency per region and operation from the histogram (a timed-out probe counts "
        f"as its timeout). The red line is {SLOW_P95_SECONDS} s: DynamoDBRegionDegraded fires "
        "when a majority of vantage points see p95 above it for a minute (warning, no action).",
        [
            target(quantile(0.5), "p50 {{region}} {{operation}}", "A"),
            target(quantile(0.99), "p99 {{region}} {{operation}}", "B"),
        ],
        "s",
        threshold=SLOW_P95_SECONDS,
        minimum=0,
    )
    failures = timeseries(
        "Probe failures by reason",
        "Failed probes per second by reason: timeout (region black-holed or very slow), "
        "connection (refused or reset), throttled, not_found (canary item or table missing), "
        "access_denied (IAM policy), other.",
        [
            target(
                "sum by (region, reason) "
                f"(rate(dynamodb_probe_failures_total{{{PROBES}}}[$__rate_interval]))",
                "{{region}} {{reason}}",
            )
        ],
        "ops",
        minimum=0,
    )
    degraded = timeseries(
        "Degradation signals",
        "Fraction of the vantage points that are up seeing a region fail more than 10% of its "
        f"probes, or a p95 latency over {SLOW_P95_SECONDS} s, over the last 2 minutes. Above "
        f"{DEGRADED_RATIO:.0%} for 1 minute, DynamoDBRegionDegraded fires (warning only).",
        [
            target(
                'ddb:region_failing_vantages:ratio_2m{table=~"$table"}',
                "failing {{region}} {{table}}",
                "A",
            ),
            target(
                'ddb:region_slow_vantages:ratio_2m{table=~"$table"}',
                "slow {{region}} {{table}}",
                "B",
            ),
        ],
        "percentunit",
        threshold=DEGRADED_RATIO,
        minimum=0,
        maximum=1,
    )
    last = timeseries(
        "Time since last successful probe",
        "Seconds since any selected vantage point last probed each region successfully. Climbs "
        "steadily during an outage; the responder's data-at-risk estimate starts from the last "
        "successful write.",
        [
            target(
                "time() - max by (region, operation) "
                f"(dynamodb_probe_last_success_timestamp_seconds{{{PROBES}}})",
                "{{region}} {{operation}}",
            )
        ],
        "s",
        minimum=0,
    )
    return [
        [(success, 12, 8), (down, 12, 8)],
        [(latency, 12, 8), (failures, 12, 8)],
        [(degraded, 12, 8), (last, 12, 8)],
    ]


def replication_section() -> list[list[Cell]]:
    """Replication lag between every pair of regions."""
    expr = f"min by (table, source_region, region) (dynamodb_replication_lag_seconds{{{PROBES}}})"
    description = (
        "Age of the newest heartbeat written in source_region that is visible in region, as "
        "seen by the best-informed selected vantage point: the data a failover to that region "
        f"would lose. Above {LAG_RPO_SECONDS} s (the red line, the RPO) for 2 minutes "
        "DynamoDBReplicationLagHigh fires, and the responder refuses to fail over to it."
    )
    over_time = timeseries(
        "Replication lag",
        description,
        [target(expr, "{{source_region}} → {{region}} {{table}}")],
        "s",
        threshold=LAG_RPO_SECONDS,
        minimum=0,
    )
    now = panel(
        "bargauge",
        "Replication lag now",
        description,
        [target(expr, "{{source_region}} → {{region}} {{table}}", instant=True)],
        "s",
        steps=((None, GREEN), (LAG_RPO_SECONDS, RED)),
        minimum=0,
        maximum=2 * LAG_RPO_SECONDS,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        },
    )
    return [[(over_time, 16, 8), (now, 8, 8)]]


def responder_section() -> list[list[Cell]]:
    """What the responder decided and did."""
    active = panel(
        "state-timeline",
        "Active region over time",
        "Which region served traffic when, per the responder. Failovers and failbacks are also "
        "marked on every time series panel as annotations.",
        [target("responder_active_region", "{{region}}")],
        "none",
        steps=((None, "transparent"),),
        mappings=value_map(**{"0": ("standby", "transparent"), "1": ("active", GREEN)}),
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )
    transitions = timeseries(
        "Transitions",
        "Failovers, failbacks and operator (manual) transitions by result. completed: traffic "
        "moved; blocked: wanted but refused (no healthy target, lag over the RPO, dwell time, "
        "cap, frozen), which fires FailoverBlocked; failed: aborted by an operator.",
        [
            target(
                "sum by (kind, result) (increase(responder_transitions_total[$__rate_interval]))",
                "{{kind}} {{result}}",
            )
        ],
        "short",
        bars=True,
        minimum=0,
        overrides=[
            override("blocked", ORANGE),
            override("failed", RED),
            override("completed", GREEN),
        ],
    )
    actions = timeseries(
        "Action runs by result",
        "Each action (DNS record, load balancer, Route 53, env file, ...) by result: applied "
        "(changed the world), unchanged (already right), would_apply (dry run), failed "
        "(every failed attempt, retried or not; fires FailoverActionFailing).",
        [
            target(
                "sum by (action, result) (increase(responder_action_runs_total[$__rate_interval]))",
                "{{action}} {{result}}",
            )
        ],
        "short",
        bars=True,
        minimum=0,
        overrides=[override("failed", RED)],
    )
    webhooks = timeseries(
        "Webhook requests by status",
        "Alertmanager's notifications to the responder by HTTP status: 202 accepted; 401 a "
        "token mismatch between Alertmanager and the responder; 503 state store unavailable "
        "(Alertmanager retries).",
        [
            target(
                "sum by (code) (rate(responder_webhook_requests_total[$__rate_interval]))",
                "{{code}}",
            )
        ],
        "reqps",
        minimum=0,
        overrides=[override("401", RED), override("503", ORANGE)],
    )
    split = panel(
        "state-timeline",
        "Where each action's object is",
        "The region each action's last verified state belongs to (responder_action_region). "
        "Outside a transition every row should match the active region; a row that does not "
        "(after a skip, or an abort without rollback) fires FailoverSplitState.",
        [target("max by (action, region) (responder_action_region == 1)", "{{action}} {{region}}")],
        "none",
        steps=((None, "transparent"),),
        mappings=value_map(**{"1": ("here", BLUE)}),
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )
    return [
        [(active, 12, 5), (split, 12, 5)],
        [(transitions, 8, 8), (actions, 8, 8), (webhooks, 8, 8)],
    ]


def plan_section() -> list[list[Cell]]:
    """The failover plan: would a move to each other region pass every action's checks?"""
    # ">= 0" drops the NaN of the active region (not a candidate); min: any replica says no.
    ready = "min by (region, action) (responder_plan_ready >= 0)"
    now = stat(
        "Failover plan now",
        "Per region that could become active: ready when every action's checks (credentials, "
        "object, target) and the region's own readiness pass on every responder. NOT READY "
        "for 10 minutes fires FailoverPlanNotReady (a ticket); `ddb-responder plan --to "
        "REGION` says why. The active region is not listed.",
        [target("min by (region) (responder_plan_ready >= 0)", "{{region}}", instant=True)],
        "none",
        "value_and_name",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("NOT READY", RED), "1": ("ready", GREEN)}),
        no_value="not evaluated: is the responder up?",
    )
    age = stat(
        "Plan evaluated",
        "Time since each responder last evaluated the plan (every "
        "responder.plan.interval_seconds, 60 s by default). Over 900 s (15 minutes) its "
        "evaluator is stuck, and FailoverPlanNotReady fires 10 minutes later.",
        [
            target(
                "max by (instance) (time() - responder_plan_evaluated_timestamp_seconds)",
                "{{instance}}",
                instant=True,
            )
        ],
        "s",
        "value_and_name",
        steps=((None, GREEN), (PLAN_STALE_SECONDS, RED)),
    )
    timeline = panel(
        "state-timeline",
        "Plan readiness by region and action",
        "For each candidate region (all but the active one), each action of the plan and "
        "the region's own readiness over time: ready, or NOT READY (the plan names the "
        "problem's kind: credentials, missing, invalid_target, not_writable, ...; see the "
        "runbook's FailoverPlanNotReady section).",
        [target(ready, "{{region}} {{action}}")],
        "none",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("NOT READY", RED), "1": ("ready", GREEN)}),
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )
    return [[(now, 8, 5), (age, 4, 5), (timeline, 12, 5)]]


def switchover_section() -> list[list[Cell]]:
    """Planned switchovers and practice runs: the RTO measured in production, run after run."""
    figure = 'max by (kind, to_region) (responder_switchover_seconds{{figure="{}"}})'
    times = timeseries(
        "Switchover time and write unavailability",
        "Each switchover and practice leg, from the newest one's figures: switchover time "
        "(start to end) and write unavailability (fence on to fence off, the writes users "
        "could not make). A step per run; the report of each holds its RPO and drain.",
        [
            target(figure.format("duration"), "{{kind}} to {{to_region}}: switchover time"),
            target(
                figure.format("write_unavailable"),
                "{{kind}} to {{to_region}}: write unavailable",
                "B",
            ),
            target(figure.format("drain"), "{{kind}} to {{to_region}}: drain", "C"),
        ],
        "s",
        minimum=0,
        overrides=[override("unavailable", ORANGE)],
    )
    runs = stat(
        "Practice runs by outcome",
        "Practice runs the history holds, by outcome: SUCCEEDED, INTERRUPTED (an outcome "
        "check or a real outage ended it), FAILED (a leg failed), BLOCKED (nothing moved).",
        [target("max by (outcome) (responder_practice_runs_total)", "{{outcome}}", instant=True)],
        "short",
        "value_and_name",
    )
    last = stat(
        "Since the last successful practice run",
        "How long ago the newest SUCCEEDED practice run ended; FailoverPracticeOverdue fires "
        "past responder.practice.max_age_days.",
        [
            target(
                "time() - max(responder_practice_last_success_timestamp_seconds > 0)",
                instant=True,
            )
        ],
        "s",
        "value",
        no_value="never",
    )
    return [[(times, 16, 8), (runs, 4, 8), (last, 4, 8)]]


def site_section() -> list[list[Cell]]:
    """WordPress in every region, as blackbox_exporter's health checks see it."""
    now = stat(
        "WordPress now",
        "Per region: up when some probe target of the region (its load balancer) answered "
        "the last health check with 200 (wordpress:site_up:max, job wordpress). DOWN for "
        f"{SITE_DOWN_FOR[:-1]} s fires WordPressSiteDown, and WordPressSiteDownInActiveRegion "
        "(a page) in the region users are served from.",
        [target("wordpress:site_up:max", "{{region}}", instant=True)],
        "none",
        "value_and_name",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("DOWN", RED), "1": ("up", GREEN)}),
        no_value="not probed: is blackbox_exporter up?",
    )
    over_time = panel(
        "state-timeline",
        "WordPress health checks",
        "Each region's site over time: up (200 from the health path with the site's Host "
        "header) or DOWN (refused, timed out, or another status). A region whose site is "
        "down cannot take traffic: the responder refuses a failover to it.",
        [target("wordpress:site_up:max", "{{region}}")],
        "none",
        steps=((None, RED), (1, GREEN)),
        mappings=value_map(**{"0": ("DOWN", RED), "1": ("up", GREEN)}),
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )
    status = timeseries(
        "Health check status code",
        "The HTTP status each region's health path answered (0: no answer at all, a refused "
        "connection or a timeout). Only 200 counts as up; 503 usually means the site cannot "
        "read its DynamoDB table, or its load balancer has no healthy droplet.",
        [
            target(
                'max by (region) (probe_http_status_code{job="wordpress"})',
                "{{region}}",
            )
        ],
        "none",
        minimum=0,
        decimals=0,
    )
    duration = timeseries(
        "Health check duration",
        "How long each region's health check took, connection to last byte, as the prober "
        f"saw it. At {SITE_PROBE_TIMEOUT_SECONDS} s (the red line, the module's timeout) the "
        "check gives up and counts as failed.",
        [target('max by (region) (probe_duration_seconds{job="wordpress"})', "{{region}}")],
        "s",
        threshold=SITE_PROBE_TIMEOUT_SECONDS,
        minimum=0,
    )
    return [[(now, 6, 6), (over_time, 18, 6)], [(status, 12, 7), (duration, 12, 7)]]


def variable(name: str, label: str, query: str, description: str) -> Json:
    """A multi-value query variable whose All matches every value."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "options": [],
        "hide": 0,
    }


def annotation(
    name: str, expr: str, color: str, title: str, text: str, tags: str, at_value: bool = False
) -> Json:
    """Events from a Prometheus query, drawn on every time series panel.

    at_value: the query's value is the event's time in milliseconds (not when it was seen).
    """
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": "15s",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": tags,
        "useValueForTime": at_value,
    }


def overview() -> Json:
    """The ddb-failover overview dashboard."""
    return {
        "uid": "ddb-failover-overview",
        "title": "ddb-failover overview",
        "description": "DynamoDB region health, replication lag, the active region, the "
        "responder's failovers and failbacks, and WordPress in every region.",
        "tags": ["ddb-failover"],
        "id": None,
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "refresh": "10s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "title": "Runbook",
                "type": "link",
                "url": RUNBOOK,
                "icon": "doc",
                "targetBlank": True,
                "tooltip": "What each alert means and what to do",
            }
        ],
        "templating": {
            "list": [
                variable(
                    "table",
                    "Table",
                    "label_values(dynamodb_probe_success, table)",
                    "DynamoDB tables the exporters probe",
                ),
                variable(
                    "vantage",
                    "Vantage point",
                    'label_values(dynamodb_probe_success{table=~"$table"}, vantage)',
                    "Exporters (probing locations) to include",
                ),
            ]
        },
        "annotations": {
            "list": [
                annotation(
                    "Failovers and failbacks",
                    "max by (kind, from_region, to_region, event) "
                    "(responder_transition_timestamp_seconds) * 1000",
                    RED,
                    "{{kind}} {{event}}",
                    "{{from_region}} → {{to_region}}",
                    "kind,event",
                    at_value=True,
                ),
                annotation(
                    "Blocked transitions",
                    "sum by (kind, from_region, to_region) "
                    '(increase(responder_transitions_total{result="blocked"}[1m])) > 0',
                    ORANGE,
                    "{{kind}} blocked",
                    "{{from_region}} → {{to_region}}: wanted but refused",
                    "kind",
                ),
                annotation(
                    "Practice runs",
                    # delta (a gauge: retention may lower it), not offset: a series younger
                    # than the offset (Prometheus just started) would mark nothing.
                    "max by (outcome) (delta(responder_practice_runs_total[1m])) > 0",
                    "purple",
                    "practice run {{outcome}}",
                    "a practice run ended {{outcome}}",
                    "outcome",
                ),
                annotation(
                    "Active region changed",
                    "changes(responder_active_region[1m]) > 0 and responder_active_region == 1",
                    BLUE,
                    "traffic now in {{region}}",
                    "responder_active_region changed",
                    "region",
                ),
                annotation(
                    "Region down alerts",
                    'ALERTS{alertname="DynamoDBRegionDown", alertstate="firing"}',
                    ORANGE,
                    "DynamoDBRegionDown",
                    "{{table}} down in {{region}}",
                    "region,table",
                ),
            ]
        },
        "panels": layout(
            [
                (row("Now"), now_section()),
                (row("Probes"), probe_section()),
                (row("Replication"), replication_section()),
                (row("Responder"), responder_section()),
                (row("Failover plan"), plan_section()),
                (row("Switchovers and practice runs"), switchover_section()),
                (row("WordPress sites"), site_section()),
            ]
        ),
    }


DASHBOARDS = {"ddb-failover-overview.json": overview}


def render(dashboard: Json) -> str:
    """The committed form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.out / name
        text = render(build())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
