"""Issue 3's proof on real processes: a paused region pages and reaches the responder in time.

Sandbox regions (moto servers), the real exporter probing at the shipped
profile's interval (5 s, 2 s timeout), real Prometheus with the shipped rules and real
Alertmanager with the shipped routes, rendered for loopback. The responder is
replaced by a webhook sink that checks the bearer token and the v4 shape;
PagerDuty by the sandbox's Events API v2 sink. Onset-to-notification times are
printed (pytest -s) and asserted against the bound in docs/alerting.md.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sandbox.components.catalog  # noqa: F401  (registers every component)
from sandbox import profiles
from sandbox.components.alertmanager import WEBHOOK_TOKEN_SECRET
from sandbox.components.regions import chaos
from sandbox.net import wait_until
from sandbox.stack import Stack, plan, start
from tests.alerting.webhook_sink import WebhookSink

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PRIMARY, SECONDARY, TABLE = "us-east-1", "eu-west-1", "wordpress_posts"
# docs/alerting.md: the shipped detection bound (27 s with a scrape at its
# timeout) + 1 s group_wait, and delivery. PagerDuty's route waits 10 s more.
WEBHOOK_BOUND = profiles.load("shipped").detection_bound() + 1 + 2
PAGE_BOUND = WEBHOOK_BOUND + 10.0


@dataclass
class Live:
    stack: Stack
    webhook: WebhookSink

    def url(self, name: str) -> str:
        return self.stack.components[name].url

    def query(self, promql: str) -> list[dict[str, Any]]:
        args = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url('prometheus')}/api/v1/query?{args}") as reply:
            return list(json.load(reply)["data"]["result"])

    def pages(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url('pagerduty')}/events", timeout=5) as reply:
            return [record["event"] for record in json.load(reply)["events"]]

    def notifications(self, status: str, region: str) -> list[dict[str, Any]]:
        return [
            p for p in self.webhook.payloads()
            if p["status"] == status
            and p["groupLabels"] == {"alertname": "DynamoDBRegionDown", "region": region}
        ]  # fmt: skip


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    options = {"regions": [PRIMARY, SECONDARY], "tables": [TABLE], "profile": "shipped"}
    stack = Stack(tmp_path, options=options)
    token = stack.secret(WEBHOOK_TOKEN_SECRET).read_text().strip()
    with WebhookSink(token) as webhook:
        stack.options = {**stack.options, "responder_url": f"http://127.0.0.1:{webhook.port}"}
        try:
            start(stack, plan(["exporter", "prometheus", "alertmanager", "pagerduty"]))
            yield Live(stack, webhook)
        finally:
            stack.close()


def test_paused_region_reaches_responder_and_pager_then_resolves(live: Live) -> None:
    # Warm: Prometheus has seen both regions healthy through the rules.
    wait_until(
        lambda: len(live.query("ddb:region_healthy:bool == 1")) == 2,
        60,
        interval=0.5,
        message="both regions healthy in Prometheus",
    )

    onset_wall, onset = time.time(), time.monotonic()
    chaos(live.stack, {"region": PRIMARY, "op": "pause"})
    [firing] = wait_until(
        lambda: live.notifications("firing", PRIMARY), 60, interval=0.1, message="RegionDown"
    )
    to_webhook = _arrival(live, firing) - onset
    [alert] = firing["alerts"]
    assert alert["labels"] == {
        "alertname": "DynamoDBRegionDown", "region": PRIMARY, "table": TABLE,
        "severity": "critical", "monitor": "ddb-failover",  # Prometheus's external label
    }  # fmt: skip
    last_write = float(alert["annotations"]["last_write_success_timestamp"])
    assert onset_wall - 10 <= last_write <= onset_wall + 1  # the last write before the pause

    page = wait_until(
        lambda: [
            e for e in live.pages()
            if e["event_action"] == "trigger" and e["payload"].get("class") == "DynamoDBRegionDown"
        ],
        60,
        interval=0.2,
        message="PagerDuty trigger",
    )[0]  # fmt: skip
    to_page = time.monotonic() - onset
    assert page["payload"]["source"] == PRIMARY
    assert page["payload"]["custom_details"]["tables"] == TABLE

    recovery = time.monotonic()
    chaos(live.stack, {"region": PRIMARY, "op": "resume"})
    [resolved] = wait_until(
        lambda: live.notifications("resolved", PRIMARY), 90, interval=0.1, message="resolved"
    )
    to_resolved = _arrival(live, resolved) - recovery

    print(
        f"\nonset->webhook {to_webhook:.1f}s, onset->page <={to_page:.1f}s, "
        f"recovery->resolved {to_resolved:.1f}s"
    )
    assert to_webhook <= WEBHOOK_BOUND
    assert to_page <= PAGE_BOUND
    assert not live.notifications("firing", SECONDARY)  # the healthy region never fired
    assert not live.webhook.rejected


def _arrival(live: Live, payload: dict[str, Any]) -> float:
    return next(at for at, p in live.webhook.received if p is payload)
