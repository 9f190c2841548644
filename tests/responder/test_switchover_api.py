"""POST /api/v1/switchover and `ddb-responder switchover`: roles, refusals, the report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from responder.actions.fence import FenceValues
from responder.app import create_app, plan_runner_of, runner_of
from responder.records import render
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready
from tests.responder.test_switchover import FlagAction, MemoryMarker
from tests.responder.weblib import OPERATOR, VIEWER, auth, config_at, viewing, write_config


class Site:
    """An app with a read-only fence and two actions in one dict; the marker replicates."""

    def __init__(self, tmp_path: Path, **policy: Any) -> None:
        self.world: dict[str, Any] = {"ro": "0"}
        self.fence = FlagAction("ro", self.world)
        actions = [MemoryAction("www", self.world), MemoryAction("env", self.world)]
        config = config_at(write_config(tmp_path, policy=policy))
        self.app = create_app(
            config,
            actions=actions,
            readiness=always_ready,
            plan_dir=tmp_path / "plan",
            fences=[(self.fence, FenceValues("1", "0"))],
            marker=MemoryMarker(),  # type: ignore[arg-type]
        )
        self.client: FlaskClient = viewing(self.app)

    def post(self, path: str, body: Any, token: str = OPERATOR) -> Any:
        return self.client.post(f"/api/v1/{path}", json=body, headers=auth(token))

    def history(self) -> Any:
        return self.client.get("/api/v1/history").get_json()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    yield made
    runner_of(made.app).stop()


def test_a_switchover_completes_with_its_figures(site: Site) -> None:
    plan_runner_of(site.app).run_once()
    answer = site.post("switchover", {"to": WEST, "reason": "maintenance"})
    assert answer.status_code == 202, answer.get_json()
    transition = answer.get_json()["transition"]
    assert (transition["kind"], transition["cause"]["operator"]) == ("switchover", "operator")
    done = runner_of(site.app).run_now()
    assert done is not None and done.result == "completed"
    assert site.world == {"ro": "0", "www": {"region": WEST}, "env": {"region": WEST}}
    shown = site.client.get(f"/api/v1/transitions/{done.id}/report").get_json()
    assert shown["rpo_seconds"] == 0.0 and shown["drain_seconds"] is not None
    assert shown["write_unavailable_seconds"] >= shown["drain_seconds"]
    moments = shown["switchover"]
    assert moments["fence_started_at"] <= moments["drained_at"] <= moments["moved_at"]
    assert moments["moved_at"] <= moments["unfenced_at"]
    text = site.client.get("/metrics").get_data(as_text=True)
    assert (
        'responder_transitions_total{from_region="us-east-1",kind="switchover",'
        'result="completed",to_region="eu-west-1"} 1.0' in text
    )


@pytest.mark.parametrize(
    ("body", "token", "status", "message"),
    [
        ({"to": WEST, "reason": "x"}, VIEWER, 403, "operator"),
        ({"to": WEST}, OPERATOR, 400, "reason must be a non-empty string"),
        ({"reason": "x"}, OPERATOR, 400, "to must be a non-empty string"),
        ({"to": "ap-south-1", "reason": "x"}, OPERATOR, 400, "unknown region 'ap-south-1'"),
        ({"to": WEST, "reason": "x", "force": "yes"}, OPERATOR, 400, "force must be true or"),
        ({"to": WEST, "reason": "x"}, OPERATOR, 409, "the plan has no fresh evaluation"),
        ({"to": EAST, "reason": "x"}, OPERATOR, 409, f"{EAST} is already active"),
    ],
)
def test_refusals_start_nothing(
    site: Site, body: dict[str, Any], token: str, status: int, message: str
) -> None:
    answer = site.post("switchover", body, token)
    assert answer.status_code == status, answer.get_json()
    assert message in answer.get_json()["error"]
    assert site.history()["transitions"] == []
    assert site.world == {"ro": "0"}


def test_a_freeze_stops_a_switchover(site: Site) -> None:
    plan_runner_of(site.app).run_once()
    assert site.post("freeze", {"reason": "release"}).status_code == 200
    answer = site.post("switchover", {"to": WEST, "reason": "maintenance"})
    assert answer.status_code == 409
    assert answer.get_json()["error"] == (
        "frozen by operator: release (a switchover waits for unfreeze)"
    )
    assert site.history()["decisions"][0]["transition_kind"] == "switchover"


def test_approval_all_makes_it_wait_for_a_person(tmp_path: Path) -> None:
    site = Site(tmp_path, approval="all")
    try:
        plan_runner_of(site.app).run_once()
        answer = site.post("switchover", {"to": WEST, "reason": "maintenance"})
        assert answer.status_code == 202
        assert answer.get_json()["transition"]["approval"]["state"] == "waiting"
        assert runner_of(site.app).run_now() is None
        assert site.world == {"ro": "0"}  # not even fenced
    finally:
        runner_of(site.app).stop()


def test_a_fence_left_on_shows_in_the_plan(site: Site) -> None:
    plan_runner_of(site.app).run_once()
    [fence] = site.client.get("/api/v1/plan").get_json()["fences"]
    assert (fence["action"], fence["current"], fence["desired"]) == ("fence:ro", "0", "0")
    assert fence["left_on"] is False
    site.world["ro"] = "1"  # left on: an abort without rollback, or a hand
    runner = plan_runner_of(site.app)
    runner._next_at = None  # the next evaluation is due now
    runner.run_once()
    [fence] = site.client.get("/api/v1/plan").get_json()["fences"]
    assert (fence["current"], fence["left_on"]) == ("1", True)
    plan = site.client.get("/api/v1/plan").get_json()
    assert {"action": "fence:ro", "current": "1", "desired": "0"} in plan["drift"]
    assert "fence:ro" in plan["drift_checked"]
    # A repair opens it, as it puts any drifted object back.
    answer = site.post("repair", {"reason": "fence left on"})
    assert answer.status_code == 202, answer.get_json()
    done = runner_of(site.app).run_now()
    assert done is not None and done.result == "completed"
    assert site.world["ro"] == "0"
    assert [(s.action, s.result) for s in done.steps][-1] == ("fence:ro", "applied")


def test_the_cli_prints_a_switchovers_figures(site: Site) -> None:
    plan_runner_of(site.app).run_once()
    answer = site.post("switchover", {"to": WEST, "reason": "maintenance"})
    done = runner_of(site.app).run_now()
    assert done is not None
    shown = site.client.get(f"/api/v1/transitions/{done.id}/report").get_json()
    lines = render.switchover(shown).splitlines()
    assert lines[0].startswith(f"{done.id} switchover {EAST} -> {WEST} completed")
    assert lines[1].startswith("  rpo_seconds: 0s  write_unavailable_seconds: ")
    assert [line.split(":")[0] for line in lines[2:]] == [
        "  fence started",
        "  drained",
        "  moved",
        "  unfenced",
    ]
    assert answer.status_code == 202
