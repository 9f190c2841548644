"""POST /webhook refuses each kind of bad input: its status, a JSON error, no state change."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from responder.app import create_app
from responder.web.common import SERVICE
from tests.responder.weblib import TOKEN, auth, config_at, payload, write_config

LIMIT = 2048
BAD_PAYLOADS = sorted((Path(__file__).parent / "testdata" / "bad").glob("*.json"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The app over a real SQLite store; its regions refuse connections (never reached here)."""
    config = config_at(write_config(tmp_path, max_body_bytes=LIMIT))
    yield create_app(config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def snapshot(app: Flask) -> tuple[Any, int]:
    """Everything a request could have changed: the history and the state version."""
    store = app.extensions[SERVICE].store
    return store.history(500), store.state().version


JSON = "application/json"
GOOD = json.dumps(payload()).encode()


def _post(client: FlaskClient, **kwargs: Any) -> Any:
    return client.post("/webhook", **kwargs)


CASES: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    ("no token", {"data": GOOD, "content_type": JSON}, 401, "missing bearer token", None),
    (
        "bad token",
        {"data": GOOD, "content_type": JSON, "headers": auth(TOKEN + "x")},
        401,
        "invalid bearer token",
        None,
    ),
    (
        "basic auth not base64",
        {"data": GOOD, "content_type": JSON, "headers": {"Authorization": f"Basic {TOKEN}"}},
        401,
        "Basic credentials are not valid base64 UTF-8",
        None,
    ),
    (
        "text body",
        {"data": GOOD, "content_type": "text/plain", "headers": auth()},
        415,
        "must be application/json, got text/plain",
        None,
    ),
    (
        "no content type",
        {"data": GOOD, "headers": auth()},
        415,
        "must be application/json",
        None,
    ),
    (
        "oversized by Content-Length",
        {"data": b" " * (LIMIT + 1), "content_type": JSON, "headers": auth()},
        413,
        f"body of {LIMIT + 1} bytes exceeds the limit of {LIMIT} bytes",
        None,
    ),
    (
        "not JSON",
        {"data": b"{nope", "content_type": JSON, "headers": auth()},
        400,
        "not valid JSON",
        None,
    ),
    (
        "not UTF-8",
        {"data": b'{"a": "\xff"}', "content_type": JSON, "headers": auth()},
        400,
        "UTF-8",
        None,
    ),
    (
        "JSON list",
        {"data": b"[]", "content_type": JSON, "headers": auth()},
        400,
        "must be an object",
        "",
    ),
    (
        "version 3",
        {"json": {**payload(), "version": "3"}, "headers": auth()},
        400,
        "unsupported version '3'",
        "version",
    ),
    (
        "alerts missing",
        {"json": {k: v for k, v in payload().items() if k != "alerts"}, "headers": auth()},
        400,
        "alerts: required field is missing",
        "alerts",
    ),
    (
        "bad timestamp",
        {"json": payload({**payload()["alerts"][0], "startsAt": "yesterday"}), "headers": auth()},
        400,
        "not an RFC 3339 timestamp",
        "alerts[0].startsAt",
    ),
    (
        "no alertname",
        {
            "json": payload({**payload()["alerts"][0], "labels": {"region": "us-east-1"}}),
            "headers": auth(),
        },
        400,
        "required label is missing",
        "alerts[0].labels.alertname",
    ),
]


@pytest.mark.parametrize(
    ("name", "request_kwargs", "status", "message", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    name: str,
    request_kwargs: dict[str, Any],
    status: int,
    message: str,
    field: str | None,
) -> None:
    before = snapshot(app)
    answer = _post(client, **request_kwargs)
    assert answer.status_code == status, answer.get_data(as_text=True)
    body = answer.get_json()
    assert message in body["error"]
    if field is not None:
        assert body["field"] == field
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in answer.get_data(as_text=True)
    assert snapshot(app) == before


def test_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    app: Flask, client: FlaskClient
) -> None:
    before = snapshot(app)
    # Endless in principle: a chunked body has no Content-Length to check up front.
    stream = io.BytesIO(b"[" + b"1," * (LIMIT * 50) + b"1]")
    answer = client.post(
        "/webhook",
        input_stream=stream,
        content_type=JSON,
        headers={**auth(), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert answer.status_code == 413
    assert f"exceeds the limit of {LIMIT} bytes" in answer.get_json()["error"]
    assert stream.tell() <= LIMIT + 1
    assert snapshot(app) == before


@pytest.mark.parametrize("path", BAD_PAYLOADS, ids=[p.stem for p in BAD_PAYLOADS])
def test_each_malformed_payload_names_its_field(
    app: Flask, client: FlaskClient, path: Path
) -> None:
    before = snapshot(app)
    answer = client.post("/webhook", data=path.read_bytes(), content_type=JSON, headers=auth())
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["field"] and body["error"].startswith(body["field"])
    assert snapshot(app) == before


def test_refusals_are_counted_by_code(app: Flask, client: FlaskClient) -> None:
    client.post("/webhook", data=GOOD, content_type=JSON)
    client.post("/webhook", data=GOOD, content_type="text/plain", headers=auth())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'responder_webhook_requests_total{code="401"} 1.0' in text
    assert 'responder_webhook_requests_total{code="415"} 1.0' in text
    assert 'responder_webhook_requests_total{code="202"} 0.0' in text


def test_unknown_region_is_a_valid_payload_recorded_as_ignored(
    app: Flask, client: FlaskClient
) -> None:
    from tests.responder.weblib import alert

    answer = client.post(
        "/webhook", json=payload(alert(region="ap-south-1", fingerprint="ff00")), headers=auth()
    )
    assert answer.status_code == 202
    (decision,) = answer.get_json()["decisions"]
    assert decision["kind"] == "ignored"
    assert decision["reason"].startswith("unknown region ap-south-1")
    history = app.extensions[SERVICE].store.history()
    assert history["transitions"] == []
    assert [d["reason"] for d in history["decisions"]] == [decision["reason"]]
