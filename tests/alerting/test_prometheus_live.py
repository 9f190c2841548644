"""The sandbox's Prometheus component: the real server loads the shipped rules on loopback."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.components import prometheus as prometheus_component  # registers it
from sandbox.net import wait_until
from sandbox.stack import Stack, plan, start

pytestmark = pytest.mark.slow


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, options={"failback_window": "1m"})
    stack.config_data["exporter"] = {"listen": "0.0.0.0:1"}  # nothing there: a dead exporter
    try:
        start(stack, plan(["prometheus"]))
        yield stack
    finally:
        stack.close()


def api(stack: Stack, path: str) -> Any:
    url = stack.components["prometheus"].url
    with urllib.request.urlopen(f"{url}/api/v1/{path}", timeout=5) as response:
        return json.load(response)["data"]


def test_prometheus_runs_the_shipped_rules_against_loopback_targets(stack: Stack) -> None:
    loaded = [rule for group in api(stack, "rules")["groups"] for rule in group["rules"]]
    rules = {rule["name"]: rule for rule in loaded}
    assert prometheus_component.FAILBACK_ALERT in rules
    shipped = [
        rule
        for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    assert len(loaded) == len(shipped)  # every shipped rule loaded, none renamed by the render
    assert rules["DynamoDBFailbackReady"]["duration"] == 60  # the demo window, rendered
    assert rules["DynamoDBRegionDown"]["duration"] == 0  # everything else as shipped

    alertmanager = stack.components["alertmanager"].url
    wait_until(
        lambda: [
            a for a in api(stack, "alertmanagers")["activeAlertmanagers"]
            if a["url"].startswith(alertmanager)
        ],
        30,
        message="Prometheus discovers the sandbox Alertmanager",
    )  # fmt: skip

    def targets() -> dict[str, Any] | None:
        found = {t["labels"]["job"]: t for t in api(stack, "targets")["activeTargets"]}
        return found if len(found) == 4 else None

    found = wait_until(targets, 30, message="all four scrape jobs")
    assert found["ddb_exporter"]["scrapeUrl"] == "http://127.0.0.1:1/metrics"
    assert found["ddb_failover_responder"]["scrapeUrl"] == "http://127.0.0.1:9746/metrics"
