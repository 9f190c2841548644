"""Generated requests against every endpoint: never a 500, and nothing changes when refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from responder.app import create_app, runner_of
from tests.responder.fakes import MemoryAction, always_ready
from tests.responder.weblib import OPERATOR, TOKEN, VIEWER, alert, config_at, payload, write_config

ENDPOINTS = [
    ("POST", "/webhook"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/history"),
    ("GET", "/api/v1/transitions/t-x"),
    ("GET", "/api/v1/plan"),
    ("POST", "/api/v1/failover"),
    ("POST", "/api/v1/freeze"),
    ("POST", "/api/v1/unfreeze"),
    ("POST", "/api/v1/retry"),
    ("POST", "/api/v1/skip"),
    ("POST", "/api/v1/abort"),
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
# Any character JSON can carry, lone surrogates included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["to", "reason", "action", "rollback", "force", "transition_id", "by", "version"]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Raw bytes, any JSON, an object with our field names, or a mutated notification."""
    kind = draw(st.sampled_from(["bytes", "json", "fields", "notification", "empty"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "empty":
        return b""
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "fields":
        keys = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=5))
        return json.dumps({k: draw(JSON_VALUES) for k in keys}).encode()
    body: dict[str, Any] = payload(alert(region=draw(st.sampled_from(["us-east-1", "eu-west-1"]))))
    where = draw(st.sampled_from(["version", "status", "alerts", "receiver", "truncatedAlerts"]))
    if draw(st.booleans()):
        body[where] = draw(JSON_VALUES)
    else:
        victim = body["alerts"][0]
        victim[draw(st.sampled_from(sorted(victim)))] = draw(JSON_VALUES)
    return json.dumps(body).encode()


VALID = [f"Bearer {TOKEN}", f"Bearer {VIEWER}", f"Bearer {OPERATOR}", f"bearer  {OPERATOR} "]
INVALID = [None, "", "Bearer", "Bearer nope-nope-nope-nope", "Basic !!!", "Digest x"]
# Mostly a valid token, so most requests get past authentication to the parsing behind it.
AUTHS = st.sampled_from(VALID) | st.sampled_from(VALID) | st.sampled_from(INVALID)
CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "text/plain", "application/json; charset=latin-1", "*/*"]
)
QUERIES = st.dictionaries(st.sampled_from(["limit", "to", "x"]), st.text(max_size=6), max_size=2)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    directory = tmp_path_factory.mktemp("fuzz")
    world: dict[str, Any] = {}
    actions = [MemoryAction("www", world), MemoryAction("lb", world)]
    made = create_app(config_at(write_config(directory)), actions=actions, readiness=always_ready)
    yield made
    runner_of(made).stop()


def snapshot(app: Flask) -> tuple[Any, Any]:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {VIEWER}"}
    status = client.get("/api/v1/status", headers=headers).get_json()
    return status, client.get("/api/v1/history?limit=500", headers=headers).get_json()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The review's findings, always tried on top of what is generated.
@example(b"", f"Bearer {VIEWER}", None, {"limit": "\u00b2"})
@example(b"", f"Bearer {VIEWER}", None, {"limit": "\u0663"})
@example(b'{"a":' * 5000 + b"1" + b"}" * 5000, f"Bearer {OPERATOR}", "application/json", {})
@example(b'{"reason": "\\ud800"}', f"Bearer {OPERATOR}", "application/json", {})
@example(json.dumps(payload()).replace("us-east-1", "\\udfff").encode(), f"Bearer {TOKEN}",
         "application/json", {})  # fmt: skip
@given(
    body=bodies(),
    authorization=AUTHS,
    content_type=CONTENT_TYPES,
    query=QUERIES,
)
def test_no_500_and_no_change_when_refused(
    app: Flask,
    endpoint: tuple[str, str],
    body: bytes,
    authorization: str | None,
    content_type: str | None,
    query: dict[str, str],
) -> None:
    method, path = endpoint
    headers = {"Authorization": authorization} if authorization is not None else {}
    before = snapshot(app)
    answer = app.test_client().open(
        path,
        method=method,
        data=body if method == "POST" else None,
        content_type=content_type,
        headers=headers,
        query_string=query,
    )
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert snapshot(app) == before, (path, answer.get_json())
        error = answer.get_json()
        assert isinstance(error, dict) and error["error"], "every refusal names its problem"
    runner_of(app).run_now()  # whatever was accepted runs, so later requests meet it too
