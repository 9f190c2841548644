"""The shipped Alertmanager config on the real Alertmanager: webhook, pages, inhibition.

Alerts are posted straight to Alertmanager's API, so this needs neither
Prometheus nor the exporter; the responder is a local webhook sink that checks
the bearer token, and PagerDuty is the sandbox's Events API v2 sink.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.components import alertmanager as alertmanager_component  # registers it
from sandbox.net import wait_until
from sandbox.stack import Stack, plan, start
from tests.alerting.webhook_sink import WebhookSink

RUNBOOK = "https://github.com/ddb-failover/ddb-failover/blob/main/docs/runbook.md"

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    stack: Stack
    webhook: WebhookSink

    @property
    def alertmanager(self) -> str:
        return self.stack.components["alertmanager"].url

    @property
    def pagerduty(self) -> str:
        return self.stack.components["pagerduty"].url


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    stack = Stack(tmp_path)
    token = stack.secret(alertmanager_component.WEBHOOK_TOKEN_SECRET).read_text().strip()
    with WebhookSink(token) as webhook:
        stack.config_data["responder"] = {"listen": f"127.0.0.1:{webhook.port}"}
        try:
            start(stack, plan(["alertmanager"]))
            yield Setup(stack, webhook)
        finally:
            stack.close()


def alert(name: str, severity: str, ends: bool = False, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    body: dict[str, Any] = {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {
            "summary": f"{name} {labels.get('table', '')}".strip(),
            "description": f"{name} for the test",
            "runbook_url": f"{RUNBOOK}#{name.lower()}",
            "active_region": "us-east-1",
        },
        "generatorURL": "http://prometheus.invalid/graph",
    }
    if ends:
        body["endsAt"] = now
    return body


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_outage_acts_pages_once_and_resolves(setup: Setup) -> None:
    down = [
        alert("DynamoDBRegionDown", "critical", region="us-east-1", table="posts"),
        alert("DynamoDBRegionDown", "critical", region="us-east-1", table="comments"),
    ]
    symptoms = [
        alert("DynamoDBRegionDegraded", "warning", region="us-east-1", table="posts"),
        alert("DynamoDBReplicationLagHigh", "critical", region="us-east-1",
              source_region="eu-west-1", table="posts"),
        # WordPress cannot read a dead table: its page would be the same outage's.
        alert("WordPressSiteDownInActiveRegion", "critical", region="us-east-1"),
    ]  # fmt: skip
    unrelated = [
        alert("DynamoDBReplicationLagHigh", "critical", region="eu-west-1",
              source_region="ap-southeast-2", table="posts"),
        alert("DynamoDBFailbackReady", "info", region="ap-southeast-2"),
    ]  # fmt: skip
    post_alerts(setup.alertmanager, down + symptoms + unrelated)

    # The responder gets one v4 notification per (alertname, region) group.
    def webhook_groups() -> dict[tuple[str, str], dict[str, Any]] | None:
        groups = {
            (p["groupLabels"]["alertname"], p["groupLabels"]["region"]): p
            for p in setup.webhook.payloads()
        }
        return groups if len(groups) == 2 else None

    groups = wait_until(webhook_groups, 30, message="two webhook notifications")
    assert not setup.webhook.rejected
    regiondown = groups[("DynamoDBRegionDown", "us-east-1")]
    assert regiondown["status"] == "firing"
    assert sorted(a["labels"]["table"] for a in regiondown["alerts"]) == ["comments", "posts"]
    assert groups[("DynamoDBFailbackReady", "ap-southeast-2")]["status"] == "firing"

    # The region's lag alert is inhibited by its RegionDown; the other region's is not.
    lag = get_json(
        f"{setup.alertmanager}/api/v2/alerts?filter=alertname%3D%22DynamoDBReplicationLagHigh%22"
    )
    inhibited = {a["labels"]["region"]: bool(a["status"]["inhibitedBy"]) for a in lag}
    assert inhibited == {"us-east-1": True, "eu-west-1": False}
    [site] = get_json(
        f"{setup.alertmanager}/api/v2/alerts?filter=alertname%3D%22WordPressSiteDownInActiveRegion%22"
    )
    assert site["status"]["inhibitedBy"]

    def pages() -> list[dict[str, Any]]:
        return [r["event"] for r in get_json(f"{setup.pagerduty}/events")["events"]]

    wait_until(lambda: len(pages()) >= 2, 30, message="two PagerDuty events")

    # Resolving the outage reaches the responder (send_resolved) ...
    post_alerts(setup.alertmanager, [
        alert("DynamoDBRegionDown", "critical", ends=True, region="us-east-1", table="posts"),
        alert("DynamoDBRegionDown", "critical", ends=True, region="us-east-1", table="comments"),
    ])  # fmt: skip
    resolved = wait_until(
        lambda: [
            p for p in setup.webhook.payloads()
            if p["status"] == "resolved" and p["groupLabels"]["alertname"] == "DynamoDBRegionDown"
        ],
        30,
        message="resolved RegionDown notification",
    )  # fmt: skip
    assert {a["status"] for a in resolved[0]["alerts"]} == {"resolved"}

    # ... and by now (well past every group_wait) the pager saw exactly one page
    # for the outage, and one for the unrelated lag: no symptom pages.
    triggers = [e for e in pages() if e["event_action"] == "trigger"]
    classes = sorted((e["payload"]["class"], e["payload"]["source"]) for e in triggers)
    assert classes == [
        ("DynamoDBRegionDown", "us-east-1"),
        ("DynamoDBReplicationLagHigh", "eu-west-1"),
    ]
    [page] = [e for e in triggers if e["payload"]["class"] == "DynamoDBRegionDown"]
    assert page["payload"]["severity"] == "critical"
    summary = page["payload"]["summary"]
    assert summary.startswith("[FIRING:2] DynamoDBRegionDown in us-east-1, tables "), summary
    assert summary.endswith("(active region: us-east-1)"), summary
    details = page["payload"]["custom_details"]
    assert details["region"] == "us-east-1"
    assert sorted(details["tables"].split(", ")) == ["comments", "posts"]
    assert details["active_region"] == "us-east-1"
    assert page["links"][0]["href"] == f"{RUNBOOK}#dynamodbregiondown"
