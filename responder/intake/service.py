"""The glue behind the HTTP layer: notification in, decisions recorded, reconciler woken.

The web blueprints parse and authenticate; this module decides (through
responder.intake.handling, which holds no state in memory), counts, logs, and wakes
the runner when a transition was recorded. Errors from the store propagate as
StoreUnavailable for the web layer to answer 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ddb_failover.config import Config
from ddb_failover.logs import kv
from responder.actions.base import Action
from responder.decide.decision import (
    Check,
    Decision,
    OperatorRequest,
    SwitchoverRequest,
    UnknownRegion,
    alert_cause,
)
from responder.decide.evidence import Seen
from responder.execute import approval as approvals
from responder.execute import operations
from responder.execute.runner import Runner
from responder.intake.handling import (
    Handled,
    ReadinessFn,
    Telling,
    handle_alerts,
    handle_operator,
    refuse_witness,
)
from responder.metrics import ResponderMetrics
from responder.model.alerts import Alert, Bounds, Notification
from responder.notify.sender import Notifier
from responder.plan.plan_file import PlanFile, not_ready, select
from responder.plan.plan_runner import PlanRunner
from responder.records import report
from responder.state.records import Json, State, TransitionRecord
from responder.state.store import Refused, StateStore

log = logging.getLogger(__name__)
UNKNOWN_REGION = "unknown region"


@dataclass
class Service:
    """Everything a request needs, built once per process by create_app()."""

    config: Config
    store: StateStore
    actions: Sequence[Action]
    metrics: ResponderMetrics
    readiness: ReadinessFn
    runner: Runner
    clock: Callable[[], float]
    plan_file: PlanFile
    plan_runner: PlanRunner
    telling: Telling = field(default_factory=Telling)
    notifier: Notifier | None = None

    @property
    def bounds(self) -> Bounds:
        """How much one notification may carry, from responder.limits."""
        limits = self.config.responder.limits
        return Bounds(
            limits.max_alerts,
            limits.max_labels,
            limits.max_label_chars,
            limits.max_annotation_chars,
        )

    def handle_notification(
        self, notification: Notification, received_at: float | None = None
    ) -> list[Handled]:
        """Decide and record what a notification calls for; one decision per group of alerts.

        received_at: when the request arrived (the report's "webhook received"); now if None.
        """
        known = set(self.config.region_names)
        unknown = [a for a in notification.alerts if a.region is not None and a.region not in known]
        ours = [a for a in notification.alerts if a.region is None or a.region in known]
        outcomes: list[Handled] = []
        if unknown:
            outcomes.append(self._ignore_unknown(unknown))
        if ours or not unknown:
            now = self.clock()
            arrived = now if received_at is None else received_at
            seen = Seen(arrived, tuple(ours), notification.external_url)
            handled = handle_alerts(
                ours, self.store, self.config, self.readiness, now, self.telling, seen
            )
            outcomes.append(handled)
            self._note_resolved(ours, now)
        for handled in outcomes:
            self._account(handled)
        return outcomes

    def _note_resolved(self, alerts: Sequence[Alert], now: float) -> None:
        """A transition waiting for approval whose alerts resolved says so; a person decides."""
        keys = {a.key for a in alerts if a.status == "resolved"}
        if not keys:
            return
        running = self.store.state().in_progress
        if running is None or not keys & running.cause.keys:
            return
        marked = approvals.resolved(running, now)
        if marked is not None:
            self.store.operate(
                running.id, running.revision, None, running.attempts, approval=marked
            )

    def approve(self, transition_id: str, by: str, reason: str) -> TransitionRecord:
        """A person's yes: readiness is checked again now; a target no longer ready blocks it."""
        now = self.clock()

        def change(record: TransitionRecord) -> operations.Change:
            approvals.waiting(record, now)
            decided = approvals.approve(record, by, reason, now, self.problem(record))
            assert decided.approval is not None
            if decided.approval.state != "approved":
                return decided
            after = replace(record, approval=decided.approval)
            return replace(decided, notices=tuple(self.telling.started(after, now)))

        record = operations.apply(self.store, change, transition_id)
        return self._commanded(record, "approve", by, reason)

    def decline(self, transition_id: str, by: str, reason: str) -> TransitionRecord:
        """A person's no: the transition ends declined, having changed nothing."""
        now = self.clock()
        record = operations.apply(
            self.store, lambda r: approvals.decline(r, by, reason, now), transition_id
        )
        return self._commanded(record, "decline", by, reason)

    def problem(self, record: TransitionRecord) -> str | None:
        """Why record's target may not take traffic now; None when it is ready."""
        approval = record.approval
        healthy = approval.source_last_healthy if approval else None
        source = record.from_region or record.to_region
        check = Check(record.to_region, source, healthy if healthy is not None else self.clock())
        return self.readiness(check).problem(self.config.responder.policy.rpo_seconds)

    def handle_operator(self, request: OperatorRequest) -> Handled:
        """Decide and record an operator's failover; UnknownRegion for a bad target."""
        now = self.clock()
        handled = handle_operator(
            request, self.store, self.config, self.readiness, now, self.telling, Seen(now)
        )
        self._account(handled)
        return handled

    def switchover(self, to_region: str, by: str, reason: str, force: bool = False) -> Handled:
        """Decide and record a planned switchover to to_region (fence, drain, move, unfence).

        The same gates as any transition, the freeze included, and the target's plan must
        be ready. force moves past a drain that timed out. UnknownRegion for a bad target.
        """
        problem = not_ready(self.plan_file.read(), to_region, self.store.state().active_region)
        return self.handle_operator(SwitchoverRequest(to_region, by, reason, force, problem))

    def retry(self, by: str, reason: str, transition_id: str | None = None) -> TransitionRecord:
        """Run the failing step of the transition in progress again now; Refused if none."""
        now = self.clock()
        record = operations.apply(
            self.store, lambda r: operations.retry(r, by, reason, now), transition_id
        )
        return self._commanded(record, "retry", by, reason)

    def skip(
        self, action: str, by: str, reason: str, transition_id: str | None = None
    ) -> TransitionRecord:
        """Record the failing step as skipped and go on; Refused if it is not the one failing."""
        now = self.clock()
        record = operations.apply(
            self.store, lambda r: operations.skip(r, action, by, reason, now), transition_id
        )
        return self._commanded(record, "skip", by, reason, action=action)

    def abort(
        self, by: str, reason: str, rollback: bool, transition_id: str | None = None
    ) -> TransitionRecord:
        """Stop the transition in progress (rolling applied steps back first, if asked)."""
        now = self.clock()
        record = operations.apply(
            self.store, lambda r: operations.abort(r, by, reason, rollback, now), transition_id
        )
        record = self._commanded(record, "abort", by, reason, rollback=rollback)
        if record.approval is not None and record.approval.state == "declined":
            # It was waiting for approval: nothing to undo, so it ends now, not at a later pass
            # (when another worker holds the lease, its runner ends it within a poll).
            self.runner.run_now()
            record = self.store.transition(record.id)
        return record

    def repair(self, by: str, reason: str, action: str | None = None) -> TransitionRecord:
        """A repair transition to the active region (of one action, or all); Refused if busy."""
        names = [action] if action is not None else []
        policy = self.config.responder.policy
        now = self.clock()
        for _ in range(operations.ATTEMPTS):
            state = self.store.state()
            new = operations.repair(
                state, by, reason, names, now, policy.transition_deadline_seconds, policy.dry_run
            )
            begun = self.store.begin_transition(
                new, state.version, lambda made: self.telling.started(made, now)
            )
            if begun is not None:
                self.metrics.decisions.labels("manual").inc()
                return self._commanded(begun, "repair", by, reason, action=action)
        raise Refused("the state kept changing under the repair; try again")

    def _commanded(
        self, record: TransitionRecord, op: str, by: str, reason: str, **extra: object
    ) -> TransitionRecord:
        log.warning(
            kv(event="operator_command", op=op, transition=record.id, by=by, reason=reason, **extra)
        )
        self.runner.wake()
        if self.notifier is not None:
            self.notifier.wake()
        return record

    def _ignore_unknown(self, alerts: Sequence[Alert]) -> Handled:
        """An alert about a region we do not manage is valid, and changes nothing."""
        regions = sorted({a.region or "" for a in alerts})
        reason = f"{UNKNOWN_REGION} {', '.join(regions)}: not in the configuration"
        cause = alert_cause(alerts)
        record = self.store.record_decision("ignored", reason, cause, region=regions[0])
        return Handled(Decision("ignored", reason, cause, region=regions[0]), record=record)

    def _account(self, handled: Handled) -> None:
        """Count, log, and wake the runner for one outcome."""
        decision = handled.decision
        kind = handled.record.kind if handled.record else decision.kind
        self.metrics.decisions.labels(kind).inc()
        if kind == "blocked" and decision.transition_kind is not None:
            self.metrics.transition(
                decision.transition_kind, decision.from_region, decision.to_region, "blocked"
            )
        if handled.transition is not None:
            self.runner.wake()
        if self.notifier is not None and (handled.transition is not None or kind == "blocked"):
            self.notifier.wake()  # only these queue notices
        level = logging.WARNING if kind == "blocked" else logging.INFO
        if kind != "blocked" and handled.record is not None and handled.record.count > 1:
            level = logging.DEBUG  # a repeat: its decision was logged; the history counts it
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            kv(
                event="decision",
                kind=kind,
                region=decision.region,
                from_region=decision.from_region,
                to_region=decision.to_region,
                fingerprints=",".join(decision.cause.fingerprints) or None,
                operator=decision.cause.operator,
                transition=handled.transition.id if handled.transition else None,
                decision_id=handled.record.id if handled.record else None,
                reason=handled.record.reason if handled.record else decision.reason,
            ),
        )

    def status(self) -> Json:
        """The /api/v1/status document: the store's status plus configuration facts."""
        state = self.store.state()
        out: dict[str, Any] = state.to_json()
        out["actions"] = action_status(self.store.action_results(), state.in_progress)
        policy = self.config.responder.policy
        out.update(
            primary_region=self.config.primary,
            regions=list(self.config.region_names),
            in_progress=state.in_progress.id if state.in_progress else None,
            dry_run=policy.dry_run,
            policy=policy.model_dump(mode="json"),
            configured_actions=[{"name": a.name, "type": a.type} for a in self.actions],
            plan_interval_seconds=self.config.responder.plan.interval_seconds,
            drift=drift_status(self.plan(), state),
        )
        return out

    def plan(self, to_region: str | None = None) -> Json:
        """The /api/v1/plan document: the replica's last evaluation, narrowed to to_region.

        UnknownRegion when to_region is not configured.
        """
        document = self.plan_file.read()
        if to_region is None:
            return document
        refuse_witness(self.config, to_region)
        if to_region not in self.config.region_names:
            configured = ", ".join(self.config.region_names)
            raise UnknownRegion(f"unknown region {to_region!r}; configured: {configured}")
        return select(document, to_region)

    def state(self) -> State:
        """The store's current snapshot."""
        return self.store.state()

    def report(self, transition_id: str) -> Json:
        """One transition's report (records.report); UnknownTransition when there is none."""
        record = self.store.transition(transition_id)
        return report.build(record, self.config.responder.report, self.clock())


def action_status(results: dict[str, Json], running: TransitionRecord | None) -> dict[str, Json]:
    """Each action's last journaled result, with the attempts of the step in trouble over it."""
    out = {name: dict(result) for name, result in results.items()}
    attempts = running.attempts if running is not None else None
    if running is None or attempts is None:
        return out
    entry = out.setdefault(attempts.action, {"region": None})
    entry.update(
        result="failed",
        at=attempts.to_json()["last_at"],
        transition_id=running.id,
        error=attempts.error,
        attempts=attempts.count,
        retry_at=attempts.to_json()["retry_at"],
        halted=attempts.halted,
    )
    return out


def drift_status(plan: Json, state: State) -> Json:
    """What the last plan evaluation found drifted from the active region; None while unknown.

    Unknown while a transition runs (its steps are the difference), before the first
    evaluation, when the plan is stale, or when it was made for another active region.
    """
    if (
        state.in_progress is not None
        or plan.get("stale")
        or plan.get("active_region") != state.active_region
    ):
        return None
    return {
        "evaluated_at": plan.get("evaluated_at"),
        "actions": list(plan.get("drift") or ()),
        "unknown": list(plan.get("drift_unknown") or ()),
    }
