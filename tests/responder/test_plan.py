"""The plan's core: evaluation, its document, the file, the one-evaluator lock, text and exits."""

from __future__ import annotations

import math
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from responder.actions.base import Action, Json, Transition
from responder.actions.inspection import MISSING, READINESS, SITE, TTL, Limits, Problem
from responder.cli.remote import EXIT_NOT_READY, EXIT_OK, EXIT_UNKNOWN, plan_exit
from responder.decide.decision import Check, Readiness, SiteAnswer
from responder.metrics import ResponderMetrics
from responder.model.errors import PermanentError, TemporaryError
from responder.plan.plan import candidates, evaluate
from responder.plan.plan_file import PlanFile, judged, select, stale_after
from responder.plan.plan_runner import HostLock, PlanRunner, PlanSource
from responder.records import render
from responder.state.store import StoreUnavailable
from sandbox.net import wait_until
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready, config

SOUTH = "ap-south-1"
REGIONS = (EAST, WEST, SOUTH)
T0 = 1_800_000_000.0


class Checked(MemoryAction):
    """A memory action with its own check: a warning, an error, or a failing read."""

    def __init__(self, name: str, world: dict[str, Json], problem: Problem | None = None) -> None:
        super().__init__(name, world)
        self.problem = problem

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        if self.problem is not None:
            problems.append(self.problem)
        return self.current()


class Failing(MemoryAction):
    """Its read raises the given error."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name, {})
        self.error = error

    def current(self) -> Json:
        raise self.error


class Writes(MemoryAction):
    """Records any write: an evaluation must make none."""

    def apply(self, desired: Json, transition: Transition) -> None:
        raise AssertionError("the plan wrote to a target")


def lagging(check: Check) -> Readiness:
    """eu-west-1 has seen no heartbeat from the source; the others are fine."""
    return Readiness(check.target, True, None if check.target == WEST else 0.5)


def test_candidates_are_every_region_but_the_active_one_in_priority_order() -> None:
    assert candidates(EAST, REGIONS) == (WEST, SOUTH)
    assert candidates(WEST, REGIONS) == (EAST, SOUTH)


def test_evaluation_plans_each_candidate_with_readiness_first() -> None:
    world = {"dns": {"region": EAST}}
    actions: list[Action] = [Writes("dns", world), Checked("lb", {"lb": {"region": WEST}})]
    seen: list[Check] = []

    def readiness(check: Check) -> Readiness:
        seen.append(check)
        return always_ready(check)

    plan = evaluate(actions, REGIONS, WEST, readiness, 60.0, Limits(), clock=lambda: T0)

    assert [(r.region, r.kind) for r in plan.regions] == [(EAST, "failback"), (SOUTH, "failover")]
    assert seen == [Check(EAST, WEST, T0), Check(SOUTH, WEST, T0)]
    east = plan.regions[0]
    assert [i.action for i in east.inspections] == ["readiness", "dns", "lb"]
    dns = east.inspections[1]
    assert (dns.current, dns.desired, dns.would_change) == (
        {"region": EAST},
        {"region": EAST},
        False,
    )
    lb = plan.regions[1].inspections[2]
    assert (lb.desired, lb.would_change) == ({"region": SOUTH}, True)
    assert plan.ready and world == {"dns": {"region": EAST}}


def test_readiness_is_the_decisions_verdict() -> None:
    plan = evaluate([], (EAST, WEST), EAST, lagging, 60.0, Limits())
    (inspection,) = plan.regions[0].inspections
    assert not plan.ready
    assert [p.kind for p in inspection.problems] == [READINESS]
    assert inspection.problems[0].message == Readiness(WEST, True, None).problem(60.0)
    assert inspection.current == {"canary_ok": True, "data_at_risk_seconds": None}


def test_a_dead_site_is_named_as_kind_site_beside_readiness() -> None:
    def sites(check: Check) -> Readiness:
        status = 200 if check.target == SOUTH else None
        answer = SiteAnswer(f"http://lb-{check.target}/healthz", 200, status, "timeout")
        return Readiness(check.target, True, 0.5, "", answer)

    plan = evaluate([], REGIONS, EAST, sites, 60.0, Limits())
    west, south = plan.regions
    assert [i.action for i in west.inspections] == ["readiness", "site"]
    readiness, site = west.inspections
    assert readiness.problems == ()  # its DynamoDB is fine: only the site is not
    assert [(p.kind, p.message) for p in site.problems] == [
        (SITE, f"{WEST}: site http://lb-{WEST}/healthz did not answer (timeout)")
    ]
    assert (site.current, site.desired) == ({"status": None, "error": "timeout"}, {"status": 200})
    assert not west.ready and south.ready
    # Without a site configured there is no "site" line at all.
    plain = evaluate([], REGIONS, EAST, lagging, 60.0, Limits())
    assert all(i.action != "site" for r in plain.regions for i in r.inspections)


def behind(
    lags: dict[str, float], down: frozenset[str] = frozenset()
) -> tuple[Callable[[Check], Readiness], list[str]]:
    """Readiness with each region's data at risk, the regions in down unreadable; and reads."""
    reads: list[str] = []

    def readiness(check: Check) -> Readiness:
        reads.append(check.target)
        if check.target in down:
            return Readiness(check.target, False, None, "timeout")
        return Readiness(check.target, True, lags.get(check.target, 0.5))

    return readiness, reads


def test_a_down_active_region_is_measured_up_to_its_last_sign_of_life() -> None:
    # eu-west-1 last saw us-east-1's heartbeat 95 s ago, ap-south-1 100 s ago: us-east-1
    # has been down that long, so a decision (measuring up to its alert) sees 0 s and 5 s.
    readiness, reads = behind({WEST: 95.0, SOUTH: 100.0}, down=frozenset({EAST}))
    plan = evaluate([], REGIONS, EAST, readiness, 60.0, Limits())

    assert reads == [WEST, SOUTH, EAST]  # the active region read once, as a region over RPO
    risks = {r.region: r.inspections[0].current["data_at_risk_seconds"] for r in plan.regions}
    assert risks == {WEST: 0.0, SOUTH: 5.0} and plan.ready


def test_a_serving_active_region_leaves_a_lag_over_the_rpo_a_problem() -> None:
    readiness, reads = behind({WEST: 95.0, SOUTH: 1.0})
    plan = evaluate([], REGIONS, EAST, readiness, 60.0, Limits())

    assert reads == [WEST, SOUTH, EAST]
    (west, south) = plan.regions
    assert [p.kind for p in west.inspections[0].problems] == [READINESS]
    assert "data at risk 95.0s exceeds RPO 60s" in west.inspections[0].problems[0].message
    assert south.ready and not plan.ready


def test_within_the_rpo_the_active_region_is_not_read() -> None:
    readiness, reads = behind({WEST: 2.0, SOUTH: 3.0}, down=frozenset({EAST}))
    assert evaluate([], REGIONS, EAST, readiness, 60.0, Limits()).ready
    assert reads == [WEST, SOUTH]


def test_warnings_do_not_make_a_region_unready_errors_do() -> None:
    warned = Checked("dns", {}, Problem(TTL, "dns: TTL 3600 s", "warning"))
    assert evaluate([warned], (EAST, WEST), EAST, always_ready, 60.0, Limits()).ready
    broken = Checked("dns", {}, Problem(MISSING, "dns: gone"))
    plan = evaluate([broken], (EAST, WEST), EAST, always_ready, 60.0, Limits())
    assert not plan.ready
    assert plan.to_json()["regions"][WEST]["actions"][1]["problems"] == [
        {"kind": "missing", "severity": "error", "message": "dns: gone"}
    ]


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (PermanentError("lb: HTTP 401", "credentials"), "credentials", "lb: HTTP 401"),
        (PermanentError("lb: bad"), "error", "lb: bad"),
        (TemporaryError("lb: timed out"), "unreachable", "lb: timed out"),
        (TemporaryError("lb: HTTP 429", 3.0, "rate_limited"), "rate_limited", "lb: HTTP 429"),
        (KeyError("boom"), "error", "lb: inspection failed: KeyError"),
    ],
)
def test_a_failed_read_is_a_problem_of_its_kind(error: Exception, kind: str, message: str) -> None:
    plan = evaluate([Failing("lb", error)], (EAST, WEST), EAST, always_ready, 60.0, Limits())
    inspection = plan.regions[0].inspections[1]
    assert (inspection.current, inspection.would_change) == (None, None)
    assert [(p.kind, p.message) for p in inspection.problems] == [(kind, message)]


def test_document_shape() -> None:
    plan = evaluate([MemoryAction("dns", {})], (EAST, WEST), EAST, always_ready, 60.0, Limits(),
                    clock=lambda: T0)  # fmt: skip
    document = plan.to_json()
    assert document["evaluated_at"] == "2027-01-15T08:00:00.000Z"
    assert set(document) >= {"evaluated_at", "regions"}
    region = document["regions"][WEST]
    assert set(region) >= {"ready", "actions"}
    for entry in region["actions"]:
        assert set(entry) >= {"action", "ready", "current", "desired", "would_change", "problems"}


def test_staleness_and_selection() -> None:
    document = {**evaluate([], (EAST, WEST), EAST, lagging, 60.0, Limits()).to_json()}
    evaluated = document["evaluated_at_unix"]
    assert judged(document, evaluated + 10, 210)["stale"] is False
    assert judged(document, evaluated + 211, 210)["stale"] is True
    assert stale_after(60) == 210
    assert select(document, WEST)["ready"] is False
    assert select(document, EAST) == {**document, "regions": {}, "ready": None}


def test_plan_file_is_empty_and_stale_until_written(tmp_path: Path) -> None:
    now = [T0]
    plan_file = PlanFile(tmp_path / "plan", 30.0, clock=lambda: now[0])
    assert plan_file.read() == {
        "evaluated_at": None,
        "evaluated_at_unix": None,
        "ready": None,
        "regions": {},
        "age_seconds": None,
        "stale": True,
    }
    plan = evaluate([], (EAST, WEST), EAST, always_ready, 60.0, Limits(), clock=lambda: T0)
    plan_file.write(plan.to_json())
    assert plan_file.read()["stale"] is False
    now[0] += 31
    assert plan_file.read()["stale"] is True
    (tmp_path / "plan" / "plan.json").write_text("{half")
    assert plan_file.read()["evaluated_at"] is None


def test_plan_file_is_redacted_and_owner_only(tmp_path: Path) -> None:
    secret = "dop_v1_0123456789abcdef"
    plan_file = PlanFile(tmp_path / "plan", 30.0, redact=lambda t: t.replace(secret, "[redacted]"))
    plan_file.write({"evaluated_at": "x", "problem": f"HTTP 401: token {secret} refused"})

    text = plan_file.path.read_text()
    assert secret not in text and "token [redacted] refused" in text
    assert stat.S_IMODE(plan_file.path.stat().st_mode) == 0o600


def test_host_lock_has_one_holder_and_frees_on_release(tmp_path: Path) -> None:
    first, second = HostLock(tmp_path / "plan.lock"), HostLock(tmp_path / "plan.lock")
    assert first.try_acquire() and first.held
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


class Active:
    """A store that only knows the active region, which the test moves."""

    def __init__(self, region: str) -> None:
        self.region = region

    def state(self) -> Any:
        return SimpleNamespace(active_region=self.region)


def runner(tmp_path: Path, store: Any, timer: list[float]) -> PlanRunner:
    source = PlanSource(config(), store, always_ready, lambda: [MemoryAction("dns", {})])
    plan_file = PlanFile(tmp_path / "plan", stale_after(10.0))
    return PlanRunner(source, plan_file, 10.0, jitter=lambda: 1.0, timer=lambda: timer[0])


def test_runner_evaluates_at_once_then_each_interval_and_when_the_active_region_moves(
    tmp_path: Path,
) -> None:
    timer, store = [0.0], Active(EAST)
    plans = runner(tmp_path, store, timer)
    first = plans.run_once()
    assert first is not None and [r.region for r in first.regions] == [WEST]
    assert plans.file.read()["regions"].keys() == {WEST}
    timer[0] = 9.9
    assert plans.run_once() is None
    store.region = WEST  # a failover completed: plan the way back now, not in 10 s
    moved = plans.run_once()
    assert moved is not None and [r.region for r in moved.regions] == [EAST]
    assert plans.run_once() is None
    timer[0] = 20.0
    assert plans.run_once() is not None
    plans.stop()


def test_runner_without_the_lock_never_evaluates(tmp_path: Path) -> None:
    holder = HostLock(tmp_path / "plan" / "plan.lock")
    assert holder.try_acquire()
    waiting = runner(tmp_path, Active(EAST), [0.0])
    assert waiting.run_once() is None
    assert not (tmp_path / "plan" / "plan.json").exists()
    holder.release()  # as when the holder's process dies: the kernel frees its flock
    assert waiting.run_once() is not None
    waiting.stop()


def document_with(ready: dict[str, dict[str, bool]], active: str = EAST) -> dict[str, Any]:
    return {
        "evaluated_at": "2027-01-15T08:00:00.000Z",
        "evaluated_at_unix": T0,
        "duration_seconds": 0.25,
        "active_region": active,
        "ready": all(all(r.values()) for r in ready.values()),
        "stale": False,
        "age_seconds": 1.0,
        "regions": {
            region: {
                "ready": all(actions.values()),
                "kind": "failover",
                "actions": [{"action": a, "ready": ok} for a, ok in actions.items()],
            }
            for region, actions in ready.items()
        },
    }


def series(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


def test_metrics_from_the_plan_nan_for_the_active_region_and_before_any_evaluation() -> None:
    registry = CollectorRegistry()
    metrics = ResponderMetrics(registry, (EAST, WEST), ["dns"])
    metrics.refresh_plan({"regions": {}}, EAST)
    before = series(registry)
    assert math.isnan(before['responder_plan_ready{action="dns",region="eu-west-1"}'])
    assert before["responder_plan_evaluated_timestamp_seconds"] == 0

    metrics.refresh_plan(document_with({WEST: {"readiness": True, "dns": False}}), EAST)
    after = series(registry)
    assert after['responder_plan_ready{action="readiness",region="eu-west-1"}'] == 1
    assert after['responder_plan_ready{action="dns",region="eu-west-1"}'] == 0
    assert math.isnan(after['responder_plan_ready{action="dns",region="us-east-1"}'])
    assert after["responder_plan_evaluated_timestamp_seconds"] == T0
    assert after["responder_plan_evaluation_duration_seconds"] == 0.25
    # After a failover, before the next evaluation: the new active region is not a candidate.
    metrics.refresh_plan(document_with({WEST: {"readiness": True, "dns": False}}), WEST)
    assert math.isnan(series(registry)['responder_plan_ready{action="dns",region="eu-west-1"}'])


def test_site_check_series_only_where_sites_are_configured() -> None:
    document = document_with({WEST: {"readiness": True, "site": False, "dns": True}})
    with_sites, without = CollectorRegistry(), CollectorRegistry()
    ResponderMetrics(with_sites, (EAST, WEST), ["dns"], sites=True).refresh_plan(document, EAST)
    ResponderMetrics(without, (EAST, WEST), ["dns"]).refresh_plan(document, EAST)
    assert series(with_sites)['responder_plan_ready{action="site",region="eu-west-1"}'] == 0
    assert not any('action="site"' in name for name in series(without))


def test_exit_codes() -> None:
    ready = document_with({WEST: {"readiness": True}})
    assert plan_exit(ready, None) == EXIT_OK
    assert plan_exit(document_with({WEST: {"readiness": False}}), None) == EXIT_NOT_READY
    assert plan_exit({**ready, "stale": True}, None) == EXIT_UNKNOWN
    assert plan_exit({"evaluated_at": None, "ready": None, "stale": True}, None) == EXIT_UNKNOWN
    assert plan_exit(select(ready, EAST), EAST) == EXIT_OK  # the active region: nothing to plan


def test_text_reads_like_terraform_plan() -> None:
    document = evaluate(
        [
            MemoryAction("www", {"www": {"data": "203.0.113.10", "ttl": 60}}),
            Checked("lb", {}, Problem(MISSING, "lb: load balancer 4de7 does not exist")),
            Checked("r53", {}, Problem(TTL, "r53: TTL 3600 s", "warning")),
        ],
        (EAST, WEST),
        EAST,
        always_ready,
        60.0,
        Limits(),
    ).to_json()
    document.update(age_seconds=2.0, stale=False, evaluator="host:1", interval_seconds=60)
    text = render.plan(document)
    lines = text.splitlines()
    assert lines[0].endswith("(2.0 s ago) by host:1; active region us-east-1")
    assert "failover to eu-west-1: NOT READY (1 problem(s)); 3 action(s) would change" in lines
    assert "  ~ www (memory): ready, would change" in lines
    assert '      data: "203.0.113.10" -> null' in lines
    assert "      problem [missing]: lb: load balancer 4de7 does not exist" in lines
    assert "      warning [ttl]: r53: TTL 3600 s" in lines
    assert "      canary readable, data at risk 1.5 s (RPO 60 s)" in lines
    assert "STALE" in render.plan({**document, "stale": True})
    assert "not evaluated yet" in render.plan({"evaluated_at": None})


class Flaky(Active):
    """An Active store that can go down, counting its reads."""

    def __init__(self, region: str) -> None:
        super().__init__(region)
        self.down = False
        self.reads = 0

    def state(self) -> Any:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("the store is down")
        return super().state()


def test_runner_thread_retries_a_failing_store_at_its_own_pace(tmp_path: Path) -> None:
    timer, store = [0.0], Flaky(EAST)
    source = PlanSource(config(), store, always_ready, lambda: [MemoryAction("dns", {})])
    plans = PlanRunner(source, PlanFile(tmp_path / "plan", 30.0), 1.0, check_seconds=0.05,
                       jitter=lambda: 1.0, timer=lambda: timer[0])  # fmt: skip
    plans.start()
    try:
        wait_until(lambda: plans.file.read()["evaluated_at"] is not None, 30, 0.01, "a plan")
        store.down, timer[0] = True, 100.0  # an evaluation is overdue and every read fails
        reads, started = store.reads, time.monotonic()
        time.sleep(0.5)  # measuring a rate: how many reads half a second holds
        elapsed = time.monotonic() - started
    finally:
        plans.stop()
    assert store.reads - reads <= elapsed / 0.05 + 3, "the loop spins on a failing store"


def test_each_evaluation_compares_every_action_with_the_active_regions_desired_state() -> None:
    world = {"dns": {"region": WEST}, "lb": {"region": EAST}}  # dns changed by hand
    actions: list[Action] = [
        Writes("dns", world),
        Writes("lb", world),
        Failing("env", TemporaryError("timed out")),
    ]
    plan = evaluate(actions, REGIONS, EAST, always_ready, 60.0, Limits(), clock=lambda: T0)
    document = plan.to_json()
    assert document["drift"] == [
        {"action": "dns", "current": {"region": WEST}, "desired": {"region": EAST}}
    ]
    assert (document["drift_checked"], document["drift_unknown"]) == (["dns", "lb"], ["env"])
    assert world == {"dns": {"region": WEST}, "lb": {"region": EAST}}  # never repaired


def state_with(active: str, running: bool = False) -> Any:
    return SimpleNamespace(active_region=active, in_progress=object() if running else None)


def test_drift_metric_one_zero_and_no_sample_while_a_transition_runs() -> None:
    registry = CollectorRegistry()
    metrics = ResponderMetrics(registry, (EAST, WEST), ["dns", "lb"])
    document = {
        **document_with({WEST: {"dns": True}}),
        "drift": [{"action": "dns", "current": 1, "desired": 2}],
        "drift_checked": ["dns", "lb"],
        "drift_unknown": ["env"],
    }
    metrics.drift.refresh(document, state_with(EAST))
    found = series(registry)
    assert found['responder_action_drift{action="dns"}'] == 1
    assert found['responder_action_drift{action="lb"}'] == 0
    assert 'responder_action_drift{action="env"}' not in found  # unreadable: no sample
    metrics.drift.refresh(document, state_with(EAST, running=True))
    assert not [s for s in series(registry) if s.startswith("responder_action_drift")]
    metrics.drift.refresh(document, state_with(WEST))  # made for another active region
    assert not [s for s in series(registry) if s.startswith("responder_action_drift")]
    text = render.drift_lines({"evaluated_at": "t", "actions": document["drift"], "unknown": []})
    assert "DRIFT dns: is 1, the active region wants 2" in "\n".join(text)
    assert "ddb-responder repair --reason" in "\n".join(text)


def test_status_text_names_an_attempt_in_flight() -> None:
    running = {
        "result": "in_progress",
        "in_flight": {
            "action": "www",
            "attempt": 2,
            "started_at": "2027-01-15T08:00:00.000Z",
            "holder": "web-1:42:ab",
        },
    }
    (line,) = render.trouble_lines(running)
    assert line == (
        "  in flight: www attempt 2 since 2027-01-15T08:00:00.000Z (by web-1:42:ab): "
        "skip and abort wait for it"
    )
