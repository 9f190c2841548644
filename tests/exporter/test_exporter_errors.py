"""Throttling and access denied, end to end through botocore, from a local DynamoDB stand-in.

moto cannot throttle or deny, so these two regions are a local HTTP server
speaking DynamoDB's JSON error shape; it checks each request is a signed
DynamoDB call and counts them, which also shows there are no hidden retries.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ddb_failover.config import parse
from exporter.app import Exporter
from tests.exporter.exporterlib import CANARY, CREDENTIALS, TABLE

ERRORS = {
    "us-east-1": ("ProvisionedThroughputExceededException", "throttled"),
    "eu-west-1": ("UnrecognizedClientException", "access_denied"),
}


class StandIn(ThreadingHTTPServer):
    """Answers every DynamoDB call with the error configured for the path's region."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        self.calls: Counter[tuple[str, str]] = Counter()
        self.problems: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_POST(self) -> None:
        region = self.path.strip("/")
        target = self.headers.get("X-Amz-Target", "")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not target.startswith("DynamoDB_20120810."):
            self.server.problems.append(f"bad X-Amz-Target {target!r}")
        if f"/{region}/dynamodb/aws4_request" not in self.headers.get("Authorization", ""):
            self.server.problems.append(f"request for {region} not signed for it")
        if body.get("TableName", TABLE) != TABLE and TABLE not in body.get("RequestItems", {}):
            self.server.problems.append(f"unexpected table in {body}")
        self.server.calls[(region, target.split(".")[-1])] += 1
        code = ERRORS[region][0]
        payload = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "no"}
        )
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_throttled_and_access_denied_each_get_their_reason(
    stand_in: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    port = stand_in.server_address[1]
    config = parse(
        {
            "tables": [TABLE],
            "canary": CANARY,
            "regions": [
                {"name": name, "endpoint_url": f"http://127.0.0.1:{port}/{name}"} for name in ERRORS
            ],
            "exporter": {"vantage": "test", "interval_seconds": 1, "timeout_seconds": 1},
        }
    )
    registry = CollectorRegistry()
    exporter = Exporter(config, registry, CREDENTIALS, process_metrics=False)
    try:
        outcomes = exporter.scheduler.run_round()
    finally:
        exporter.close()

    assert stand_in.problems == []
    for outcome in outcomes:
        assert outcome.reason == ERRORS[outcome.region][1], outcome
    # One request per probe: botocore's retries would have made three.
    assert stand_in.calls == Counter(
        {(r, op): 1 for r in ERRORS for op in ("GetItem", "PutItem", "BatchGetItem")}
    )
    for region, (code, reason) in ERRORS.items():
        for op in ("read", "write"):
            labels = {"region": region, "table": TABLE, "vantage": "test", "operation": op}
            name = "dynamodb_probe_failures_total"
            assert registry.get_sample_value(name, {**labels, "reason": reason}) == 1
            assert registry.get_sample_value("dynamodb_probe_success", labels) == 0
        assert any(
            f"region={region}" in r.getMessage()
            and f"reason={reason}" in r.getMessage()
            and code in r.getMessage()
            for r in caplog.records
        )
