"""DynamoDBReplicaNotActive wired end to end: chaos replica-status to a page.

STRONG sandbox tables (two replicas and a witness), the real exporter reading
DescribeTable every second, the real Prometheus (fast profile) and Alertmanager,
the PagerDuty sink. The shipped rule waits 5 minutes; promtool proves it
(testdata/rules/replica_status.test.yml). Here a copy of it with a 2 s `for:`,
loaded beside the shipped rules, proves the wiring: exporter series, Prometheus
rule, routing by severity, page.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import sandbox.components  # noqa: F401  (registers every component)
from sandbox.components.regions import chaos
from sandbox.net import free_port, wait_until
from sandbox.profiles import PROMETHEUS_DIR
from sandbox.stack import Stack, plan, start

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ALERT = "DynamoDBReplicaNotActive"
PRIMARY, SECONDARY, WITNESS, TABLE = "us-east-1", "us-east-2", "us-west-2", "wordpress_posts"


def short_copy(directory: Path) -> Path:
    """The shipped DynamoDBReplicaNotActive rules, `for: 2s`, in a group evaluated every 1 s."""
    shipped = yaml.safe_load((PROMETHEUS_DIR / "rules" / "dynamodb.yml").read_text())
    rules = [
        {**rule, "for": "2s"}
        for group in shipped["groups"]
        for rule in group["rules"]
        if rule.get("alert") == ALERT
    ]
    assert len(rules) == 2  # a critical and a warning one
    path = directory / "replica-not-active-2s.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "test", "interval": "1s", "rules": rules}]})
    )
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    options = {
        "consistency": "strong",
        "regions": [PRIMARY, SECONDARY],
        "witness": WITNESS,
        "tables": [TABLE],
        "profile": "fast",
        "describe_interval_seconds": 1.0,
        "extra_rules": [str(short_copy(tmp_path))],
        "responder_url": f"http://127.0.0.1:{free_port()}",  # not routed to: nothing listens
    }
    running = Stack(tmp_path / "stack", options=options)
    try:
        start(running, plan(["exporter", "prometheus", "alertmanager", "pagerduty"]))
        yield running
    finally:
        running.close()


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    args = urllib.parse.urlencode({"query": promql})
    url = f"{stack.components['prometheus'].url}/api/v1/query?{args}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        return list(json.load(reply)["data"]["result"])


def pages(stack: Stack) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{stack.components['pagerduty'].url}/events", timeout=5) as reply:
        return [record["event"] for record in json.load(reply)["events"]]


def test_a_disabled_replica_fires_and_pages(stack: Stack) -> None:
    info = f'dynamodb_table_info{{table="{TABLE}",consistency="STRONG",witness_region="{WITNESS}"}}'
    wait_until(lambda: query(stack, info), 60, interval=0.5, message="table info in Prometheus")
    assert not query(stack, f'ALERTS{{alertname="{ALERT}"}}')

    chaos(stack, {"region": SECONDARY, "op": "replica-status", "status": "REGION_DISABLED"})
    firing = f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'
    [alert] = wait_until(lambda: query(stack, firing), 30, interval=0.5, message="firing")
    labels = alert["metric"]
    assert (labels["region"], labels["table"]) == (SECONDARY, TABLE)
    assert (labels["status"], labels["severity"]) == ("REGION_DISABLED", "critical")

    page = wait_until(
        lambda: [
            e for e in pages(stack)
            if e["event_action"] == "trigger" and e["payload"].get("class") == ALERT
        ],
        40,
        interval=0.5,
        message="the page",
    )[0]  # fmt: skip
    assert page["payload"]["source"] == SECONDARY
    assert page["payload"]["severity"] == "critical"
    assert "#dynamodbreplicanotactive" in page["payload"]["custom_details"]["runbook"]

    # ACTIVE again: the old status's series goes stale and the alert resolves.
    chaos(stack, {"region": SECONDARY, "op": "replica-status", "status": "ACTIVE"})
    wait_until(lambda: not query(stack, firing), 30, interval=0.5, message="resolved")
