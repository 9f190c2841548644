"""Region cards (web/health.py) from samples, and the one query (web/promql.py) against a
local HTTP server that checks what it is asked, answering as Prometheus's API does."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from responder.web import health, promql
from responder.web.promql import Sample
from tests.alerting.loopback import LoopbackServer

EAST, WEST, WITNESS = "us-east-1", "eu-west-1", "us-west-2"


def sample(name: str, value: float, **labels: str) -> Sample:
    return Sample({"__name__": name, **labels}, value)


SAMPLES = [
    sample(health.SUCCESS, 1, region=EAST, vantage="vm-1", operation="read", table="a"),
    sample(health.SUCCESS, 1, region=EAST, vantage="vm-1", operation="write", table="a"),
    sample(health.SUCCESS, 0, region=EAST, vantage="vm-2", operation="write", table="a"),
    sample(health.SUCCESS, 1, region=EAST, vantage="vm-2", operation="write", table="b"),
    sample(health.SUCCESS, 1, region=WEST, vantage="vm-1", operation="read", table="a"),
    sample(health.LAST_SUCCESS, 1000.0, region=EAST, vantage="vm-1", operation="read"),
    sample(health.LAST_SUCCESS, 1005.0, region=EAST, vantage="vm-2", operation="write"),
    sample(health.LAG, 2.5, region=WEST, source_region=EAST, vantage="vm-1"),
    sample(health.LAG, 0.7, region=WEST, source_region=EAST, vantage="vm-2"),
    sample(health.ALERTS, 1, alertname="DynamoDBRegionDown", region=EAST, alertstate="firing"),
    sample(health.ALERTS, 1, alertname="DynamoDBRegionDown", region=EAST, alertstate="firing"),
    sample(health.TABLE_INFO, 1, table="a", consistency="strong", witness_region=WITNESS),
]
PLAN = {
    "regions": {
        WEST: {
            "ready": False,
            "actions": [
                {"action": "www", "problems": [{"severity": "error", "message": "HTTP 401"}]},
                {"action": "lb", "problems": [{"severity": "warning", "message": "TTL high"}]},
            ],
        }
    }
}


def test_cards_from_the_exporters_series() -> None:
    east, west, witness = health.cards((EAST, WEST), EAST, WEST, PLAN, SAMPLES)
    assert (east.region, east.role, east.primary) == (EAST, "standby", True)
    assert (west.role, west.primary, witness.role) == ("active", False, "witness")
    assert [(p.vantage, p.read, p.write) for p in east.probes] == [
        ("vm-1", True, True),
        ("vm-2", None, False),  # one table failing is the vantage failing
    ]
    assert east.healthy is False and west.healthy is True
    assert east.last_success == 1005.0 and east.lag_seconds is None
    assert west.lag_seconds == 2.5  # the worst the vantage points saw
    assert east.alerts == ["DynamoDBRegionDown"] and west.alerts == []
    assert west.ready is False and west.plan_problems == ["www: HTTP 401"]
    assert east.ready is None and witness.no_data is None and witness.probes == []


def test_a_region_without_series_and_prometheus_without_answer_say_why() -> None:
    (east, west) = health.cards((EAST, WEST), EAST, EAST, {}, SAMPLES[4:5])
    assert east.no_data == f"no data: no exporter series for {EAST} in Prometheus"
    assert west.no_data is None
    down = health.cards((EAST, WEST), EAST, EAST, {}, None, "Prometheus answered HTTP 503")
    assert [c.no_data for c in down] == ["no data: Prometheus answered HTTP 503"] * 2
    unset = health.cards((EAST, WEST), EAST, EAST, {}, None)
    assert unset[0].no_data == "no data: responder.prometheus_url is not set"


class FakePrometheus(BaseHTTPRequestHandler):
    """GET /api/v1/query?query=EXPR only; answers what the test set."""

    answer: tuple[int, bytes] = (200, b"")
    asked: list[str] = []
    hang = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/api/v1/query" or list(query) != ["query"]:
            self.send_error(400, "not an instant query")
            return
        self.asked.append(query["query"][0])
        if self.hang.is_set():
            self.release.wait(5)  # what a hung Prometheus does: nothing, for longer than allowed
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    FakePrometheus.asked.clear()
    FakePrometheus.hang.clear()
    FakePrometheus.release.clear()
    with LoopbackServer(FakePrometheus) as server:
        yield server.url + "/"
        FakePrometheus.release.set()


def vector(*results: dict[str, Any]) -> bytes:
    data = {"resultType": "vector", "result": list(results)}
    return json.dumps({"status": "success", "data": data}).encode()


def test_the_query_reads_an_instant_vector(prometheus: str) -> None:
    FakePrometheus.answer = (200, vector({"metric": {"__name__": "up"}, "value": [1, "1"]}))
    assert promql.query(prometheus, health.EXPR) == [Sample({"__name__": "up"}, 1.0)]
    assert FakePrometheus.asked == [health.EXPR]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((503, b"{}"), "Prometheus answered HTTP 503"),
        ((200, b"<html>"), "Prometheus's answer is not an instant vector"),
        ((200, b'{"status": "success", "data": {"result": [{"metric": {}}]}}'), "not an instant"),
        ((200, b'{"status": "error", "error": "parse error"}'), "refused the query: parse error"),
    ],
)
def test_a_bad_answer_is_a_reason(prometheus: str, answer: tuple[int, bytes], reason: str) -> None:
    FakePrometheus.answer = answer
    with pytest.raises(promql.PromUnavailable, match=reason):
        promql.query(prometheus, "up")


def test_no_answer_in_time_and_nobody_listening_are_reasons(prometheus: str) -> None:
    FakePrometheus.hang.set()
    with pytest.raises(promql.PromUnavailable, match=r"did not answer within 0\.3 s"):
        promql.query(prometheus, "up", timeout=0.3)
    with pytest.raises(promql.PromUnavailable, match="Prometheus unreachable"):
        promql.query("http://127.0.0.1:9", "up")


def test_the_configured_witness_has_a_card_without_series() -> None:
    cards = health.cards((EAST, WEST), EAST, EAST, {}, [], witnesses=["ap-south-1"])
    assert [(c.region, c.role, c.no_data) for c in cards][2] == ("ap-south-1", "witness", None)
