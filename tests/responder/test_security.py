"""What an attacker would try: leaking secrets, borrowing a role, hostile bodies, loose files."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from responder.actions.registry import build
from responder.app import create_app, runner_of
from tests.responder.fakes import always_ready
from tests.responder.weblib import (
    OPERATOR,
    TOKEN,
    VIEWER,
    auth,
    config_at,
    payload,
    write_config,
)

DO_TOKEN = "dop_v1_do-token-that-must-not-leak-0123456789"
AWS_SECRET = "aws-secret-access-key-that-must-not-leak"
PASSED = "DDB_TEST_PASSED_SECRET"  # the one variable the command's config lets through
SECRET_VALUES = (TOKEN, OPERATOR, VIEWER, DO_TOKEN, AWS_SECRET)


@pytest.fixture
def leaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A responder whose command prints its whole environment, a passed secret, and fails."""
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", DO_TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv(PASSED, OPERATOR)  # a configured secret, handed over on purpose
    script = f'env >&2; echo "passed=${PASSED}" >&2; echo "$DIGITALOCEAN_TOKEN" >&2; exit 3'
    command = {"name": "notify", "type": "command", "command": ["sh", "-c", script],
               "pass_env": [PASSED]}  # fmt: skip
    # A load balancer in the config makes the DigitalOcean token a configured secret.
    glb = {"name": "glb", "type": "do_global_load_balancer", "load_balancer_id": "x",
           "values": {"us-east-1": "nyc3", "eu-west-1": "ams3"}}  # fmt: skip
    extra = {"digitalocean": {"token": {"env": "DIGITALOCEAN_TOKEN"}}}
    config = config_at(write_config(tmp_path, actions=[command, glb], extra=extra))
    app = create_app(config, actions=build(config)[:1], readiness=always_ready)
    yield app
    runner_of(app).stop()


def test_no_secret_leaves_the_process(
    leaky: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = leaky.test_client()
    answer = client.post("/api/v1/failover", json={"to": "eu-west-1"}, headers=auth(OPERATOR))
    assert answer.status_code == 202
    with caplog.at_level(logging.INFO):
        runner_of(leaky).run_now()
    status = client.get("/api/v1/status", headers=auth(VIEWER)).get_json()
    error = status["actions"]["notify"]["error"]
    assert "exited with status 3" in error
    # The child saw PATH, LANG, HOME, the transition and what its config passed; none of ours.
    dumped = {line.split("=", 1)[0] for line in error.split(": ", 2)[2].splitlines() if "=" in line}
    assert dumped - {"PWD", "passed"} == {
        "PATH", "LANG", "HOME", PASSED, "DDB_FAILOVER_TRANSITION_ID",
        "DDB_FAILOVER_TRANSITION_KIND", "DDB_FAILOVER_FROM_REGION", "DDB_FAILOVER_TO_REGION",
        "DDB_FAILOVER_DRY_RUN",
    }  # fmt: skip
    assert "passed=[redacted]" in error
    outgoing = [
        json.dumps(status),
        client.get("/api/v1/history", headers=auth(VIEWER)).get_data(as_text=True),
        client.get("/", headers=auth(VIEWER)).get_data(as_text=True),
        client.get("/metrics").get_data(as_text=True),
        "\n".join(logging.Formatter().format(r) for r in caplog.records),
        (tmp_path / "state" / "state.db").read_bytes().decode("utf-8", "replace"),
    ]
    for text in outgoing:
        for secret in SECRET_VALUES:
            assert secret not in text


ENDPOINTS = [
    ("POST", "/webhook", "webhook"),
    ("GET", "/api/v1/status", "read"),
    ("GET", "/api/v1/history", "read"),
    ("GET", "/api/v1/transitions/t-none", "read"),
    ("GET", "/api/v1/plan", "read"),
    ("GET", "/", "read"),
    ("POST", "/api/v1/freeze", "operate"),
    ("POST", "/api/v1/unfreeze", "operate"),
    ("POST", "/api/v1/failover", "operate"),
    ("POST", "/api/v1/retry", "operate"),
    ("POST", "/api/v1/skip", "operate"),
    ("POST", "/api/v1/abort", "operate"),
]
ALLOWED = {
    TOKEN: {"webhook"},
    VIEWER: {"read"},
    OPERATOR: {"read", "operate"},
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    made = create_app(config_at(write_config(tmp_path)), readiness=always_ready, actions=[])
    yield made
    runner_of(made).stop()


@pytest.mark.parametrize(("method", "path", "permission"), ENDPOINTS)
def test_each_role_does_only_what_it_may(
    app: Flask, method: str, path: str, permission: str
) -> None:
    client = app.test_client()
    body = payload() if path == "/webhook" else {"to": "eu-west-1", "reason": "r", "action": "x"}
    anonymous = client.open(path, method=method, json=body)
    assert anonymous.status_code == 401
    scheme = "Basic" if path == "/" else "Bearer"  # a browser is asked for Basic credentials
    assert anonymous.headers["WWW-Authenticate"].startswith(f'{scheme} realm="ddb-failover"')
    for token, grants in ALLOWED.items():
        answer = client.open(path, method=method, json=body, headers=auth(token))
        if permission in grants:
            assert answer.status_code not in (401, 403), (token, answer.get_json())
        else:
            assert answer.status_code == 403, (token, path)
            assert "this needs" in answer.get_json()["error"]


def test_the_page_takes_the_token_as_a_basic_password(app: Flask) -> None:
    credentials = base64.b64encode(f"anyone:{VIEWER}".encode()).decode()
    page = app.test_client().get("/", headers={"Authorization": f"Basic {credentials}"})
    assert page.status_code == 200 and "Active region" in page.get_data(as_text=True)


def test_public_endpoints_are_configurable(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text().replace("auth:\n", "auth:\n    public: [status, metrics]\n", 1)
    path.write_text(text)
    made = create_app(config_at(path), readiness=always_ready, actions=[])
    client = made.test_client()
    assert client.get("/api/v1/status").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 401  # no longer listed: needs a token
    assert client.get("/api/v1/history").status_code == 401


def test_the_history_records_the_token_name_not_what_the_client_claims(app: Flask) -> None:
    client = app.test_client()
    body = {"reason": "maintenance", "by": "ceo@example.com"}
    answer = client.post("/api/v1/freeze", json=body, headers=auth(OPERATOR))
    assert answer.get_json()["freeze"]["by"] == "operator"


def test_browser_hardening_headers(app: Flask) -> None:
    client = app.test_client()
    for response in (
        client.get("/", headers=auth(VIEWER)),
        client.get("/api/v1/status", headers=auth(VIEWER)),
        client.get("/metrics"),
    ):
        csp = response.headers["Content-Security-Policy"]
        # The page's one script and its forms are its own: nothing inline, nothing elsewhere.
        assert "default-src 'none'" in csp and "script-src 'self';" in csp
        assert "form-action 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    page = client.get("/", headers=auth(VIEWER)).get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/static/page.js" defer>'], scripts
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handler either
    css = client.get("/static/status.css")
    assert css.status_code == 200 and ".active" in css.get_data(as_text=True)


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        (deep(33), 400, "a" + ".a" * 32, "nests deeper than 32 levels"),
        (deep(5000), 400, None, "nests deeper than 32 levels"),
        ('{"version": "4", "alerts": [], "x": "\\ud800"}', 400, "x", "lone surrogate"),
    ],
)
def test_hostile_json_is_a_400_naming_the_field(
    app: Flask, body: str, status: int, field: str | None, message: str
) -> None:
    answer = app.test_client().post(
        "/webhook", data=body, content_type="application/json", headers=auth()
    )
    assert answer.status_code == status
    assert message in answer.get_json()["error"]
    assert answer.get_json().get("field") == field


def test_a_lone_surrogate_in_a_label_is_refused(app: Flask) -> None:
    body = payload()
    body["alerts"][0]["labels"]["region"] = "us-east-1\ud800"
    raw = json.dumps(body)  # json escapes the surrogate as \ud800
    answer = app.test_client().post(
        "/webhook", data=raw, content_type="application/json", headers=auth()
    )
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "alerts[0].labels.region"


@pytest.mark.parametrize(
    ("encoding", "error"),
    [
        ("utf-16", "body is not UTF-8 text"),
        ("utf-32", "body is not UTF-8 text"),
        ("utf-16-le", "body is not valid JSON"),  # its NULs are UTF-8, its syntax is not
        ("utf-8-sig", "body is not valid JSON: Unexpected UTF-8 BOM"),
    ],
)
def test_a_body_not_in_plain_utf8_is_refused_whatever_it_hides(
    app: Flask, encoding: str, error: str
) -> None:
    # JSON between systems is UTF-8 (RFC 8259); in UTF-16 a \ud800 escape is not ASCII bytes.
    body = payload()
    body["alerts"][0]["labels"]["region"] = "us-east-1\ud800"
    raw = json.dumps(body).encode(encoding)
    client = app.test_client()
    before = client.get("/api/v1/history", headers=auth(VIEWER)).get_json()
    answer = client.post("/webhook", data=raw, content_type="application/json", headers=auth())
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(error)
    assert client.get("/api/v1/history", headers=auth(VIEWER)).get_json() == before


@pytest.mark.parametrize("limit", ["²", "٣", "1e3", "-1", "0", "501", " 5", "x"])
def test_odd_digits_in_limit_are_400(app: Flask, limit: str) -> None:
    answer = app.test_client().get(f"/api/v1/history?limit={limit}", headers=auth(VIEWER))
    assert answer.status_code == 400 and answer.get_json()["field"] == "limit"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda b: b.update(alerts=b["alerts"] * 501), 413, "alerts"),
        (lambda b: b["alerts"][0]["labels"].update(huge="x" * 1025), 400, "alerts[0].labels.huge"),
        (
            lambda b: b["alerts"][0]["labels"].update({f"l{i}": "v" for i in range(64)}),
            400,
            "alerts[0].labels",
        ),
        (
            lambda b: b["alerts"][0]["annotations"].update(note="x" * 16385),
            400,
            "alerts[0].annotations.note",
        ),
    ],
)
def test_oversized_notifications_are_refused_and_change_nothing(
    app: Flask, change: Any, status: int, field: str
) -> None:
    body = payload()
    change(body)
    client = app.test_client()
    answer = client.post("/webhook", json=body, headers=auth())
    assert (answer.status_code, answer.get_json()["field"]) == (status, field)
    history = client.get("/api/v1/history", headers=auth(VIEWER)).get_json()
    assert history == {"transitions": [], "decisions": []}


def test_state_and_written_files_are_not_world_readable(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    client.post("/api/v1/freeze", json={"reason": "x"}, headers=auth(OPERATOR))
    state = tmp_path / "state"
    files = [p for p in state.iterdir() if p.name.startswith("state.db")]
    assert {p.name for p in files} >= {"state.db", "state.db-wal"}
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path


def test_a_new_env_file_gets_no_world_read(tmp_path: Path) -> None:
    from responder.actions.base import Transition, reconcile
    from responder.actions.env_file import EnvFile

    config = config_at(
        write_config(tmp_path, actions=[{"name": "e", "type": "env_file", "path": "x.env"}])
    )
    action = EnvFile(config.responder.actions[0].model_copy(update={"path": tmp_path / "x.env"}),
                     tmp_path / "records" / "e.json")  # fmt: skip
    reconcile(action, Transition("t", "failover", "us-east-1", "eu-west-1"))
    assert stat.S_IMODE(os.stat(tmp_path / "x.env").st_mode) == 0o640
