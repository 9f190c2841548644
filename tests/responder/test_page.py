"""The status page: banners with the command, operator forms that are safe, the timeline,
region cards that say why they have no data, drift and strong consistency when the plan says."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from responder.app import create_app, runner_of, store_of
from responder.decide.decision import Check
from responder.decide.readiness import Readiness
from responder.model.errors import PermanentError
from responder.plan.plan_file import PlanFile
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready
from tests.responder.weblib import (
    OPERATOR,
    VIEWER,
    alert,
    auth,
    closed_url,
    config_at,
    payload,
    viewing,
    write_config,
)

RISK = 0.529379367828369  # what the issue saw on the page, unrounded


def risky(check: Check) -> Readiness:
    return Readiness(check.target, True, RISK)


class Page:
    """An app with three memory actions; the second fails permanently when told to."""

    def __init__(self, tmp_path: Path, *, failing: bool = False, **extra: Any) -> None:
        self.world: dict[str, Any] = {}
        failures = [PermanentError("HTTP 401: Unauthorized")] if failing else []
        self.actions = [
            MemoryAction("www", self.world),
            MemoryAction("lb", self.world, failures=failures),
            MemoryAction("env", self.world),
        ]
        config = config_at(write_config(tmp_path, extra=extra or None))
        self.plan_dir = tmp_path / "plan"
        self.app = create_app(config, actions=self.actions, readiness=risky, plan_dir=self.plan_dir)
        self.viewer: FlaskClient = viewing(self.app)
        self.operator: FlaskClient = viewing(self.app, OPERATOR)

    def html(self, client: FlaskClient | None = None) -> str:
        answer = (client or self.viewer).get("/")
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.html(self.operator))
        assert found, "the operator's page carries a CSRF token"
        return found.group(1)

    def form(self, op: str, fields: dict[str, str], token: str = OPERATOR) -> Any:
        client = self.app.test_client()
        return client.post(f"/operate/{op}", data=fields, headers=auth(token))

    def status(self) -> Any:
        return self.viewer.get("/api/v1/status").get_json()

    def stall(self) -> str:
        body = {"to": WEST, "reason": "drill", "force": True}
        answer = self.operator.post("/api/v1/failover", json=body)
        assert answer.status_code == 202, answer.get_json()
        assert runner_of(self.app).run_now() is None
        return str(answer.get_json()["transition"]["id"])

    def plan(self, **extra: Any) -> None:
        now = time.time()
        actions = [
            {"action": a.name, "type": "memory", "ready": True, "would_change": True,
             "current": {"region": EAST}, "desired": {"region": WEST}, "problems": []}
            for a in self.actions
        ]  # fmt: skip
        document = {
            "evaluated_at": "2026-12-06T03:00:00.000Z",
            "evaluated_at_unix": now,
            "evaluator": "test",
            "active_region": EAST,
            "interval_seconds": 60,
            "ready": True,
            "regions": {WEST: {"kind": "failover", "ready": True, "actions": actions}},
            **extra,
        }
        PlanFile(self.plan_dir, 600).write(document)


@pytest.fixture
def page(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Page]:
    """Pages, each in a directory of its own, their runners stopped at the end."""

    def make(**options: Any) -> Page:
        directory = tmp_path / f"page-{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        made = Page(directory, **options)
        request.addfinalizer(runner_of(made.app).stop)
        return made

    return make


def forms(html: str) -> list[str]:
    return re.findall(r'<form method="post" action="/operate/([a-z]+)"', html)


def test_a_viewer_sees_the_banner_and_its_command_but_no_form(page: Callable[..., Page]) -> None:
    p = page(failing=True)
    p.stall()
    viewer = p.html()
    assert 'data-banner="stalled"' in viewer and "ddb-responder skip lb --reason ..." in viewer
    assert "<form" not in viewer and 'name="csrf"' not in viewer
    operator = p.html(p.operator)
    offered = ["retry", "skip", "abort", "freeze"]
    assert [f for f in forms(operator) if f != "repair"] == offered
    assert operator.count('name="csrf"') == len(forms(operator))
    assert 'data-confirm="Skip lb (' in operator


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    page: Callable[..., Page],
) -> None:
    p = page()
    token = p.csrf()
    issued, _, mac = token.partition(".")
    refused = [
        ({"reason": "drill"}, OPERATOR, "no CSRF token"),
        ({"reason": "drill", "csrf": ""}, OPERATOR, "no CSRF token"),
        ({"reason": "drill", "csrf": f"{issued}.{'0' * len(mac)}"}, OPERATOR, "not valid"),
        ({"reason": "drill", "csrf": f"{int(issued) + 1}.{mac}"}, OPERATOR, "not valid"),
        ({"reason": "drill", "csrf": mac}, OPERATOR, "no CSRF token"),
        # A viewer's token is refused even with the operator's CSRF token.
        ({"reason": "drill", "csrf": token}, VIEWER, "has role viewer"),
    ]
    for fields, bearer, message in refused:
        answer = p.form("freeze", fields, bearer)
        assert answer.status_code == 403, (fields, bearer)
        assert message in answer.get_data(as_text=True), (fields, bearer)
        assert "Nothing was changed" in answer.get_data(as_text=True)
        assert p.status()["frozen"] is False
    no_reason = p.form("freeze", {"csrf": token, "reason": " "})
    assert no_reason.status_code == 400 and "reason is required" in no_reason.get_data(as_text=True)
    assert p.form("freeze", {"csrf": token, "reason": "x"}, "not-a-token").status_code == 401
    assert p.form("launch", {"csrf": token, "reason": "x"}).status_code == 404
    assert p.status()["frozen"] is False

    done = p.form("freeze", {"csrf": token, "reason": "storm in eu-west-1"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/")
    freeze = p.status()["freeze"]
    assert p.status()["frozen"] and (freeze["by"], freeze["reason"]) == (
        "operator",
        "storm in eu-west-1",
    )
    frozen = p.html(p.operator)
    assert 'data-banner="frozen"' in frozen and "ddb-responder unfreeze --reason ..." in frozen
    assert "unfreeze" in forms(frozen) and "freeze" not in forms(frozen)
    assert p.form("unfreeze", {"csrf": token, "reason": "calm"}).status_code == 303
    assert p.status()["frozen"] is False


def test_a_stale_csrf_token_is_refused(page: Callable[..., Page]) -> None:
    from responder.web import forms as module

    p = page()
    with p.app.test_request_context(headers=auth(OPERATOR)):
        old = module.csrf_token(time.time() - module.CSRF_MAX_AGE_SECONDS - 5)
    assert old is not None
    answer = p.form("freeze", {"csrf": old, "reason": "drill"})
    assert answer.status_code == 403 and "expired" in answer.get_data(as_text=True)
    assert p.status()["frozen"] is False


def test_the_stalled_step_is_skipped_from_the_page(page: Callable[..., Page]) -> None:
    p = page(failing=True)
    transition_id = p.stall()
    fields = {"csrf": p.csrf(), "reason": "fixed by hand", "transition_id": transition_id}
    assert p.form("skip", {**fields, "action": "lb"}).status_code == 303
    done = runner_of(p.app).run_now()
    assert done is not None and done.result == "completed"
    assert [s.result for s in done.steps] == ["applied", "skipped", "applied"]
    # A command that no longer applies is refused as the API refuses it.
    again = p.form("retry", fields)
    assert again.status_code == 409 and "Nothing was changed" in again.get_data(as_text=True)


def test_approval_waits_on_the_page_and_is_approved_there(tmp_path: Path) -> None:
    config = config_at(write_config(tmp_path, policy={"approval": "failover"}))
    world: dict[str, Any] = {}
    app = create_app(config, actions=[MemoryAction("www", world)], readiness=always_ready)
    try:
        client = app.test_client()
        answer = client.post("/webhook", json=payload(alert()), headers=auth())
        transition_id = answer.get_json()["decisions"][0]["transition_id"]
        html = viewing(app, OPERATOR).get("/").get_data(as_text=True)
        assert 'data-banner="awaiting_approval"' in html
        assert f"ddb-responder approve {transition_id}" in html
        assert forms(html)[:3] == ["approve", "decline", "abort"]
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        fields = {
            "csrf": token.group(1),
            "reason": "on-call agrees",
            "transition_id": transition_id,
        }
        viewer = client.post("/operate/approve", data=fields, headers=auth(VIEWER))
        assert viewer.status_code == 403
        assert store_of(app).state().phase == "awaiting_approval"
        yes = client.post("/operate/approve", data=fields, headers=auth(OPERATOR))
        assert yes.status_code == 303
        assert store_of(app).state().phase == "failing_over"
    finally:
        runner_of(app).stop()


def test_the_timeline_is_in_order_and_adds_up_in_words(page: Callable[..., Page]) -> None:
    p = page()
    down = alert(starts_at=time.time() - 42.123)
    down["annotations"]["last_write_success_timestamp"] = str(time.time() - 75.5)
    answer = p.viewer.post("/webhook", json=payload(down), headers=auth())
    transition_id = answer.get_json()["decisions"][0]["transition_id"]
    assert runner_of(p.app).run_now() is not None
    report = p.viewer.get(f"/api/v1/transitions/{transition_id}/report").get_json()
    html = p.html()
    events = re.findall(r'<li data-event="([a-z_]+)" data-tenths="(-?\d+)"', html)
    assert [e for e, _ in events] == [e["event"] for e in report["timeline"]]
    assert [e for e, _ in events][:4] == ["onset", "alert_firing", "webhook_received", "decision"]
    assert events[-1][0] == "completed"
    total = re.search(r'data-total-tenths="(\d+)"', html)
    assert total is not None and sum(int(t) for _, t in events) == int(total.group(1))
    assert int(total.group(1)) == round(report["total_seconds"] * 10)
    cells = re.findall(r'<td class="words">([^<]*)</td>', html)
    assert len(cells) == 3 and all("{" not in c for c in cells), cells
    assert cells[0] == "region us-east-1 → region eu-west-1" or "none →" in cells[0]
    assert '<span id="data-at-risk">0.5 s</span>' in html and str(RISK) not in html
    assert re.search(r'<time datetime="[^"]+Z" title="[^"]+ UTC">\d+ s ago</time>', html)


def test_region_cards_say_why_they_have_no_data(page: Callable[..., Page]) -> None:
    unset = page().html()
    assert unset.count('class="no-data">no data: responder.prometheus_url is not set<') == 2
    cards = re.findall(r'data-region="([^"]+)" data-role="([a-z]+)"', unset)
    assert cards == [(EAST, "active"), (WEST, "standby")]
    closed = page(prometheus_url=closed_url()).html()
    assert closed.count("no data: Prometheus unreachable:") == 2, closed


def test_drift_and_strong_consistency_show_when_the_plan_says(page: Callable[..., Page]) -> None:
    p = page()
    p.plan()
    plain = p.html()
    assert 'data-banner="drift"' not in plain and "RPO 0" not in plain
    drift = [{"action": "www", "current": {"region": WEST}, "desired": {"region": EAST}}]
    rpo = "RPO 0 (strong consistency)"
    witnesses = {"us-west-2": {"tables": ["wordpress_posts"], "target": False, "why": "witness"}}
    consistency = {"tables": {"wordpress_posts": "strong"}, "witnesses": witnesses, "rpo": rpo}
    p.plan(drift=drift, consistency=consistency)
    html = p.html(p.operator)
    assert 'data-banner="drift"' in html and "ddb-responder repair --reason ..." in html
    assert "www: is region eu-west-1, should be region us-east-1" in html
    assert f'<strong id="rpo">{rpo}</strong>' in html
    assert 'data-region="us-west-2" data-role="witness"' in html
    # Repair is issue 21's command: the button comes with it; without it a post says so.
    service = p.app.extensions["responder"]
    assert ("repair" in forms(html)) == hasattr(service, "repair")
    answer = p.form("repair", {"csrf": p.csrf(), "reason": "put back"})
    assert answer.status_code == (303 if hasattr(service, "repair") else 501)


def test_the_page_is_small(page: Callable[..., Page]) -> None:
    p = page(failing=True)
    p.stall()
    p.plan(drift=[{"action": "lb", "current": None, "desired": {"region": EAST}}])
    html = p.html(p.operator)
    assert len(html.encode()) < 100 * 1024
    assert 'http-equiv="refresh" content="5"' in html and 'data-refresh="5"' in html
    still = p.viewer.get("/?refresh=off").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in still and 'data-refresh="0"' in still
    script = p.viewer.get("/static/page.js")
    assert script.status_code == 200 and "visibilitychange" in script.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["failback", "repair", "switchover", "practice"])
def test_every_transition_kind_shows_as_a_timeline(page: Callable[..., Page], kind: str) -> None:
    from responder.state.records import Cause, NewTransition, StepRecord

    p = page()
    store = store_of(p.app)
    lease = store.acquire_lease("test", 60)
    assert lease is not None
    cause = Cause(operator="operator", reason="drill")
    evidence: dict[str, Any] = {"received_at": time.time()}
    if kind == "switchover":  # a strongly consistent table's evidence
        evidence.update(consistency="strong", rpo="RPO 0 (strong consistency)")
    new = NewTransition(kind, EAST, WEST, cause, 0.25, False, evidence=evidence)  # type: ignore[arg-type]
    record = store.begin_transition(new, store.state().version)
    assert record is not None
    started = time.time()
    step = StepRecord("www", "applied", {"region": EAST}, {"region": WEST}, at=started + 0.3,
                      started_at=started)  # fmt: skip
    store.journal_step(record.id, step, lease.token)
    store.finish_transition(record.id, "completed", lease.token)
    html = p.html()
    assert f"{kind.capitalize()} {EAST} &rarr; {WEST}:" in html
    events = re.findall(r'<li data-event="([a-z_]+)"', html)
    assert events == ["request_received", "decision", "step_started", "step_finished", "completed"]
    risk = "RPO 0 (strong consistency)" if kind == "switchover" else "0.2 s"
    assert "region us-east-1 → region eu-west-1" in html
    assert f'<span id="data-at-risk">{risk}</span>' in html
