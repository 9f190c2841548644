"""The responder over STRONG tables: the witness is refused, reports and the plan say RPO 0.

The app is built from a config with responder.consistency strong and a witness, on each
state store; readiness is injected (its live side is tests/responder/test_readiness_strong.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ddb_failover import consistency
from responder.app import create_app, plan_runner_of, runner_of
from responder.decide.decision import Check, Readiness
from responder.records import render, report_markdown
from tests.responder.fakes import WEST, MemoryAction
from tests.responder.stores import Backend
from tests.responder.weblib import OPERATOR, auth, config_at, viewing, write_config

WITNESS = "us-west-2"
RPO_ZERO = "RPO 0 (strong consistency)"
REFUSED = (
    "us-west-2 is the witness of wordpress_posts: a witness holds no replica and serves no "
    "reads or writes, so it is never a failover target"
)


def strong_ready(check: Check) -> Readiness:
    """Every region of strongly consistent tables ready: nothing at risk, writes taken."""
    return Readiness(check.target, True, 0.0, strong=True, write_ok=True)


@pytest.fixture
def app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    """The app on each state store in turn: the evidence is kept by both."""
    extra = {"consistency": "strong", "witness": WITNESS}
    config = config_at(write_config(tmp_path, extra=extra))
    made = create_app(
        config, store=backend.open(), actions=[MemoryAction("www", {})], readiness=strong_ready
    )
    yield made
    runner_of(made).stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return viewing(app)


def post(client: FlaskClient, path: str, body: Any) -> Any:
    return client.post(f"/api/v1/{path}", json=body, headers=auth(OPERATOR))


def test_failover_to_the_witness_is_refused_naming_it(client: FlaskClient) -> None:
    answer = post(client, "failover", {"to": WITNESS, "reason": "drill", "force": True})
    assert answer.status_code == 400
    assert REFUSED in str(answer.get_json())
    history = client.get("/api/v1/history").get_json()
    assert history["transitions"] == [] and history["decisions"] == []  # nothing recorded
    plan = client.get(f"/api/v1/plan?to={WITNESS}")
    assert plan.status_code == 400 and REFUSED in str(plan.get_json())


def test_a_failover_reports_rpo_0(app: Flask, client: FlaskClient) -> None:
    answer = post(client, "failover", {"to": WEST, "reason": "drill", "force": True})
    assert answer.status_code == 202, answer.get_json()
    transition_id = answer.get_json()["transition"]["id"]
    runner_of(app).run_now()
    report = client.get(f"/api/v1/transitions/{transition_id}/report").get_json()
    evidence = report["evidence"]
    assert (evidence["consistency"], evidence["rpo"]) == ("strong", RPO_ZERO)
    assert evidence["data_at_risk_seconds"] == 0.0
    markdown = report_markdown.markdown(report)
    assert f"| Data at risk | none: {RPO_ZERO} |" in markdown
    assert f"Readiness of {WEST} at the decision: canary read OK, {RPO_ZERO}, write OK" in markdown
    page = client.get(f"/transitions/{transition_id}").get_data(as_text=True)
    assert f"none: {RPO_ZERO}" in page


def test_the_plan_lists_the_witness_and_says_rpo_0(app: Flask, client: FlaskClient) -> None:
    plan_runner_of(app).run_once()
    plan = client.get("/api/v1/plan").get_json()
    assert list(plan["regions"]) == [WEST]  # the witness is no candidate
    assert plan["consistency"] == {
        "tables": {"wordpress_posts": "strong"},
        "witnesses": {WITNESS: {"tables": ["wordpress_posts"], "target": False, "why": REFUSED}},
        "rpo": RPO_ZERO,
    }
    [readiness] = [a for a in plan["regions"][WEST]["actions"] if a["action"] == "readiness"]
    assert readiness["current"]["rpo"] == RPO_ZERO and readiness["current"]["write_ok"] is True
    assert readiness["desired"] == {"canary_ok": True, "write_ok": True, "rpo": RPO_ZERO}
    assert readiness["problems"] == []
    text = render.plan({**plan, "age_seconds": 0.0, "stale": False, "evaluator": "test"})
    assert f"      canary readable, takes writes, {RPO_ZERO}" in text.splitlines()
    assert text.splitlines()[-1] == f"witness {WITNESS}: never a target ({REFUSED})"


def test_eventual_tables_have_no_witness_and_no_rpo_0(tmp_path: Path) -> None:
    config = config_at(write_config(tmp_path))
    assert consistency.describe(config) == {
        "tables": {"wordpress_posts": "eventual"},
        "witnesses": {},
        "rpo": None,
    }
