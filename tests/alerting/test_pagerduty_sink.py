"""The PagerDuty Events API v2 sink, as a real process, and its validation rules."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.net import free_port, port_open, wait_until
from sandbox.pagerduty import validate_event

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY01"


def trigger(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "group-1",
        "payload": {
            "summary": "DynamoDB posts is down in us-east-1",
            "source": "us-east-1",
            "severity": "critical",
            "custom_details": {"region": "us-east-1"},
        },
        "links": [{"href": "https://example.com/runbook", "text": "Runbook"}],
    }
    event.update(changes)
    return event


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    key_file, log = tmp_path / "routing-key", tmp_path / "events.jsonl"
    key_file.write_text(KEY + "\n")
    port = free_port()
    argv = [sys.executable, "-m", "sandbox.pagerduty", "--port", str(port),
            "--routing-key-file", str(key_file), "--log", str(log)]  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: port_open(port), 30, message="pagerduty sink listening")
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=10)


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/v2/enqueue", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def events(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/events", timeout=5) as response:
        return list(json.load(response)["events"])


def test_a_valid_trigger_is_accepted_recorded_and_listed(sink: tuple[str, Path]) -> None:
    url, log = sink
    code, body = post(url, json.dumps(trigger()).encode())
    assert (code, body["status"], body["dedup_key"]) == (202, "success", "group-1")
    [record] = events(url)
    assert record["event"]["payload"]["summary"] == "DynamoDB posts is down in us-east-1"
    assert "routing_key" not in record["event"]  # a secret: never recorded
    [line] = log.read_text().splitlines()
    assert json.loads(line)["dedup_key"] == "group-1"
    assert KEY not in log.read_text()


def test_resolve_and_acknowledge_need_only_a_dedup_key(sink: tuple[str, Path]) -> None:
    url, _ = sink
    for action in ("acknowledge", "resolve"):
        event = {"routing_key": KEY, "event_action": action, "dedup_key": "group-1"}
        assert post(url, json.dumps(event).encode())[0] == 202
    assert [e["event"]["event_action"] for e in events(url)] == ["acknowledge", "resolve"]


def test_a_trigger_without_dedup_key_gets_one(sink: tuple[str, Path]) -> None:
    url, _ = sink
    event = trigger()
    del event["dedup_key"]
    code, body = post(url, json.dumps(event).encode())
    assert code == 202 and body["dedup_key"]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger(routing_key="wrong"), "'routing_key' is missing or is not a valid"),
        (trigger(event_action="fire"), "'event_action' must be one of"),
        (trigger(payload={"source": "x", "severity": "critical"}), "'payload.summary' is required"),
        (trigger(payload={"summary": "s", "severity": "critical"}), "'payload.source' is required"),
        (trigger(payload={"summary": "s", "source": "x", "severity": "page"}),
         "'payload.severity' must be one of"),
        (trigger(payload={"summary": "s" * 1025, "source": "x", "severity": "info"}),
         "'payload.summary' is longer than 1024"),
        (trigger(payload=None), "'payload' is required for trigger events"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is required for resolve"),
        (trigger(dedup_key=""), "'dedup_key' must be a non-empty string"),
        (trigger(links=[{"text": "no href"}]), "'links' must be a list of objects"),
        ([trigger()], "the event must be a JSON object"),
    ],
)  # fmt: skip
def test_invalid_events_are_rejected_with_the_reason(
    sink: tuple[str, Path], event: Any, error: str
) -> None:
    url, _ = sink
    code, body = post(url, json.dumps(event).encode())
    assert code == 400
    assert body["status"] == "invalid event"
    assert any(e.startswith(error) for e in body["errors"]), body["errors"]
    assert events(url) == []


def test_non_json_bodies_are_rejected(sink: tuple[str, Path]) -> None:
    url, _ = sink
    assert post(url, b"{not json")[1]["errors"] == ["the body is not valid JSON"]
    code, body = post(url, json.dumps(trigger()).encode(), content_type="text/plain")
    assert (code, body["errors"]) == (400, ["Content-Type must be application/json"])


def test_every_problem_is_reported_at_once() -> None:
    errors = validate_event({"routing_key": "x", "event_action": "trigger", "payload": {}}, KEY)
    assert len(errors) == 4  # routing key, summary, source, severity
    assert validate_event(trigger(), KEY) == []
