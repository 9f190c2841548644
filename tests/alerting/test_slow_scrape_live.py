"""The blip guarantee and the detection bound hold on real processes while scrapes are slow.

Sandbox regions, the real exporter and the real Prometheus with the fast
profile's files (1 s probes, scrapes and evaluations, a 5 s window: the
shortest run that still shows the point). Prometheus scrapes the exporter
through a proxy that holds two responses in three for most of the scrape
timeout: fast, slow, slow, the timing under which evaluations read one
scrape twice and counting them fired on blips. Blips of the full window
never fire DynamoDBRegionDown; a lasting outage fires it within the bound.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import sandbox.components.catalog  # noqa: F401  (registers every component)
from sandbox import profiles
from sandbox.components.regions import chaos
from sandbox.net import wait_until
from sandbox.stack import Stack, plan, start
from tests.alerting.loopback import LoopbackServer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PRIMARY = "us-east-1"
PROFILE = profiles.load("fast")
SLOW = 0.75 * PROFILE.scrape_timeout  # "most of its scrape timeout"
PATTERN = "fss"  # fast, slow, slow, repeated


class SlowScrapes(LoopbackServer):
    """An HTTP proxy to the exporter that delays its answers by PATTERN."""

    def __init__(self, upstream: Callable[[], str]) -> None:
        self.upstream = upstream
        self.count = 0
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def _delay(self) -> float:
        with self._lock:
            n, self.count = self.count, self.count + 1
        return SLOW if PATTERN[n % len(PATTERN)] == "s" else 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # The exporter's state as of the scrape's start, delivered late: the
                # samples carry the start's timestamp and are stored at the end.
                with urllib.request.urlopen(f"{proxy.upstream()}{self.path}", timeout=2) as r:
                    body, kind = r.read(), r.headers["Content-Type"]
                time.sleep(proxy._delay())  # the slow scrape under test, not a wait
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class Live:
    def __init__(self, stack: Stack, proxy: SlowScrapes) -> None:
        self.stack = stack
        self.proxy = proxy
        self.prometheus = stack.components["prometheus"].url

    def query(self, promql: str) -> list[dict[str, Any]]:
        args = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/query?{args}", timeout=5) as r:
            return list(json.load(r)["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/alerts", timeout=5) as r:
            found = json.load(r)["data"]["alerts"]
        return [a for a in found if a["labels"]["alertname"] == profiles.DOWN_ALERT]

    def failing(self, region: str) -> float | None:
        rows = self.query(f'ddb:vantage_probe_failing_seconds:min{{region="{region}"}}')
        return float(rows[0]["value"][1]) if rows else None


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    stack = Stack(tmp_path, options={"profile": "fast"})
    with SlowScrapes(lambda: stack.components["exporter"].url) as proxy:
        stack.options = {**stack.options, "exporter_url": proxy.url}
        try:
            start(stack, plan(["exporter", "prometheus"]))
            yield Live(stack, proxy)
        finally:
            stack.close()


def test_blips_of_the_window_never_fire_and_an_outage_fires_within_the_bound(live: Live) -> None:
    wait_until(
        lambda: live.failing(PRIMARY) == 0 and len(live.query("ddb:region_healthy:bool == 1")) == 2,
        60,
        interval=0.2,
        message="both regions healthy in Prometheus",
    )
    began = time.monotonic()

    # Blips as long as the promise allows: a black hole of exactly the window.
    for _ in range(2):
        chaos(live.stack, {"region": PRIMARY, "op": "pause"})
        time.sleep(PROFILE.immunity())  # the outage itself, not a synchronisation
        chaos(live.stack, {"region": PRIMARY, "op": "resume"})
        wait_until(lambda: live.failing(PRIMARY) == 0, 30, interval=0.2, message="recovery seen")
    blips = time.monotonic() - began
    fired = live.query(f'max_over_time(ALERTS{{alertname="{profiles.DOWN_ALERT}"}}[{blips:.0f}s])')
    assert fired == []
    # The proxy did make scrapes slow, and Prometheus kept them (none timed out).
    slowest = live.query(
        f'max_over_time(scrape_duration_seconds{{job="ddb_exporter"}}[{blips:.0f}s])'
    )
    assert float(slowest[0]["value"][1]) >= SLOW
    up = live.query(f'min_over_time(up{{job="ddb_exporter"}}[{blips:.0f}s])')
    assert float(up[0]["value"][1]) == 1

    # A lasting outage: firing within the bound, by Prometheus's own evaluation time.
    onset = time.time()
    chaos(live.stack, {"region": PRIMARY, "op": "pause"})
    [alert] = wait_until(
        lambda: [a for a in live.alerts() if a["state"] == "firing"],
        30,
        interval=0.1,
        message="DynamoDBRegionDown firing",
    )
    assert alert["labels"]["region"] == PRIMARY
    active = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00")).timestamp()
    detected = active - onset
    print(f"\nslow-scrape live: blips {blips:.1f}s, onset->firing {detected:.2f}s")
    assert PROFILE.window <= detected <= PROFILE.detection_bound()
