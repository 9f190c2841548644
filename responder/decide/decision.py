"""The decision: a pure function of alerts, state, policy and readiness. No I/O, no clock.

Two steps, so live readiness reads happen only when they can matter:

    checks = candidates(alerts, state, policy, regions, now)      # which regions to read
    readiness = {c.target: checker.check(c) for c in checks}      # the caller's I/O
    decision = decide(alerts, state, policy, regions, readiness, now)

Operator requests use operator_candidates() and decide_operator() the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ddb_failover.config import Policy
from ddb_failover.consistency import EVENTUAL, STRONG
from responder.model.alerts import (
    FAILBACK_READY,
    LAST_WRITE_SUCCESS,
    REGION_DOWN,
    SITE_DOWN_ACTIVE,
    Alert,
    format_time,
)
from responder.state.records import Cause, DecidedKind, State, TransitionKind

HOUR = 3600.0
# The active region is down: its DynamoDB, or its WordPress. Both fail over.
DOWN_ALERTS = (REGION_DOWN, SITE_DOWN_ACTIVE)
DecisionKind = Literal[
    "failover", "failback", "manual", "switchover", "practice", "ignored", "blocked", "duplicate"
]


class UnknownRegion(ValueError):
    """An operator asked for a region that is not configured; reject, record nothing."""


@dataclass(frozen=True)
class Check:
    """A readiness check the caller must run: can target take over from source?"""

    target: str
    source: str
    source_last_healthy: float  # Unix seconds; data at risk is measured up to here


@dataclass(frozen=True)
class SiteAnswer:
    """What a region's WordPress answered its health check (regions[].site), read live."""

    url: str
    expect_status: int
    status: int | None  # None: no HTTP answer at all
    error: str = ""  # why there was no answer: timeout, connection refused, ...

    @property
    def ok(self) -> bool:
        """True when the site answered the expected status."""
        return self.status == self.expect_status

    def describe(self) -> str:
        """The answer in words, for reasons and plan problems."""
        if self.status is None:
            return f"site {self.url} did not answer ({self.error or 'no answer'})"
        return f"site {self.url} answered {self.status} (expected {self.expect_status})"

    def to_json(self) -> dict[str, Any]:
        """JSON form for decision responses and evidence."""
        return {
            "url": self.url,
            "expect_status": self.expect_status,
            "status": self.status,
            "error": self.error,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Readiness:
    """The live readiness of one target region, measured at decision time."""

    region: str
    canary_ok: bool
    data_at_risk_seconds: float | None  # None: no heartbeat from the source seen
    detail: str = ""  # why the canary read failed, when it did
    site: SiteAnswer | None = None  # None: no site configured for the region
    # Every table is strongly consistent: RPO 0, no replication-lag gate (ddb_failover.consistency).
    strong: bool = False
    write_ok: bool | None = None  # the write probe of its strong tables; None: none was made
    write_detail: str = ""  # why that write failed, when it did

    @property
    def write_failed(self) -> bool:
        """True when a write probe was made and failed."""
        return self.write_ok is False

    def dynamodb_problem(self, rpo_seconds: float) -> str | None:
        """Why this region's DynamoDB must not take traffic, or None."""
        if not self.canary_ok:
            return f"{self.region}: canary read failed ({self.detail or 'unknown error'})"
        if self.write_failed:
            return f"{self.region}: write probe failed ({self.write_detail or 'unknown error'})"
        if self.strong:
            return None  # every write is already in the other members: nothing at risk
        if self.data_at_risk_seconds is None:
            return f"{self.region}: replication lag unknown (no heartbeat from the source)"
        if self.data_at_risk_seconds > rpo_seconds:
            return (
                f"{self.region}: data at risk {self.data_at_risk_seconds:.1f}s "
                f"exceeds RPO {rpo_seconds:g}s"
            )
        return None

    def site_problem(self) -> str | None:
        """Why this region's WordPress must not take traffic, or None (also with no site)."""
        if self.site is None or self.site.ok:
            return None
        return f"{self.region}: {self.site.describe()}"

    def problem(self, rpo_seconds: float) -> str | None:
        """Why this region must not take traffic (DynamoDB, then its site), or None."""
        found = [p for p in (self.dynamodb_problem(rpo_seconds), self.site_problem()) if p]
        if len(found) < 2:
            return found[0] if found else None
        return f"{found[0]}; {found[1].removeprefix(f'{self.region}: ')}"

    def to_json(self) -> dict[str, Any]:
        """JSON form for decision responses."""
        return {
            "region": self.region,
            "canary_ok": self.canary_ok,
            "data_at_risk_seconds": self.data_at_risk_seconds,
            "detail": self.detail,
            "site": self.site.to_json() if self.site is not None else None,
            "consistency": STRONG if self.strong else EVENTUAL,
            "write_ok": self.write_ok,
            "write_detail": self.write_detail,
        }


@dataclass(frozen=True)
class OperatorRequest:
    """An operator-driven transition to a region (POST /api/v1/failover)."""

    to_region: str
    by: str
    reason: str
    force: bool = False  # skip dwell and the hourly cap; readiness still applies


@dataclass(frozen=True)
class Decision:
    """What to do and why. Transitions have kind failover, failback or manual."""

    kind: DecisionKind
    reason: str
    cause: Cause
    region: str | None = None  # the region the alerts were about
    from_region: str | None = None
    to_region: str | None = None
    transition_kind: TransitionKind | None = None  # set for transitions and blocked ones
    data_at_risk_seconds: float | None = None
    freeze: bool = False  # the store must freeze itself (hourly cap reached)
    readiness: tuple[Readiness, ...] = ()
    source_last_healthy: float | None = None  # readiness is measured up to here
    automatic: bool = True  # from alerts; False for an operator's request
    dwell_overridden: str | None = None  # why a failover went ahead within the minimum dwell

    @property
    def is_transition(self) -> bool:
        """True when a transition should be recorded and reconciled."""
        return self.kind in ("failover", "failback", "manual", "switchover", "practice")

    def to_json(self) -> dict[str, Any]:
        """JSON form for the webhook's 202 answer."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "region": self.region,
            "from_region": self.from_region,
            "to_region": self.to_region,
            "transition_kind": self.transition_kind,
            "data_at_risk_seconds": self.data_at_risk_seconds,
            "freeze": self.freeze,
            "cause": self.cause.to_json(),
            "readiness": [r.to_json() for r in self.readiness],
            "dwell_overridden": self.dwell_overridden,
        }


@dataclass(frozen=True)
class _Intent:
    """A transition the alerts ask for, before the safety gates and readiness."""

    kind: DecidedKind
    source: str
    targets: tuple[str, ...]
    cause: Cause
    source_last_healthy: float
    automatic: bool
    force: bool = False
    back: bool = False  # a practice run's way home: its hold, not dwell, says when


def alert_cause(alerts: Sequence[Alert]) -> Cause:
    """The Cause recorded for alerts: name, fingerprint, region and start of each."""
    return Cause(
        alerts=tuple(
            {
                "alertname": a.alertname,
                "fingerprint": a.fingerprint,
                "region": a.region or "",
                "status": a.status,
                "starts_at": format_time(a.starts_at),
                "key": a.key,
            }
            for a in alerts
        )
    )


def _last_healthy(alerts: Sequence[Alert]) -> float:
    """When the source was last known healthy: the annotation, else the alerts' start.

    The latest annotated moment wins (it makes the data at risk larger, the safe side);
    startsAt, later than the real outage by the alert's `for:` window, only when no
    alert carries the annotation.
    """
    annotated = []
    for alert in alerts:
        try:
            value = float(alert.annotations.get(LAST_WRITE_SUCCESS, ""))
        except ValueError:
            continue
        if value > 0:
            annotated.append(value)
    if annotated:
        return max(annotated)
    return max(a.starts_at.timestamp() for a in alerts)


def _intent(
    alerts: Sequence[Alert], state: State, policy: Policy, regions: Sequence[str], now: float
) -> _Intent | Decision:
    """What the alerts ask for, or the final decision when they ask for nothing."""
    ours = [a for a in alerts if a.alertname in (*DOWN_ALERTS, FAILBACK_READY)]
    if not ours:
        names = sorted({a.alertname for a in alerts})
        reason = f"no failover alert (got {', '.join(names) or 'none'})"
        return Decision("ignored", reason, alert_cause(alerts))
    firing = [a for a in ours if a.status == "firing"]
    if not firing:
        return Decision("ignored", "alerts resolved", alert_cause(ours))
    active = state.active_region
    down = [a for a in firing if a.alertname in DOWN_ALERTS]
    down_active = [a for a in down if a.region == active]
    if down_active:
        known_down = {a.region for a in down}
        targets = tuple(r for r in regions if r != active and r not in known_down)
        return _Intent(
            "failover", active, targets, alert_cause(down_active), _last_healthy(down_active), True
        )
    primary = regions[0]
    ready = [a for a in firing if a.alertname == FAILBACK_READY and a.region == primary]
    if ready and primary in {a.region for a in down}:
        return Decision(
            "ignored", f"failback ready but {primary} is also reported down", alert_cause(ready)
        )
    if ready and active != primary:
        if policy.failback == "manual":
            return Decision(
                "ignored",
                "failback policy is manual: only an operator fails back",
                alert_cause(ready),
                region=primary,
                to_region=primary,
                transition_kind="failback",
            )
        return _Intent("failback", active, (primary,), alert_cause(ready), now, True)
    if ready:
        return Decision(
            "ignored", f"{primary} is already active", alert_cause(ready), region=primary
        )
    if down:
        regions_down = sorted({a.region or "?" for a in down})
        return Decision(
            "ignored",
            f"region {', '.join(regions_down)} is not active (active is {active})",
            alert_cause(down),
            region=regions_down[0],
        )
    other = sorted({a.region or "?" for a in firing})
    return Decision(
        "ignored", f"failback ready for {', '.join(other)}, not the primary", alert_cause(firing)
    )


def _stopped(intent: _Intent, kind: DecisionKind, reason: str, freeze: bool = False) -> Decision:
    """A decision that stops intent, keeping what it was about."""
    return Decision(
        kind,
        reason,
        intent.cause,
        region=intent.source if intent.kind == "failover" else None,
        from_region=intent.source,
        to_region=intent.targets[0] if len(intent.targets) == 1 else None,
        transition_kind=intent.kind,
        freeze=freeze,
    )


def _gates(intent: _Intent, state: State, policy: Policy, now: float) -> Decision | None:
    """The safety checks before readiness; a Decision when one stops the transition."""
    running = state.in_progress
    if running is not None:
        # The same alerts, or the same move asked again (e.g. another table's alert).
        same = bool(intent.cause.keys & running.cause.keys) or (
            running.kind == intent.kind and running.from_region == intent.source
        )
        kind: DecisionKind = "duplicate" if same else "ignored"
        if not intent.automatic:
            kind = "blocked"
        return _stopped(intent, kind, f"transition {running.id} already in progress")
    last = state.last_transition
    if last is not None and intent.cause.keys & last.cause.keys:
        return _stopped(
            intent, "duplicate", f"already handled by transition {last.id} ({last.result})"
        )
    if intent.automatic and state.frozen is not None:
        return _stopped(intent, "blocked", f"frozen by {state.frozen.by}: {state.frozen.reason}")
    if intent.force:
        return None
    within = _within_dwell(state, policy, now)
    if within is not None and not _escapes_dwell(intent):
        return _stopped(intent, "blocked", f"dwell: {within}")
    started = sum(1 for t in state.recent_starts if now - t < HOUR)
    if started >= policy.max_transitions_per_hour:
        # Automatic flapping needs a human: freeze (not in dry run, which changes nothing).
        freeze = intent.automatic and not policy.dry_run
        return _stopped(
            intent,
            "blocked",
            f"cap: {started} transitions in the last hour, maximum is "
            f"{policy.max_transitions_per_hour}" + ("; frozen" if freeze else ""),
            freeze=freeze,
        )
    return None


def _within_dwell(state: State, policy: Policy, now: float) -> str | None:
    """How the last transition is within the minimum dwell, or None when it is not."""
    if state.last_completed_at is None:
        return None
    since = now - state.last_completed_at
    if since >= policy.min_dwell_seconds:
        return None
    return f"last transition completed {since:.0f}s ago, minimum is {policy.min_dwell_seconds:g}s"


def _escapes_dwell(intent: _Intent) -> bool:
    """Dwell stops flapping, not escapes: an automatic failover away from a down active region.

    Failbacks and operators' moves away from a healthy region still wait; the hourly cap,
    and the freeze that follows it, still stop a real flap. A practice run's leg home does
    not wait: the run's hold says how long it stays, and its first leg waited for dwell.
    """
    return (intent.automatic and intent.kind == "failover") or intent.back


def _dwell_overridden(intent: _Intent, state: State, policy: Policy, now: float) -> str | None:
    """Why intent goes ahead within the minimum dwell, when it does."""
    within = _within_dwell(state, policy, now)
    if within is None or intent.force or not _escapes_dwell(intent):
        return None
    alerts = sorted({a["alertname"] for a in intent.cause.alerts})
    return f"dwell overridden: {intent.source} is down ({', '.join(alerts)}); {within}"


def needs_approval(decision: Decision, policy: Policy) -> bool:
    """Whether a person must say yes before this transition acts (policy.approval).

    failover: automatic failovers wait (automatic failbacks, under failback: auto, do not);
    all: every transition, an operator's included.
    """
    if policy.approval == "all":
        return decision.is_transition
    if policy.approval == "failover":
        return decision.kind == "failover" and decision.automatic
    return False


def _checks(intent: _Intent) -> tuple[Check, ...]:
    return tuple(Check(t, intent.source, intent.source_last_healthy) for t in intent.targets)


def _choose(
    intent: _Intent,
    policy: Policy,
    readiness: Mapping[str, Readiness],
    dwell_overridden: str | None = None,
) -> Decision:
    """The first target in priority order that is ready, else blocked."""
    seen: list[Readiness] = []
    problems: list[str] = []
    for target in intent.targets:
        found = readiness.get(target)
        if found is None:
            problems.append(f"{target}: not checked")
            continue
        seen.append(found)
        problem = found.problem(policy.rpo_seconds)
        if problem is None:
            note = f" ({dwell_overridden})" if dwell_overridden else ""
            return Decision(
                intent.kind,
                f"{intent.kind} from {intent.source} to {target}{note}",
                intent.cause,
                region=intent.source if intent.kind == "failover" else None,
                from_region=intent.source,
                to_region=target,
                transition_kind=intent.kind,
                data_at_risk_seconds=found.data_at_risk_seconds,
                readiness=tuple(seen),
                source_last_healthy=intent.source_last_healthy,
                automatic=intent.automatic,
                dwell_overridden=dwell_overridden,
            )
        problems.append(problem)
    detail = "; ".join(problems) if problems else "every other region is down"
    blocked = _stopped(
        intent, "blocked", _quorum_lost(intent, seen) or f"no healthy region: {detail}"
    )
    return replace(blocked, readiness=tuple(seen))


def _quorum_lost(intent: _Intent, seen: Sequence[Readiness]) -> str | None:
    """The reason when writes fail in every replica region: the source down, each target's too.

    A strongly consistent table writes only while two of its three members take part; when
    no region can write, no failover can help, and a person must bring a member back.
    """
    if intent.kind != "failover" or not intent.automatic or not seen:
        return None
    if not all(r.write_failed for r in seen):
        return None
    targets = "; ".join(f"{r.region}: {r.write_detail or 'write failed'}" for r in seen)
    return (
        f"quorum lost: writes fail in every replica region ({intent.source} is down; {targets}); "
        "a strongly consistent table needs two of its three members"
    )


def candidates(
    alerts: Sequence[Alert], state: State, policy: Policy, regions: Sequence[str], now: float
) -> tuple[Check, ...]:
    """The readiness checks decide() needs, in priority order; empty when none can matter."""
    intent = _intent(alerts, state, policy, regions, now)
    if isinstance(intent, Decision) or _gates(intent, state, policy, now) is not None:
        return ()
    return _checks(intent)


def decide(
    alerts: Sequence[Alert],
    state: State,
    policy: Policy,
    regions: Sequence[str],
    readiness: Mapping[str, Readiness],
    now: float,
) -> Decision:
    """Decide what alerts call for; regions are in priority order (the first is primary)."""
    intent = _intent(alerts, state, policy, regions, now)
    if isinstance(intent, Decision):
        return intent
    stop = _gates(intent, state, policy, now)
    if stop is not None:
        return stop
    return _choose(intent, policy, readiness, _dwell_overridden(intent, state, policy, now))


def _operator_intent(
    request: OperatorRequest, state: State, regions: Sequence[str], now: float
) -> _Intent | Decision:
    if request.to_region not in regions:
        raise UnknownRegion(
            f"unknown region {request.to_region!r}; configured: {', '.join(regions)}"
        )
    cause = Cause(operator=request.by, reason=request.reason, force=request.force)
    # Going to the active region only makes sense as a repair: of a failed transition, or
    # (forced) of a split left by a skip or an abort, re-running every action there.
    repair = state.desired_region != state.active_region and state.in_progress is None
    if request.to_region == state.active_region and not repair and not request.force:
        return Decision(
            "ignored",
            f"{request.to_region} is already active (--force re-runs every action there)",
            cause,
            to_region=request.to_region,
        )
    return _Intent(
        "manual", state.active_region, (request.to_region,), cause, now, False, request.force
    )


def _operator(
    request: OperatorRequest, state: State, policy: Policy, regions: Sequence[str], now: float
) -> _Intent | Decision:
    """What an operator's request asks for after the gates: an intent, or the decision."""
    if isinstance(request, SwitchoverRequest):
        return _switchover(request, state, policy, regions, now)
    intent = _operator_intent(request, state, regions, now)
    if isinstance(intent, Decision):
        return intent
    return _gates(intent, state, policy, now) or intent


def operator_candidates(
    request: OperatorRequest, state: State, policy: Policy, regions: Sequence[str], now: float
) -> tuple[Check, ...]:
    """The readiness checks decide_operator() needs; UnknownRegion for a bad target."""
    found = _operator(request, state, policy, regions, now)
    return () if isinstance(found, Decision) else _checks(found)


def decide_operator(
    request: OperatorRequest,
    state: State,
    policy: Policy,
    regions: Sequence[str],
    readiness: Mapping[str, Readiness],
    now: float,
) -> Decision:
    """Decide an operator's request with the same safety checks (frozen does not apply,
    except to a switchover: a SwitchoverRequest)."""
    found = _operator(request, state, policy, regions, now)
    return found if isinstance(found, Decision) else _choose(found, policy, readiness)


@dataclass(frozen=True)
class SwitchoverRequest(OperatorRequest):
    """A planned switchover (POST /api/v1/switchover): force only moves past a drain that
    timed out, it opens no gate; plan_problem says why the target's plan is not ready."""

    plan_problem: str | None = None
    kind: Literal["switchover", "practice"] = "switchover"  # a practice run's leg is one too
    back: bool = False  # a practice run's leg home (dwell does not hold it)


def _switchover(
    request: SwitchoverRequest, state: State, policy: Policy, regions: Sequence[str], now: float
) -> _Intent | Decision:
    """From the active region, through the freeze, every gate and the target's plan."""
    if request.to_region not in regions:
        raise UnknownRegion(
            f"unknown region {request.to_region!r}; configured: {', '.join(regions)}"
        )
    cause = Cause(operator=request.by, reason=request.reason, force=request.force)
    if request.to_region == state.active_region:
        return Decision(
            "ignored",
            f"{request.to_region} is already active: nothing to switch over",
            cause,
            to_region=request.to_region,
            transition_kind=request.kind,
        )
    source, targets = state.active_region, (request.to_region,)
    intent = _Intent(request.kind, source, targets, cause, now, False, back=request.back)
    if state.frozen is not None and state.in_progress is None:
        frozen = state.frozen
        reason = f"frozen by {frozen.by}: {frozen.reason} (a switchover waits for unfreeze)"
        return _stopped(intent, "blocked", reason)
    stop = _gates(intent, state, policy, now)
    if stop is not None:
        return stop
    if request.plan_problem is not None:
        return _stopped(intent, "blocked", request.plan_problem)
    return intent
