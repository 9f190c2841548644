"""Glue between a request and the core: read state, check readiness, decide, record.

The web layer calls handle_alerts() for a webhook and handle_operator() for
POST /api/v1/failover, then wakes the reconciler when a transition was recorded.
Nothing here holds dedup state in memory: the store's compare-and-set does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ddb_failover import consistency
from ddb_failover.config import Config, Policy
from responder.decide.decision import (
    Check,
    Decision,
    OperatorRequest,
    Readiness,
    UnknownRegion,
    candidates,
    decide,
    decide_operator,
    needs_approval,
    operator_candidates,
)
from responder.decide.evidence import Seen
from responder.model.alerts import Alert
from responder.notify.notices import Announcer
from responder.state.outbox import Notice
from responder.state.records import (
    Approval,
    DecisionRecord,
    Freeze,
    Json,
    NewTransition,
    State,
    TransitionRecord,
)
from responder.state.store import StateStore

ReadinessFn = Callable[[Check], Readiness]
# Per action, current and desired state for a region, read live: what a person approves.
PreviewFn = Callable[[str], tuple[Json, ...]]
AUTO_FREEZE_BY = "responder"
# Losing the compare-and-set twice in a row means others are busy changing the state.
ATTEMPTS = 2


@dataclass(frozen=True)
class Handled:
    """The outcome of one request: its decision and what was recorded for it."""

    decision: Decision
    transition: TransitionRecord | None = None  # set when a transition was begun
    record: DecisionRecord | None = None  # set when a non-transition was recorded

    def to_json(self) -> dict[str, Any]:
        """The decision plus the ids of what was recorded, for a 202 answer."""
        out = self.decision.to_json()
        out["kind"] = self.record.kind if self.record else self.decision.kind
        out["reason"] = self.record.reason if self.record else self.decision.reason
        out["transition_id"] = self.transition.id if self.transition else None
        out["decision_id"] = self.record.id if self.record else None
        return out


def _readiness(
    checks: Sequence[Check], check: ReadinessFn, rpo: float, known: dict[str, Readiness]
) -> dict[str, Readiness]:
    """Check targets in priority order, stopping at the first ready one."""
    for item in checks:
        if item.target not in known:
            known[item.target] = check(item)
        if known[item.target].problem(rpo) is None:
            break
    return known


@dataclass(frozen=True)
class Telling:
    """What a recorded change needs besides the store: its notices, an approval's preview."""

    announcer: Announcer | None = None
    preview: PreviewFn | None = None

    def started(self, record: TransitionRecord, now: float) -> list[Notice]:
        return self.announcer.started(record, now) if self.announcer else []

    def blocked(self, record: DecisionRecord, now: float) -> list[Notice]:
        return self.announcer.blocked(record, now) if self.announcer else []


def _approval(decision: Decision, policy: Policy, telling: Telling, now: float) -> Approval | None:
    """The approval a transition waits for first, with its preview; None when none is needed."""
    if not needs_approval(decision, policy):
        return None
    assert decision.to_region is not None
    return Approval(
        state="waiting",
        deadline_at=now + policy.approval_timeout_seconds,
        on_timeout=policy.on_timeout,
        requested_by=decision.cause.operator,
        source_last_healthy=decision.source_last_healthy,
        preview=telling.preview(decision.to_region) if telling.preview else (),
    )


def _record(
    store: StateStore, decision: Decision, now: float, telling: Telling = Telling()
) -> Handled:
    freeze = None
    if decision.freeze:
        freeze = Freeze(AUTO_FREEZE_BY, decision.reason, now, automatic=True)
    kind = decision.kind
    assert kind in ("ignored", "blocked", "duplicate")
    record = store.record_decision(
        kind,
        decision.reason,
        decision.cause,
        region=decision.region,
        to_region=decision.to_region,
        transition_kind=decision.transition_kind,
        freeze=freeze,
        announce=lambda made: telling.blocked(made, now),
    )
    return Handled(decision, record=record)


def _handle(
    decide_with: Callable[[State, dict[str, Readiness]], Decision],
    checks_for: Callable[[State], Sequence[Check]],
    store: StateStore,
    config: Config,
    check: ReadinessFn,
    now: float,
    telling: Telling,
    seen: Seen | None = None,
) -> Handled:
    policy = config.responder.policy
    known: dict[str, Readiness] = {}
    decision: Decision | None = None
    for _ in range(ATTEMPTS):
        state = store.state()
        readiness = _readiness(checks_for(state), check, policy.rpo_seconds, known)
        decision = decide_with(state, readiness)
        if not decision.is_transition:
            return _record(store, decision, now, telling)
        assert decision.to_region is not None and decision.transition_kind is not None
        new = NewTransition(
            kind=decision.transition_kind,
            from_region=decision.from_region,
            to_region=decision.to_region,
            cause=decision.cause,
            data_at_risk_seconds=decision.data_at_risk_seconds,
            dry_run=policy.dry_run,
            deadline_at=now + policy.transition_deadline_seconds,
            approval=_approval(decision, policy, telling, now),
            evidence=seen.evidence(decision, policy.rpo_seconds) if seen else None,
        )
        begun = store.begin_transition(new, state.version, lambda made: telling.started(made, now))
        if begun is not None:
            return Handled(decision, transition=begun)
        # Lost the race: re-read and decide again; usually that says "duplicate".
    assert decision is not None
    lost = Decision(
        "duplicate",
        "lost the race: another request changed the state first",
        decision.cause,
        region=decision.region,
        from_region=decision.from_region,
        to_region=decision.to_region,
        transition_kind=decision.transition_kind,
    )
    return _record(store, lost, now, telling)


def refuse_witness(config: Config, region: str) -> None:
    """UnknownRegion naming region when it is a strong table's witness: never a target."""
    witnesses = consistency.witnesses(config)
    if region in witnesses:
        raise UnknownRegion(consistency.not_a_target(region, witnesses[region]))


def handle_alerts(
    alerts: Sequence[Alert],
    store: StateStore,
    config: Config,
    check: ReadinessFn,
    now: float,
    telling: Telling = Telling(),
    seen: Seen | None = None,
) -> Handled:
    """Decide and record what a notification's alerts call for; StoreUnavailable -> 503.

    seen: the notification as it arrived, kept as the evidence of a transition begun.
    """
    policy, regions = config.responder.policy, config.region_names
    return _handle(
        lambda state, ready: decide(alerts, state, policy, regions, ready, now),
        lambda state: candidates(alerts, state, policy, regions, now),
        store,
        config,
        check,
        now,
        telling,
        seen,
    )


def handle_operator(
    request: OperatorRequest,
    store: StateStore,
    config: Config,
    check: ReadinessFn,
    now: float,
    telling: Telling = Telling(),
    seen: Seen | None = None,
) -> Handled:
    """Decide and record an operator's failover; UnknownRegion (ValueError) -> 400."""
    refuse_witness(config, request.to_region)
    policy, regions = config.responder.policy, config.region_names
    return _handle(
        lambda state, ready: decide_operator(request, state, policy, regions, ready, now),
        lambda state: operator_candidates(request, state, policy, regions, now),
        store,
        config,
        check,
        now,
        telling,
        seen,
    )
