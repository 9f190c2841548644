"""What leaves the process: secrets in every spelling, links only http(s), no store errors."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from flask import Flask, render_template_string

from responder.actions.registry import build
from responder.app import create_app, runner_of
from responder.secrets import REDACTED, Secrets, Token
from tests.responder.fakes import always_ready
from tests.responder.weblib import (
    OPERATOR,
    VIEWER,
    alert,
    auth,
    config_at,
    payload,
    write_config,
)

QUOTED = "quote\"and'apostrophe<&>-secret-7f3a"
DB_PASSWORD = "db-password-only-the-command-knows"


@pytest.mark.parametrize(
    "template",
    [
        "{{ v }}",  # Jinja's escaping: &#34; and &#39;
        "{{ v | tojson }}",  # Flask's tojson: \u0027, \u003c, ...
        "{{ d | tojson }}",
        "{{ j }}",  # a JSON document shown as text on the page
        "<a title='{{ v }}'>x</a>",
    ],
)
def test_every_spelling_the_page_writes_is_redacted(template: str) -> None:
    secrets = Secrets([Token("viewer", "viewer", QUOTED)])
    with Flask(__name__).app_context():
        page = render_template_string(template, v=QUOTED, d={"k": QUOTED}, j=json.dumps(QUOTED))
    assert REDACTED in secrets.redact(page)
    assert "secret-7f3a" not in secrets.redact(page)


def test_a_secret_with_quotes_stays_hidden_on_the_page(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "viewer-token").write_text(QUOTED + "\n")
    app = create_app(config_at(config), readiness=always_ready, actions=[])
    try:
        client = app.test_client()
        reason = f"pasted by mistake: {QUOTED}"
        answer = client.post("/api/v1/freeze", json={"reason": reason}, headers=auth(OPERATOR))
        assert answer.status_code == 200
        page = client.get("/", headers=auth(QUOTED)).get_data(as_text=True)
        assert f"pasted by mistake: {REDACTED}" in page
        assert "secret-7f3a" not in page
    finally:
        runner_of(app).stop()


@pytest.fixture
def passing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A responder whose command is handed a password the config names nowhere else."""
    monkeypatch.setenv("DB_PASSWORD", DB_PASSWORD)
    script = 'echo "connecting with $DB_PASSWORD" >&2; exit 3'
    command = {"name": "notify", "type": "command", "command": ["sh", "-c", script],
               "pass_env": ["DB_PASSWORD"]}  # fmt: skip
    config = config_at(write_config(tmp_path, actions=[command]))
    return create_app(config, actions=build(config), readiness=always_ready)


def test_what_pass_env_hands_a_command_is_redacted(
    passing: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = passing.test_client()
    try:
        answer = client.post("/api/v1/failover", json={"to": "eu-west-1"}, headers=auth(OPERATOR))
        assert answer.status_code == 202
        with caplog.at_level(logging.INFO):
            runner_of(passing).run_now()
    finally:
        runner_of(passing).stop()
    status = client.get("/api/v1/status", headers=auth(VIEWER)).get_json()
    assert f"connecting with {REDACTED}" in status["actions"]["notify"]["error"]
    outgoing = [
        json.dumps(status),
        client.get("/", headers=auth(VIEWER)).get_data(as_text=True),
        "\n".join(logging.Formatter().format(r) for r in caplog.records),
        (tmp_path / "state" / "state.db").read_bytes().decode("utf-8", "replace"),
    ]
    for text in outgoing:
        assert DB_PASSWORD not in text


def test_links_a_webhook_brings_reach_the_page_only_when_http_or_https(tmp_path: Path) -> None:
    app = create_app(config_at(write_config(tmp_path)), readiness=always_ready, actions=[])
    try:
        client = app.test_client()
        down = alert()
        down["generatorURL"] = "javascript:alert(document.cookie)"
        down["annotations"]["runbook_url"] = "data:text/html,<script>alert(1)</script>"
        body = {**payload(down), "externalURL": "javascript:alert(2)"}
        answer = client.post("/webhook", json=body, headers=auth())
        transition = answer.get_json()["decisions"][0]["transition_id"]
        page = client.get(f"/transitions/{transition}", headers=auth(VIEWER))
        report = client.get(f"/api/v1/transitions/{transition}/report", headers=auth(VIEWER))
    finally:
        runner_of(app).stop()
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Runbook" in html
    assert not re.search(r'href="(?!https?://|/)', html), "a link that is not http(s)"
    links = report.get_json()["links"]
    assert (links["alert_sources"], links["alertmanager"]) == ([], None)
    assert links["runbook"].startswith("https://")
