"""What a practice round asks Alertmanager and Prometheus, against a local HTTP server that
checks each request is what those APIs take (the live stack's e2e test uses the real ones)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from responder.intake import practice_sources
from responder.intake.practice_sources import alertmanager_firing, matchers, prometheus_check

ALERTS = [
    {
        "labels": {"alertname": "DynamoDBRegionDown", "region": "us-east-1"},
        "annotations": {"summary": "down"},
        "startsAt": "2026-12-06T21:00:00.123Z",
        "endsAt": "2026-12-06T21:04:00Z",
        "updatedAt": "2026-12-06T21:01:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "0a1b2c3d4e5f6789",
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
        "receivers": [{"name": "responder"}],
    },
    {"labels": {"alertname": "HighErrorRate"}},
]
VECTORS = {
    "up == 1": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
    "up == 0": {"resultType": "vector", "result": []},
    "zero": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0"]}]},
    "scalar(1)": {"resultType": "scalar", "result": [1, "1"]},
}


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, list[str]]] = []
    alerts: list[dict[str, Any]] = ALERTS

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        Handler.seen.append(query)
        body: Any
        if url.path == "/api/v2/alerts":
            assert query["active"] == ["true"] and query["silenced"] == ["false"]
            assert query["inhibited"] == ["false"]
            assert all("=" in f and not f.startswith("{") for f in query["filter"])
            body = Handler.alerts
        elif url.path == "/api/v1/query" and query.get("query", [""])[0] in VECTORS:
            body = {"status": "success", "data": VECTORS[query["query"][0]]}
        else:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"status":"error"}')
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen, Handler.alerts = [], ALERTS
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_matchers() -> None:
    assert matchers('severity="critical"') == ['severity="critical"']
    assert matchers('{alertname="X", region=~"eu-.*"}') == ['alertname="X"', 'region=~"eu-.*"']
    assert matchers('{a="x,y",b!="z\\"w,"}') == ['a="x,y"', 'b!="z\\"w,"']


def test_alertmanager_firing_sends_each_filter_as_matchers(server: str) -> None:
    found = alertmanager_firing(server, ['{alertname="DynamoDBRegionDown",region="us-east-1"}'])
    assert found == ["DynamoDBRegionDown{region=us-east-1}", "HighErrorRate"]
    assert Handler.seen[0]["filter"] == ['alertname="DynamoDBRegionDown"', 'region="us-east-1"']


def test_alertmanager_alerts_are_whole_alerts_as_a_notification_carries_them(server: str) -> None:
    """The hand-over of a real outage: Alertmanager's API shape read as a webhook alert."""
    Handler.alerts = [ALERTS[0], ALERTS[0]]  # one alert, matched by two filters
    filters = ['alertname="DynamoDBRegionDown"', 'region="us-east-1"']
    (alert,) = practice_sources.alertmanager_alerts(server, filters)
    assert (alert.status, alert.region, alert.fingerprint) == (
        "firing",
        "us-east-1",
        ALERTS[0]["fingerprint"],
    )
    assert alert.key == "0a1b2c3d4e5f6789@2026-12-06T21:00:00.123Z"
    assert alert.annotations == {"summary": "down"} and alert.generator_url.endswith("/graph")


def test_alertmanager_alerts_refuses_an_alert_a_notification_could_not_carry(server: str) -> None:
    with pytest.raises(ValueError, match=r"alerts\[1\]\.startsAt"):
        practice_sources.alertmanager_alerts(server, ['alertname="HighErrorRate"'])


def test_alertmanager_unreachable_raises() -> None:
    with pytest.raises(OSError):
        alertmanager_firing("http://127.0.0.1:9", ['a="b"'])


def test_prometheus_check(server: str) -> None:
    assert prometheus_check(server, "up == 1") is True
    assert prometheus_check(server, "up == 0") is False  # no sample
    assert prometheus_check(server, "zero") is False
    assert prometheus_check(server, "scalar(1)") is True
    assert prometheus_check(server, "bad query") is None  # 400
    assert prometheus_check("http://127.0.0.1:9", "up == 1") is None


def test_sources_without_urls() -> None:
    made = practice_sources.sources(practice_sources.Practice())
    assert made.firing(['a="b"']) == [] and made.check("anything") is True
    assert made.alerts(['a="b"']) == []
