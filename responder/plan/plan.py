"""The failover plan: for each region that could become active, what a move there meets.

evaluate() asks every action to inspect() a move to each candidate region (every
region but the active one: each secondary, and the primary for failback) and runs
the same live readiness check a decision runs, as the action "readiness" (its
DynamoDB) and, with regions[].site configured, the action "site" (its WordPress,
problem kind `site`). It only
reads, through what it is given; where the result goes is the caller's business.
The evaluation is advisory: a decision re-checks readiness live when it is made.
Its DigitalOcean reads keep a failover's reserve of the API budget (responder.plan.budget).

Drift: the same reads are compared with the desired state of the ACTIVE region. An
object that differs (changed by hand, or left half-moved) is drift; one whose read
failed is unknown. Nothing repairs it automatically: a person runs `repair`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ddb_failover.consistency import RPO_ZERO
from ddb_failover.logs import kv
from responder.actions.base import Action
from responder.actions.do_budget import Budget, Caller, calling_as
from responder.actions.fence import Fence
from responder.actions.inspection import ERROR, READINESS, SITE, Inspection, Limits, Problem
from responder.decide.decision import Check, Readiness
from responder.model.alerts import format_time
from responder.plan import budget as budgets

log = logging.getLogger(__name__)

READINESS_ACTION = "readiness"
SITE_ACTION = "site"
ReadinessFn = Callable[[Check], Readiness]


@dataclass(frozen=True)
class RegionPlan:
    """Everything a move to one region would meet: readiness first, then each action."""

    region: str
    kind: str  # "failover", or "failback" for the primary
    inspections: tuple[Inspection, ...]

    @property
    def ready(self) -> bool:
        """True when no inspection found an error."""
        return all(i.ready for i in self.inspections)

    def to_json(self) -> dict[str, Any]:
        """{"ready", "kind", "actions": [...]}."""
        return {
            "ready": self.ready,
            "kind": self.kind,
            "actions": [i.to_json() for i in self.inspections],
        }


@dataclass(frozen=True)
class Drift:
    """An action whose live state differs from what the active region wants."""

    action: str
    current: Any
    desired: Any

    def to_json(self) -> dict[str, Any]:
        """{"action", "current", "desired"}."""
        return {"action": self.action, "current": self.current, "desired": self.desired}


@dataclass(frozen=True)
class DriftCheck:
    """Every action's live state against the active region's desired state."""

    checked: tuple[str, ...] = ()  # actions read and compared
    unknown: tuple[str, ...] = ()  # actions whose read (or desired state) failed
    drift: tuple[Drift, ...] = ()  # of the checked ones, those that differ


@dataclass(frozen=True)
class Plan:
    """One evaluation of the plan for every candidate region."""

    evaluated_at: float
    duration_seconds: float
    active_region: str
    regions: tuple[RegionPlan, ...]
    digitalocean: budgets.BudgetReport | None = None  # None: no DigitalOcean action
    # Each table's consistency, the witnesses and why they are no target (ddb_failover.consistency).
    consistency: dict[str, Any] | None = None
    drift: DriftCheck = DriftCheck()
    fences: tuple[tuple[Inspection, bool], ...] = ()  # each switchover fence; True: left on

    @property
    def ready(self) -> bool:
        """True when every candidate region is ready."""
        return all(r.ready for r in self.regions)

    def to_json(self) -> dict[str, Any]:
        """The /api/v1/plan document, as evaluated."""
        return {
            "evaluated_at": format_time(self.evaluated_at),
            "evaluated_at_unix": self.evaluated_at,
            "duration_seconds": round(self.duration_seconds, 3),
            "active_region": self.active_region,
            "ready": self.ready,
            "regions": {r.region: r.to_json() for r in self.regions},
            "digitalocean": self.digitalocean.to_json() if self.digitalocean else None,
            "consistency": self.consistency,
            "drift": [d.to_json() for d in self.drift.drift],
            "drift_checked": list(self.drift.checked),
            "drift_unknown": list(self.drift.unknown),
            "fences": [fence_json(i, left_on) for i, left_on in self.fences],
        }


def fence_json(inspection: Inspection, left_on: bool) -> dict[str, Any]:
    """A fence as the plan shows it: left_on when it holds the fenced value (between
    switchovers that is drift: writes are refused)."""
    return {
        "action": inspection.action,
        "current": inspection.current,
        "desired": inspection.desired,
        "left_on": left_on,
        "problems": [p.to_json() for p in inspection.problems],
    }


def candidates(active: str, regions: Sequence[str]) -> tuple[str, ...]:
    """The regions that could become active, in priority order: all but the active one."""
    return tuple(r for r in regions if r != active)


def readiness_inspection(readiness: Readiness, rpo_seconds: float) -> Inspection:
    """The region itself, as the action "readiness": the decision's own check and verdict."""
    current: dict[str, Any] = {
        "canary_ok": readiness.canary_ok,
        "data_at_risk_seconds": readiness.data_at_risk_seconds,
    }
    desired: dict[str, Any] = {"canary_ok": True, "data_at_risk_seconds_at_most": rpo_seconds}
    if readiness.strong:  # no lag gate: the region must take a write instead
        current.update(write_ok=readiness.write_ok, rpo=RPO_ZERO)
        desired = {"canary_ok": True, "write_ok": True, "rpo": RPO_ZERO}
    problem = readiness.dynamodb_problem(rpo_seconds)
    problems = (Problem(READINESS, problem),) if problem else ()
    return Inspection(READINESS_ACTION, READINESS_ACTION, current, desired, False, problems)


def site_inspection(readiness: Readiness) -> Inspection | None:
    """The region's WordPress, as the action "site": the decision's own GET; None with no site."""
    answer = readiness.site
    if answer is None:
        return None
    current = {"status": answer.status, "error": answer.error or None}
    problem = readiness.site_problem()
    problems = (Problem(SITE, problem),) if problem else ()
    desired = {"status": answer.expect_status}
    return Inspection(SITE_ACTION, SITE_ACTION, current, desired, False, problems)


def since_last_alive(
    found: Mapping[str, Readiness],
    active: str,
    readiness: ReadinessFn,
    rpo_seconds: float,
    now: float,
) -> dict[str, Readiness]:
    """Each region's data at risk up to the active region's last sign of life, when it is down.

    Measured up to now, data at risk grows for as long as the active region is down and
    writes nothing, while a decision measures it up to when the region went down (its
    alert's start). So when a region is over the RPO, the active region is read too (only
    then: this read rarely matters); if it does not answer, the newest of its heartbeats
    any region holds stands for the moment it went down.
    """
    risks = [r.data_at_risk_seconds for r in found.values() if r.data_at_risk_seconds is not None]
    if not risks or max(risks) <= rpo_seconds:
        return dict(found)
    if readiness(Check(target=active, source=active, source_last_healthy=now)).canary_ok:
        return dict(found)  # it serves: the regions really are that far behind
    newest = min(risks)
    return {
        region: r
        if r.data_at_risk_seconds is None
        else replace(r, data_at_risk_seconds=r.data_at_risk_seconds - newest)
        for region, r in found.items()
    }


def drift(actions: Sequence[Action], active: str, planned: Sequence[RegionPlan]) -> DriftCheck:
    """Each action's state as the plan read it, against what the active region wants.

    The inspections of any candidate read the same objects; the first candidate's are used.
    """
    read = {i.action: i for i in planned[0].inspections} if planned else {}
    checked, unknown, drifted = [], [], []
    for action in actions:
        inspection = read.get(action.name)
        try:
            desired = action.desired(active)
        except Exception:  # a configuration that cannot say: unknown, as a failed read is
            log.exception(kv(event="drift_desired_failed", action=action.name))
            inspection = None
        if inspection is None or inspection.would_change is None:
            unknown.append(action.name)
            continue
        checked.append(action.name)
        if inspection.current != desired:
            drifted.append(Drift(action.name, inspection.current, desired))
    return DriftCheck(tuple(checked), tuple(unknown), tuple(drifted))


def _fences_drift(check: DriftCheck, fenced: Sequence[tuple[Inspection, bool]]) -> DriftCheck:
    """check with the switchover's fences: one left on (fenced between switchovers) drifts."""
    read = [(i, left_on) for i, left_on in fenced if i.would_change is not None]
    return DriftCheck(
        (*check.checked, *(i.action for i, _ in read)),
        (*check.unknown, *(i.action for i, _ in fenced if i.would_change is None)),
        (*check.drift, *(Drift(i.action, i.current, i.desired) for i, left_on in read if left_on)),
    )


def _inspect(action: Action, region: str, limits: Limits) -> Inspection:
    """action.inspect(region); a crash is the action's bug, reported as a problem."""
    try:
        return action.inspect(region, limits)
    except Exception as exc:  # keep evaluating the other actions; the traceback is logged
        log.exception(kv(event="plan_inspect_crashed", action=action.name, region=region))
        problem = Problem(ERROR, f"{action.name}: inspection failed: {type(exc).__name__}")
        return Inspection(action.name, action.type, None, None, None, (problem,))


def evaluate(
    actions: Sequence[Action],
    regions: Sequence[str],
    active: str,
    readiness: ReadinessFn,
    rpo_seconds: float,
    limits: Limits,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.monotonic,
    budget: Budget | None = None,
    evaluator: str = "",
    fences: Sequence[Fence] = (),
) -> Plan:
    """Inspect a move to every candidate region; reads only, keeping DigitalOcean's reserve.

    budget is what DigitalOcean's answers said of the API budget (the actions' clients
    tell it); evaluator names this evaluation in its DigitalOcean requests (plan:NAME).
    fences: the switchover's fences as they must be now (open), read with the actions.
    """
    started, now = timer(), clock()
    caller = Caller(f"plan:{evaluator}", reserve=budgets.reserve(actions))
    with calling_as(caller):
        # Data at risk as if the active region failed now: its newest heartbeat seen there.
        checks = {
            region: readiness(Check(target=region, source=active, source_last_healthy=now))
            for region in candidates(active, regions)
        }
        found = since_last_alive(checks, active, readiness, rpo_seconds, now)
        planned = []
        for region in candidates(active, regions):
            inspections = [readiness_inspection(found[region], rpo_seconds)]
            site = site_inspection(found[region])
            if site is not None:
                inspections.append(site)
            inspections.extend(_inspect(action, region, limits) for action in actions)
            kind = "failback" if region == regions[0] else "failover"
            planned.append(RegionPlan(region, kind, tuple(inspections)))
        read = [(fence, _inspect(fence, active, limits)) for fence in fences]
        fenced = tuple((i, i.current is not None and fence.left_on(i.current)) for fence, i in read)
    report = budgets.report(budget, caller) if caller.reserve else None
    if report is not None and report.low:
        planned = [_warned(p, report.problem(), actions) for p in planned]
    found_drift = _fences_drift(drift(actions, active, planned), fenced)
    return Plan(
        now, timer() - started, active, tuple(planned), report, drift=found_drift, fences=fenced
    )


def _warned(planned: RegionPlan, problem: Problem, actions: Sequence[Action]) -> RegionPlan:
    """planned with problem on each DigitalOcean action's inspection."""
    calling = {a.name for a in actions if a.digitalocean_calls()}
    flagged = (
        budgets.flagged(i, problem) if i.action in calling else i for i in planned.inspections
    )
    return replace(planned, inspections=tuple(flagged))
