"""retry, skip and abort over HTTP: status codes, refusals that change nothing, the status."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from responder.app import create_app, runner_of
from responder.model.errors import PermanentError
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready
from tests.responder.weblib import OPERATOR, auth, config_at, viewing, write_config


class Site:
    """An app whose second action fails permanently until told otherwise."""

    def __init__(self, tmp_path: Path) -> None:
        self.world: dict[str, Any] = {}
        self.lb = MemoryAction(
            "lb", self.world, failures=[PermanentError("HTTP 401: Unauthorized")]
        )
        self.actions = [MemoryAction("www", self.world), self.lb, MemoryAction("env", self.world)]
        config = config_at(write_config(tmp_path))
        self.app = create_app(config, actions=self.actions, readiness=always_ready)
        self.client: FlaskClient = viewing(self.app)

    def post(self, path: str, body: Any = None, token: bool = True) -> Any:
        headers = auth(OPERATOR) if token else {"Authorization": ""}
        return self.client.post(f"/api/v1/{path}", json=body, headers=headers)

    def stall(self) -> str:
        """Start an operator failover and let the reconciler stop at the failing step."""
        answer = self.post("failover", {"to": WEST, "reason": "drill", "force": True})
        assert answer.status_code == 202, answer.get_json()
        assert runner_of(self.app).run_now() is None
        return str(answer.get_json()["transition"]["id"])

    def status(self) -> Any:
        return self.client.get("/api/v1/status").get_json()

    def run(self) -> Any:
        return runner_of(self.app).run_now()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    yield made
    runner_of(made.app).stop()


def metric(client: FlaskClient, series: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not exposed"
    return float(match.group(1))


def test_a_stalled_step_shows_in_status_and_metrics(site: Site) -> None:
    site.stall()
    status = site.status()
    assert (status["phase"], status["desired_region"]) == ("stalled", WEST)
    lb = status["actions"]["lb"]
    assert (lb["result"], lb["halted"], lb["attempts"]) == ("failed", True, 1)
    assert lb["error"] == "HTTP 401: Unauthorized"
    assert status["actions"]["www"]["region"] == WEST
    attempts = status["last_transition"]["attempts"]
    assert (attempts["action"], attempts["halted"], attempts["retry_at"]) == ("lb", True, None)
    assert metric(site.client, 'responder_phase{phase="stalled"}') == 1.0
    assert metric(site.client, 'responder_phase{phase="failing_over"}') == 0.0
    assert metric(site.client, f'responder_action_region{{action="www",region="{WEST}"}}') == 1.0
    assert metric(site.client, f'responder_action_region{{action="lb",region="{WEST}"}}') == 0.0


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("retry", {"reason": "x"}, 401, "missing bearer token"),
        ("skip", {"action": "nope", "reason": "x"}, 400, "unknown action 'nope'"),
        (
            "skip",
            {"action": "env", "reason": "x"},
            409,
            "cannot skip env: the step in trouble is lb",
        ),
        ("skip", {"action": "lb"}, 400, "reason must be a non-empty string"),
        ("abort", {"reason": "x", "rollback": "yes"}, 400, "rollback must be true or false"),
        ("abort", {"rollback": True}, 400, "reason must be a non-empty string"),
        ("retry", {"reason": "x", "transition_id": "t-other"}, 409, "t-other is not in progress"),
    ],
)
def test_refused_commands_change_nothing(
    site: Site, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    site.stall()
    before = site.client.get("/api/v1/history").get_json()
    answer = site.post(path, body, token=status != 401)
    assert answer.status_code == status
    assert message in answer.get_json()["error"]
    assert site.client.get("/api/v1/history").get_json() == before


def test_retry_after_the_fix_completes(site: Site) -> None:
    transition_id = site.stall()
    answer = site.post("retry", {"reason": "token rotated"})
    assert answer.status_code == 202
    assert answer.get_json()["transition"]["operations"][0]["op"] == "retry"
    done = site.run()
    assert done is not None and (done.id, done.result) == (transition_id, "completed")
    assert site.world == {"www": {"region": WEST}, "lb": {"region": WEST}, "env": {"region": WEST}}
    record = site.client.get(f"/api/v1/transitions/{transition_id}").get_json()["transition"]
    assert [(o["op"], o["by"], o["reason"]) for o in record["operations"]] == [
        ("retry", "operator", "token rotated")
    ]
    assert site.post("retry", {"reason": "again"}).status_code == 409  # nothing in progress


def test_skip_goes_on_without_the_step(site: Site) -> None:
    site.stall()
    answer = site.post("skip", {"action": "lb", "reason": "moved by hand", "by": "bob"})
    assert answer.status_code == 202
    done = site.run()
    assert done is not None and done.result == "completed"
    assert [(s.action, s.result) for s in done.steps] == [
        ("www", "applied"),
        ("lb", "skipped"),
        ("env", "applied"),
    ]
    assert "lb" not in site.world
    assert site.status()["active_region"] == WEST


def test_abort_with_rollback_puts_every_action_back(site: Site) -> None:
    transition_id = site.stall()
    answer = site.post("abort", {"reason": "site is fine", "rollback": True, "by": "carol"})
    assert answer.status_code == 202
    assert site.status()["desired_region"] == EAST
    done = site.run()
    assert done is not None and (done.id, done.result) == (transition_id, "aborted")
    # env never ran forward: rollback reads it too, and puts it in the source's state.
    assert site.world == {"www": {"region": EAST}, "lb": {"region": EAST}, "env": {"region": EAST}}
    status = site.status()
    assert (status["active_region"], status["phase"]) == (EAST, "steady")
    aborted = (
        'responder_transitions_total{from_region="us-east-1",kind="manual",'
        'result="failed",to_region="eu-west-1"}'
    )
    assert metric(site.client, aborted) == 1.0


def test_unknown_transition_is_404(site: Site) -> None:
    answer = site.client.get("/api/v1/transitions/t-nope")
    assert answer.status_code == 404 and "no transition 't-nope'" in answer.get_json()["error"]


def test_the_page_says_where_it_stopped_and_what_to_type(site: Site) -> None:
    site.stall()
    page = site.client.get("/").get_data(as_text=True)
    assert 'class="phase-stalled">stalled<' in page
    assert "Stopped at <strong>lb</strong>" in page and "HTTP 401: Unauthorized" in page
    assert "ddb-responder skip lb --reason ..." in page
    site.post("skip", {"action": "lb", "reason": "moved <b>by hand</b>", "by": "bob"})
    page = site.client.get("/").get_data(as_text=True)
    assert "skip lb" in page and "moved &lt;b&gt;by hand&lt;/b&gt;" in page  # escaped


def test_repair_puts_back_only_what_it_is_asked_to_and_never_while_another_runs(
    site: Site,
) -> None:
    transition_id = site.stall()
    busy = site.post("repair", {"reason": "dns edited by hand"})
    assert busy.status_code == 409
    assert busy.get_json()["error"] == (
        f"cannot repair: transition {transition_id} (manual) is in progress"
    )
    site.post("abort", {"reason": "enough", "rollback": True})
    assert site.run().result == "aborted"
    site.world.update(www={"region": WEST}, lb={"region": WEST})  # changed by hand, twice
    assert site.post("repair", {"reason": "x", "action": "nope"}).status_code == 400
    assert site.post("repair", {"action": "www"}).status_code == 400  # a reason is required
    answer = site.post("repair", {"reason": "dns edited by hand", "action": "www"})
    assert answer.status_code == 202, answer.get_json()
    began = answer.get_json()["transition"]
    assert (began["kind"], began["from_region"], began["to_region"]) == ("repair", EAST, EAST)
    done = site.run()
    assert done is not None and (done.kind, done.result) == ("repair", "completed")
    assert [(s.action, s.result) for s in done.steps] == [("www", "applied")]
    assert site.world == {"www": {"region": EAST}, "lb": {"region": WEST}, "env": {"region": EAST}}
    everything = site.post("repair", {"reason": "the rest"})
    assert everything.status_code == 202
    done = site.run()
    assert [(s.action, s.result) for s in done.steps] == [
        ("www", "unchanged"),
        ("lb", "applied"),
        ("env", "unchanged"),
    ]
    (last, *_) = site.client.get("/api/v1/history").get_json()["transitions"]
    assert (last["kind"], last["cause"]["reason"]) == ("repair", "the rest")
    report = site.client.get(f"/api/v1/transitions/{last['id']}/report")
    assert report.status_code == 200 and report.get_json()["transition"]["kind"] == "repair"
    assert site.status()["active_region"] == EAST
