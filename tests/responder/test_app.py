"""The responder app over a real SQLite store and real sandbox regions (Flask's test client)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from responder.app import create_app, runner_of
from responder.web.common import SERVICE
from tests.conftest import RegionFactory
from tests.responder.weblib import (
    OPERATOR,
    RFC3339_UTC,
    alert,
    auth,
    config_at,
    payload,
    put_heartbeat,
    viewing,
    write_config,
)

STATUS_KEYS = {"active_region", "desired_region", "phase", "frozen", "last_transition", "actions"}
TRANSITION_KEYS = {
    "id", "kind", "from_region", "to_region", "result", "started_at", "finished_at", "cause",
    "data_at_risk_seconds", "steps",
}  # fmt: skip
STEP_KEYS = {"action", "result", "before", "after", "error"}


def env_action(tmp_path: Path) -> dict[str, Any]:
    return {"name": "wp-env", "type": "env_file", "path": str(tmp_path / "wp.env")}


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Flask]:
    """An app whose regions refuse connections: every target fails readiness."""
    yield create_app(config_at(write_config(tmp_path, actions=[env_action(tmp_path)])))


@pytest.fixture
def online(tmp_path: Path, start_regions: RegionFactory) -> Iterator[Flask]:
    """An app over two sandbox regions; eu-west-1 holds a fresh us-east-1 heartbeat."""
    regions = start_regions()
    put_heartbeat(regions["eu-west-1"], "us-east-1")
    put_heartbeat(regions["us-east-1"], "eu-west-1")
    urls = {name: region.url for name, region in regions.items()}
    config = config_at(write_config(tmp_path, region_urls=urls, actions=[env_action(tmp_path)]))
    app = create_app(config)
    yield app
    runner_of(app).stop()


def metric(client: FlaskClient, series: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not exposed"
    return float(match.group(1))


def test_region_down_fails_over_and_the_reconciler_finishes_it(
    online: Flask, tmp_path: Path
) -> None:
    client = viewing(online)
    answer = client.post("/webhook", json=payload(), headers=auth())
    assert answer.status_code == 202
    (decision,) = answer.get_json()["decisions"]
    assert decision["kind"] == "failover"
    assert (decision["from_region"], decision["to_region"]) == ("us-east-1", "eu-west-1")
    assert decision["transition_id"].startswith("t-")
    assert decision["readiness"][0]["canary_ok"] is True
    status = client.get("/api/v1/status").get_json()
    assert status["phase"] == "failing_over" and status["desired_region"] == "eu-west-1"
    assert not (tmp_path / "wp.env").exists()  # the request itself changed nothing outside

    finished = runner_of(online).run_now()
    assert finished is not None and finished.result == "completed"
    assert (tmp_path / "wp.env").read_text() == "DYNAMODB_REGION=eu-west-1\n"

    status = client.get("/api/v1/status").get_json()
    assert set(status) >= STATUS_KEYS
    assert (status["active_region"], status["phase"]) == ("eu-west-1", "steady")
    assert status["actions"]["wp-env"]["result"] == "applied"
    history = client.get("/api/v1/history").get_json()
    (transition,) = history["transitions"]
    assert set(transition) >= TRANSITION_KEYS
    for moment in (transition["started_at"], transition["finished_at"]):
        assert re.match(RFC3339_UTC, moment)
    (step,) = transition["steps"]
    assert set(step) >= STEP_KEYS
    assert (step["before"], step["after"], step["result"]) == (None, "eu-west-1", "applied")
    assert transition["cause"]["alerts"][0]["fingerprint"] == "a1b2c3d4e5f60718"
    assert metric(client, 'responder_active_region{region="eu-west-1"}') == 1.0
    completed = (
        'responder_transitions_total{from_region="us-east-1",kind="failover",'
        'result="completed",to_region="eu-west-1"}'
    )
    assert metric(client, completed) == 1.0
    assert metric(client, 'responder_action_runs_total{action="wp-env",result="applied"}') == 1.0


def test_the_same_notification_twice_is_one_transition(online: Flask) -> None:
    client = viewing(online)
    first = client.post("/webhook", json=payload(), headers=auth()).get_json()["decisions"][0]
    again = client.post("/webhook", json=payload(), headers=auth())
    assert again.status_code == 202
    (second,) = again.get_json()["decisions"]
    assert second["kind"] == "duplicate" and second["transition_id"] is None
    history = client.get("/api/v1/history").get_json()
    assert [t["id"] for t in history["transitions"]] == [first["transition_id"]]
    assert [d["kind"] for d in history["decisions"]] == ["duplicate"]
    assert re.match(RFC3339_UTC, history["decisions"][0]["at"])


def test_no_ready_region_is_blocked_and_counted(offline: Flask, tmp_path: Path) -> None:
    client = viewing(offline)
    (decision,) = client.post("/webhook", json=payload(), headers=auth()).get_json()["decisions"]
    assert decision["kind"] == "blocked"
    assert "eu-west-1: canary read failed" in decision["reason"]
    assert client.get("/api/v1/status").get_json()["phase"] == "blocked"
    blocked = (
        'responder_transitions_total{from_region="us-east-1",kind="failover",'
        'result="blocked",to_region="eu-west-1"}'
    )
    assert metric(client, blocked) == 1.0
    assert runner_of(offline).run_now() is None
    assert not (tmp_path / "wp.env").exists()


def test_resolved_and_unrelated_alerts_are_ignored(offline: Flask) -> None:
    client = viewing(offline)
    resolved = client.post("/webhook", json=payload(alert(status="resolved")), headers=auth())
    other = client.post("/webhook", json=payload(alert(name="Watchdog")), headers=auth())
    kinds = [r.get_json()["decisions"][0]["kind"] for r in (resolved, other)]
    assert kinds == ["ignored", "ignored"]
    assert metric(client, 'responder_decisions_total{kind="ignored"}') == 2.0


def test_freeze_and_unfreeze_need_the_token_and_freeze_blocks(offline: Flask) -> None:
    client = viewing(offline)
    anonymous = offline.test_client()
    assert anonymous.post("/api/v1/freeze", json={"reason": "x"}).status_code == 401
    assert anonymous.post("/api/v1/unfreeze").status_code == 401
    # The viewer reads; Alertmanager's token posts webhooks: neither may freeze.
    assert client.post("/api/v1/freeze", json={"reason": "x"}).status_code == 403
    assert client.post("/api/v1/freeze", json={}, headers=auth()).status_code == 403
    frozen = client.post("/api/v1/freeze", json={"reason": "maintenance"}, headers=auth(OPERATOR))
    assert frozen.status_code == 200
    body = frozen.get_json()
    assert body["frozen"] is True and body["freeze"]["reason"] == "maintenance"
    assert metric(client, "responder_frozen") == 1.0
    (decision,) = client.post("/webhook", json=payload(), headers=auth()).get_json()["decisions"]
    assert decision["kind"] == "blocked" and "frozen by operator" in decision["reason"]
    thawed = client.post("/api/v1/unfreeze", headers=auth(OPERATOR))
    assert thawed.status_code == 200 and thawed.get_json()["frozen"] is False
    assert metric(client, "responder_frozen") == 0.0


def test_operator_failover_checks(offline: Flask) -> None:
    client = viewing(offline)
    assert (
        offline.test_client().post("/api/v1/failover", json={"to": "eu-west-1"}).status_code == 401
    )
    unknown = client.post("/api/v1/failover", json={"to": "mars-north-1"}, headers=auth(OPERATOR))
    assert unknown.status_code == 400
    assert unknown.get_json()["field"] == "to"
    assert "mars-north-1" in unknown.get_json()["error"]
    missing = client.post("/api/v1/failover", json={}, headers=auth(OPERATOR))
    assert missing.status_code == 400 and missing.get_json()["field"] == "to"
    not_ready = client.post("/api/v1/failover", json={"to": "eu-west-1"}, headers=auth(OPERATOR))
    assert not_ready.status_code == 409
    assert "canary read failed" in not_ready.get_json()["error"]
    assert client.get("/api/v1/history").get_json()["transitions"] == []


def test_operator_failover_accepted(online: Flask) -> None:
    client = viewing(online)
    answer = client.post(
        "/api/v1/failover",
        json={"to": "eu-west-1", "reason": "drill", "by": "someone-else"},
        headers=auth(OPERATOR),
    )
    assert answer.status_code == 202
    transition = answer.get_json()["transition"]
    assert (transition["kind"], transition["to_region"]) == ("manual", "eu-west-1")
    # Who asked is the token's name, whatever the client claims.
    assert (
        transition["cause"]["operator"] == "operator" and transition["cause"]["reason"] == "drill"
    )


def test_health_readiness_and_an_unavailable_store(offline: Flask, tmp_path: Path) -> None:
    client = viewing(offline)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ok"}
    shutil.rmtree(tmp_path / "state")
    (tmp_path / "state").write_text("not a directory")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "state store" in ready.get_json()["error"]
    assert client.get("/healthz").status_code == 200
    answer = client.post("/webhook", json=payload(), headers=auth())
    assert answer.status_code == 503
    assert "state store unavailable" in answer.get_json()["error"]
    assert answer.headers["Retry-After"]
    assert client.get("/api/v1/status").status_code == 503
    assert metric(client, "responder_state_store_up") == 0.0
    assert metric(client, 'responder_webhook_requests_total{code="503"}') == 1.0
    assert client.get("/").status_code == 503


def test_status_page_shows_the_state_escaped(offline: Flask) -> None:
    client = viewing(offline)
    hostile = "<script>alert(1)</script>"
    client.post("/api/v1/freeze", json={"reason": hostile}, headers=auth(OPERATOR))
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<div class="active" id="active-region">us-east-1</div>' in html
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'http-equiv="refresh"' in html
    # No outside assets (links to Grafana or the runbook are no asset).
    assert not re.search(r"(src=|<link[^>]*href=)\"(https?:)?//", html)


def test_nothing_is_built_at_import() -> None:
    import importlib

    import responder.app as module

    importlib.reload(module)
    assert not [v for v in vars(module).values() if isinstance(v, Flask)]
    assert SERVICE == "responder"


def test_runner_is_woken_by_a_new_transition(tmp_path: Path, start_regions: RegionFactory) -> None:
    from sandbox.net import wait_until

    regions = start_regions()
    put_heartbeat(regions["eu-west-1"], "us-east-1")
    urls = {name: region.url for name, region in regions.items()}
    config = config_at(write_config(tmp_path, region_urls=urls, actions=[env_action(tmp_path)]))
    # A poll interval far beyond the deadline below: only wake() can make it that fast.
    app = create_app(config, poll_seconds=600)
    runner = runner_of(app)
    runner.start()
    try:
        wait_until(lambda: runner.running, 30, message="runner thread started")
        client = viewing(app)
        assert client.post("/webhook", json=payload(), headers=auth()).status_code == 202
        wait_until(
            lambda: client.get("/api/v1/status").get_json()["active_region"] == "eu-west-1",
            30,
            message="transition completed by the woken runner",
        )
    finally:
        runner.stop()
    assert (tmp_path / "wp.env").read_text() == "DYNAMODB_REGION=eu-west-1\n"


def test_unfreeze_wakes_the_runner_for_a_transition_it_stopped(tmp_path: Path) -> None:
    from responder.app import store_of
    from responder.state.records import Cause, NewTransition
    from sandbox.net import wait_until

    config = config_at(write_config(tmp_path, actions=[env_action(tmp_path)]))
    app = create_app(config, poll_seconds=600)  # only wake() can resume it within seconds
    client, store, runner = app.test_client(), store_of(app), runner_of(app)
    runner.start()  # idle: its first round finds nothing to do and rests 600 s
    try:
        wait_until(lambda: runner.running, 30, message="runner thread started")
        assert client.post("/api/v1/freeze", json={"reason": "x"}, headers=auth(OPERATOR))
        new = NewTransition("failover", "us-east-1", "eu-west-1", Cause(), None, False)
        assert store.begin_transition(new, store.state().version) is not None
        assert store.state().phase == "frozen"
        thawed = client.post("/api/v1/unfreeze", json={"reason": "go"}, headers=auth(OPERATOR))
        assert thawed.status_code == 200
        wait_until(
            lambda: store.state().active_region == "eu-west-1", 30, message="resumed at once"
        )
    finally:
        runner.stop()


def test_a_failover_has_a_report_for_viewers(online: Flask) -> None:
    """The webhook's alert, its arrival and the readiness it used reach the report."""
    down = alert()
    down["annotations"].update(
        vantages_down="vm-1,vm-2", last_write_success_timestamp=str(int(time.time()) - 90)
    )
    client = viewing(online)
    answer = client.post("/webhook", json=payload(down), headers=auth())
    transition_id = answer.get_json()["decisions"][0]["transition_id"]
    assert runner_of(online).run_now() is not None

    report = client.get(f"/api/v1/transitions/{transition_id}/report").get_json()
    events = [e["event"] for e in report["timeline"]]
    assert events == [
        "onset", "alert_firing", "webhook_received", "decision", "step_started",
        "step_finished", "completed",
    ]  # fmt: skip
    assert not any(e["out_of_order"] for e in report["timeline"])
    assert round(sum(p["seconds"] for p in report["phases"]), 3) == report["total_seconds"]
    evidence = report["evidence"]
    assert evidence["vantages_down"]["names"] == ["vm-1", "vm-2"]
    assert evidence["readiness"][0] == {**evidence["readiness"][0], "region": "eu-west-1"}
    assert evidence["alerts"][0]["labels"]["table"] == "wordpress_posts"
    assert report["links"]["alert_sources"][0]["url"] == "http://prometheus.test/graph"
    assert report["links"]["alertmanager"] == "http://alertmanager.test:9093"
    assert report["steps"][0]["after"] == "eu-west-1"

    page = client.get(f"/transitions/{transition_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "vm-1, vm-2" in text and 'id="timeline"' in text
    assert "<script" not in text and "<style" not in text and " style=" not in text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert f'href="/transitions/{transition_id}"' in client.get("/").get_data(as_text=True)

    assert client.get("/api/v1/transitions/t-none/report").status_code == 404
    anonymous = online.test_client()
    assert anonymous.get(f"/api/v1/transitions/{transition_id}/report").status_code == 401
    challenge = anonymous.get(f"/transitions/{transition_id}")
    assert challenge.status_code == 401 and "Basic" in challenge.headers["WWW-Authenticate"]
    webhook_only = anonymous.get(f"/transitions/{transition_id}", headers=auth())
    assert webhook_only.status_code == 403
