"""What leaves the process: secrets in every spelling, links only http(s), no store errors."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient

from responder.actions.registry import build
from responder.app import create_app, runner_of
from responder.secrets import REDACTED, Secrets, Token
from responder.state.records import State
from responder.state.sqlite.store import SqliteStore
from responder.web.ops import NOT_READY, STORE_MAX_AGE_SECONDS
from sandbox.net import wait_until
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
SCRAPES = 50


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


def test_public_readyz_says_the_store_is_down_without_its_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(config_at(write_config(tmp_path)), readiness=always_ready, actions=[])
    try:
        client = app.test_client()
        assert client.get("/readyz").get_json() == {"status": "ok"}
        shutil.rmtree(tmp_path / "state")
        (tmp_path / "state").write_text("not a directory: the store's path breaks")
        with caplog.at_level(logging.WARNING):
            ready = client.get("/readyz")
    finally:
        runner_of(app).stop()
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "unavailable", "error": NOT_READY}
    assert str(tmp_path) not in ready.get_data(as_text=True)
    (logged,) = [r.getMessage() for r in caplog.records if "not_ready" in r.getMessage()]
    assert str(tmp_path / "state") in logged  # the operator finds the error in the log


class CountingStore(SqliteStore):
    """The real SQLite store, counting the reads /metrics makes (one state() each)."""

    reads = 0

    def state(self) -> State:
        self.reads += 1
        return super().state()


def test_metrics_read_the_store_at_most_once_per_bound(tmp_path: Path) -> None:
    config = config_at(write_config(tmp_path))
    store = CountingStore(tmp_path / "state" / "state.db", config.primary)
    app = create_app(config, store=store, readiness=always_ready, actions=[])
    client = app.test_client()
    try:
        started = time.monotonic()
        for _ in range(SCRAPES):
            assert client.get("/metrics").status_code == 200
        elapsed = time.monotonic() - started
        # One read, then at most one more per bound that passed while scraping.
        assert store.reads <= 1 + math.ceil(elapsed / STORE_MAX_AGE_SECONDS), (store.reads, elapsed)
        # Another worker's write (its own store handle on the same file) shows within the bound.
        other = SqliteStore(tmp_path / "state" / "state.db", config.primary)
        other.freeze("operator", "from another worker")
        changed = time.monotonic()
        wait_until(lambda: "responder_frozen 1.0" in _scrape(client), 30, 0.05, "frozen gauge")
        assert time.monotonic() - changed <= STORE_MAX_AGE_SECONDS + 0.5
    finally:
        runner_of(app).stop()


def _scrape(client: FlaskClient) -> str:
    return client.get("/metrics").get_data(as_text=True)
