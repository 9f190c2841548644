"""The records the state store keeps: transitions and their steps, decisions, the freeze, the lease.

Times are Unix seconds (float) inside; JSON renders them as RFC 3339 UTC.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from responder.model.alerts import format_time

Json = Any
Phase = Literal[
    "steady",
    "failing_over",
    "failing_back",
    "blocked",
    "stalled",
    "frozen",
    "awaiting_approval",
]
PHASES: tuple[Phase, ...] = (
    "steady",
    "failing_over",
    "failing_back",
    "blocked",
    "stalled",
    "frozen",
    "awaiting_approval",
)
# What a decision can start; a repair only ever comes from an operator's repair command.
DecidedKind = Literal["failover", "failback", "manual", "switchover", "practice"]
TransitionKind = Literal[DecidedKind, "repair"]
# failed: only transitions recorded before permanent errors stalled instead of failing.
# declined: a person (or the approval timeout) said no; blocked: the target was no longer
# ready when the approval came.
TransitionResult = Literal["in_progress", "completed", "failed", "aborted", "declined", "blocked"]
StepResult = Literal["applied", "unchanged", "would_apply", "failed", "skipped"]
DecisionKind = Literal["ignored", "blocked", "duplicate"]
OperationKind = Literal["retry", "skip", "abort", "approve", "decline"]
DONE_RESULTS = frozenset({"applied", "unchanged", "would_apply", "skipped"})
# Results after which the outside object is known to be in the step's region.
VERIFIED_RESULTS = frozenset({"applied", "unchanged"})
# Runs of distinct errors a step keeps (the newest); the attempt count covers the rest.
MAX_FAILURE_RUNS = 10


def _time(value: float | None) -> str | None:
    return None if value is None else format_time(value)


@dataclass(frozen=True)
class Cause:
    """Why something happened: the alerts (by fingerprint and start) or an operator."""

    alerts: tuple[dict[str, str], ...] = ()  # each {alertname, fingerprint, region, starts_at, key}
    operator: str | None = None  # who asked, for operator-driven changes
    reason: str | None = None  # the operator's reason
    force: bool = False

    @property
    def keys(self) -> frozenset[str]:
        """Identities (fingerprint@starts_at) of the alerts in this cause."""
        return frozenset(a["key"] for a in self.alerts if "key" in a)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The alerts' fingerprints, in order."""
        return tuple(a["fingerprint"] for a in self.alerts)

    def to_json(self) -> Json:
        """The JSON form kept in the store and shown in the history."""
        out: dict[str, Any] = {"alerts": [dict(a) for a in self.alerts]}
        if self.operator is not None:
            out["operator"] = self.operator
            out["reason"] = self.reason
            out["force"] = self.force
        return out

    @classmethod
    def from_json(cls, data: Json) -> Cause:
        """Rebuild a Cause from to_json() output."""
        data = data or {}
        return cls(
            alerts=tuple(dict(a) for a in data.get("alerts", ())),
            operator=data.get("operator"),
            reason=data.get("reason"),
            force=bool(data.get("force", False)),
        )


@dataclass(frozen=True)
class Failure:
    """A run of failed attempts of one step that ended with the same error."""

    error: str
    count: int
    first_at: float
    last_at: float

    def to_json(self) -> Json:
        """JSON form for history and reports."""
        return {
            "error": self.error,
            "count": self.count,
            "first_at": _time(self.first_at),
            "last_at": _time(self.last_at),
        }

    def to_store(self) -> Json:
        """The stored form: times as Unix seconds."""
        return {
            "error": self.error,
            "count": self.count,
            "first_at": float(self.first_at),
            "last_at": float(self.last_at),
        }

    @classmethod
    def from_store(cls, data: Json) -> Failure:
        """Rebuild from to_store() output."""
        return cls(
            str(data["error"]), int(data["count"]), float(data["first_at"]), float(data["last_at"])
        )


def add_failure(failures: tuple[Failure, ...], error: str, at: float) -> tuple[Failure, ...]:
    """failures plus one failed attempt: the same error as the last extends its run."""
    last = failures[-1] if failures else None
    if last is not None and last.error == error:
        return (*failures[:-1], Failure(error, last.count + 1, last.first_at, at))
    return (*failures, Failure(error, 1, at, at))[-MAX_FAILURE_RUNS:]


def failures_from_store(data: Json) -> tuple[Failure, ...]:
    """Failure runs from their stored list (absent in records written before they were kept)."""
    return tuple(Failure.from_store(f) for f in data or ())


@dataclass(frozen=True)
class StepRecord:
    """One journaled action outcome within a transition."""

    action: str
    result: StepResult
    before: Json = None
    after: Json = None
    error: str | None = None
    at: float = 0.0
    attempts: int = 1
    fencing_token: int | None = None
    rollback: bool = False  # a step of an abort's rollback, back to the source region
    started_at: float | None = None  # when its first attempt began (at is when it ended)
    failures: tuple[Failure, ...] = ()  # the failed attempts before it ended

    def to_json(self) -> Json:
        """The history's step shape."""
        return {
            "action": self.action,
            "result": self.result,
            "before": self.before,
            "after": self.after,
            "error": self.error,
            "at": _time(self.at),
            "attempts": self.attempts,
            "rollback": self.rollback,
            "started_at": _time(self.started_at),
            "failures": [f.to_json() for f in self.failures],
        }


@dataclass(frozen=True)
class Attempts:
    """How the step being worked on is going: its failed attempts and what happens next."""

    action: str
    rollback: bool
    count: int  # failed attempts so far
    first_at: float
    last_at: float
    error: str
    retry_at: float | None  # None: stopped at a permanent error until an operator acts
    started_at: float | None = None  # when the step's first attempt began
    failures: tuple[Failure, ...] = ()  # every failed attempt so far, as runs of one error

    @property
    def halted(self) -> bool:
        """True when a permanent error stopped the step: only retry, skip or abort go on."""
        return self.retry_at is None

    @property
    def began(self) -> float:
        """When the step's first attempt began (its first failure, if that was not kept)."""
        return self.started_at if self.started_at is not None else self.first_at

    def to_json(self) -> Json:
        """JSON form, kept in the store and shown in status and history."""
        return {
            "action": self.action,
            "rollback": self.rollback,
            "count": self.count,
            "first_at": _time(self.first_at),
            "last_at": _time(self.last_at),
            "error": self.error,
            "retry_at": _time(self.retry_at),
            "halted": self.halted,
            "started_at": _time(self.started_at),
            "failures": [f.to_json() for f in self.failures],
        }

    def to_store(self) -> Json:
        """The stored form: times as Unix seconds."""
        return {
            "action": self.action,
            "rollback": self.rollback,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "error": self.error,
            "retry_at": self.retry_at,
            "started_at": self.started_at,
            "failures": [f.to_store() for f in self.failures],
        }

    @classmethod
    def from_store(cls, data: Json) -> Attempts | None:
        """Rebuild from to_store() output; None for None."""
        if not data:
            return None
        return cls(
            action=data["action"],
            rollback=bool(data.get("rollback", False)),
            count=int(data["count"]),
            first_at=float(data["first_at"]),
            last_at=float(data["last_at"]),
            error=str(data["error"]),
            retry_at=None if data.get("retry_at") is None else float(data["retry_at"]),
            started_at=None if data.get("started_at") is None else float(data["started_at"]),
            failures=failures_from_store(data.get("failures")),
        )


@dataclass(frozen=True)
class InFlight:
    """An attempt running now: its step, number and start, and the worker and lease running it.

    Set before the attempt starts and cleared when it returns (or, after the worker died,
    by the next lease holder): while it is set, skip refuses that step and abort waits.
    """

    action: str
    attempt: int
    started_at: float
    holder: str
    token: int  # the fencing token of the lease it runs under
    rollback: bool = False

    def to_json(self) -> Json:
        """JSON form for status and history."""
        return {
            "action": self.action,
            "attempt": self.attempt,
            "started_at": _time(self.started_at),
            "holder": self.holder,
            "rollback": self.rollback,
        }

    def to_store(self) -> Json:
        """The stored form: time as Unix seconds."""
        return asdict(self)

    @classmethod
    def from_store(cls, data: Json) -> InFlight | None:
        """Rebuild from to_store() output; None for None."""
        if not data:
            return None
        return cls(
            action=str(data["action"]),
            attempt=int(data["attempt"]),
            started_at=float(data["started_at"]),
            holder=str(data["holder"]),
            token=int(data["token"]),
            rollback=bool(data.get("rollback", False)),
        )


@dataclass(frozen=True)
class Operation:
    """An operator's command on a transition in progress: who, why, when."""

    op: OperationKind
    by: str
    reason: str
    at: float
    action: str | None = None  # the step skipped
    rollback: bool = False  # abort: drive applied steps back first

    def to_json(self) -> Json:
        """JSON form for history and status."""
        return {
            "op": self.op,
            "by": self.by,
            "reason": self.reason,
            "at": _time(self.at),
            "action": self.action,
            "rollback": self.rollback,
        }

    def to_store(self) -> Json:
        """The stored form: time as Unix seconds."""
        return {**self.to_json(), "at": self.at}

    @classmethod
    def from_store(cls, data: Json) -> Operation:
        """Rebuild from to_store() output."""
        return cls(
            op=data["op"],
            by=data["by"],
            reason=data["reason"],
            at=float(data["at"]),
            action=data.get("action"),
            rollback=bool(data.get("rollback", False)),
        )


ApprovalState = Literal["waiting", "approved", "declined", "blocked", "expired"]


@dataclass(frozen=True)
class Approval:
    """A person's yes or no on a transition, asked for before it acts (policy.approval)."""

    state: ApprovalState
    deadline_at: float  # waiting past it: on_timeout decides
    on_timeout: Literal["proceed", "abort"]
    requested_by: str | None = None  # the operator token that asked; it may not approve
    source_last_healthy: float | None = None  # readiness is re-checked against it
    preview: tuple[Json, ...] = ()  # per action: current, desired, would_change (read live)
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    alerts_resolved_at: float | None = None  # the alerts behind it resolved while it waited

    @property
    def waiting(self) -> bool:
        """True until someone (or the timeout) decides."""
        return self.state == "waiting"

    def to_json(self) -> Json:
        """JSON form for status, history and the page."""
        return {
            "state": self.state,
            "deadline_at": _time(self.deadline_at),
            "on_timeout": self.on_timeout,
            "requested_by": self.requested_by,
            "preview": list(self.preview),
            "decided_by": self.decided_by,
            "decided_at": _time(self.decided_at),
            "reason": self.reason,
            "alerts_resolved_at": _time(self.alerts_resolved_at),
        }

    def to_store(self) -> Json:
        """The stored form: times as Unix seconds."""
        return asdict(self)

    @classmethod
    def from_store(cls, data: Json) -> Approval | None:
        """Rebuild from to_store() output; None for None."""
        if not data:
            return None
        return cls(**{**data, "preview": tuple(data.get("preview") or ())})


@dataclass(frozen=True)
class TransitionRecord:
    """A recorded transition: written before anything outside changes."""

    id: str
    kind: TransitionKind
    from_region: str | None
    to_region: str
    result: TransitionResult
    started_at: float
    finished_at: float | None
    cause: Cause
    data_at_risk_seconds: float | None
    dry_run: bool
    error: str | None = None
    steps: tuple[StepRecord, ...] = ()
    deadline_at: float | None = None  # past it, a transition still in progress is stalled
    attempts: Attempts | None = None  # the step in trouble, if one is
    operations: tuple[Operation, ...] = ()
    revision: int = 0  # grows on every write; operator commands compare-and-set on it
    approval: Approval | None = None  # set when policy.approval asked a person first
    evidence: Json = (
        None  # what the decision saw (responder.decide.evidence); None before it was kept
    )
    in_flight: InFlight | None = None  # the attempt running now, if one is

    @property
    def in_progress(self) -> bool:
        """True until finish_transition() is called."""
        return self.result == "in_progress"

    @property
    def abort(self) -> Operation | None:
        """The abort an operator asked for, if any."""
        return next((o for o in reversed(self.operations) if o.op == "abort"), None)

    @property
    def scope(self) -> frozenset[str] | None:
        """The actions a repair is limited to (`repair --action`); None: every action."""
        if self.kind != "repair" or not isinstance(self.evidence, dict):
            return None
        names = (self.evidence.get("repair") or {}).get("actions")
        return frozenset(names) if names else None

    @property
    def rolling_back(self) -> bool:
        """True once an abort with rollback was asked for."""
        abort = self.abort
        return abort is not None and abort.rollback

    @property
    def deadline(self) -> float | None:
        """When it stalls: its deadline, counted from the approval when it had to wait for one."""
        if self.deadline_at is None:
            return None
        approval = self.approval
        if approval is not None and approval.decided_at is not None:
            return self.deadline_at + max(0.0, approval.decided_at - self.started_at)
        return self.deadline_at

    def stalled(self, now: float) -> bool:
        """In progress but stopped at a permanent error, or past its deadline."""
        if not self.in_progress or (self.approval is not None and self.approval.waiting):
            return False
        if self.attempts is not None and self.attempts.halted:
            return True
        deadline = self.deadline
        return deadline is not None and now > deadline

    def done_steps(self, rollback: bool = False) -> dict[str, StepRecord]:
        """Steps journaled as done in one direction, by action (the newest wins)."""
        return {
            s.action: s for s in self.steps if s.rollback == rollback and s.result in DONE_RESULTS
        }

    def to_json(self) -> Json:
        """The history's transition shape (contract keys plus dry_run and error)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "from_region": self.from_region,
            "to_region": self.to_region,
            "result": self.result,
            "started_at": _time(self.started_at),
            "finished_at": _time(self.finished_at),
            "cause": self.cause.to_json(),
            "data_at_risk_seconds": self.data_at_risk_seconds,
            "dry_run": self.dry_run,
            "error": self.error,
            "steps": [s.to_json() for s in self.steps],
            "deadline_at": _time(self.deadline),
            "attempts": self.attempts.to_json() if self.attempts else None,
            "operations": [o.to_json() for o in self.operations],
            "approval": self.approval.to_json() if self.approval else None,
            "evidence": self.evidence,
            "in_flight": self.in_flight.to_json() if self.in_flight else None,
        }


@dataclass(frozen=True)
class DecisionRecord:
    """A decision that changed nothing: ignored, blocked or duplicate."""

    id: str
    at: float
    kind: DecisionKind
    reason: str
    cause: Cause
    region: str | None = None  # the region the alert was about, if any
    to_region: str | None = None  # the target that was wanted, if any
    transition_kind: TransitionKind | None = None  # what it would have been, for blocked
    count: int = 1  # notifications that made this decision: repeats add to it (repeat_key)
    last_at: float | None = None  # when the newest of them came; None: only the first

    def to_json(self) -> Json:
        """The history's decision shape."""
        return {
            "id": self.id,
            "at": _time(self.at),
            "kind": self.kind,
            "reason": self.reason,
            "region": self.region,
            "to_region": self.to_region,
            "transition_kind": self.transition_kind,
            "cause": self.cause.to_json(),
            "count": self.count,
            "last_at": _time(self.last_at if self.last_at is not None else self.at),
        }


def repeat_key(kind: DecisionKind, reason: str, cause: Cause) -> str | None:
    """What makes a decision a repeat of an earlier one; None when it never is.

    A repeat has the same kind, the same reason text and the same alerts (each alert's
    key, fingerprint@startsAt, and status): Alertmanager re-sending a notification on
    repeat_interval, or after a failover, for the same firing episode. Operators'
    requests are never repeats: each is its own act.
    """
    if cause.operator is not None or not cause.alerts:
        return None
    alerts = sorted(f"{a.get('key', a.get('fingerprint'))}/{a.get('status')}" for a in cause.alerts)
    text = json.dumps([kind, reason, alerts], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class NewTransition:
    """What begin_transition() records."""

    kind: TransitionKind
    from_region: str | None
    to_region: str
    cause: Cause
    data_at_risk_seconds: float | None
    dry_run: bool
    deadline_at: float | None = None
    approval: Approval | None = None
    evidence: Json = None  # what the decision saw: alerts, readiness (responder.decide.evidence)


@dataclass(frozen=True)
class Freeze:
    """Who froze automatic transitions, when and why."""

    by: str
    reason: str
    at: float
    automatic: bool = False

    def to_json(self) -> Json:
        """JSON form for the status endpoint."""
        return {
            "by": self.by,
            "reason": self.reason,
            "at": _time(self.at),
            "automatic": self.automatic,
        }


@dataclass(frozen=True)
class State:
    """The responder's current state as one consistent snapshot.

    version changes on every begin/finish/freeze/unfreeze; begin_transition()
    compares it, so a decision made on a stale snapshot cannot start a transition.
    """

    active_region: str
    desired_region: str
    phase: Phase
    frozen: Freeze | None
    in_progress: TransitionRecord | None
    last_transition: TransitionRecord | None  # newest, any result, steps included
    last_completed_at: float | None  # finish time of the newest completed transition
    recent_starts: tuple[float, ...]  # start times of transitions of the last hour or more
    version: int

    def to_json(self) -> Json:
        """The status shape without actions (see StateStore.status())."""
        return {
            "active_region": self.active_region,
            "desired_region": self.desired_region,
            "phase": self.phase,
            "frozen": self.frozen is not None,
            "freeze": self.frozen.to_json() if self.frozen else None,
            "last_transition": self.last_transition.to_json() if self.last_transition else None,
        }


@dataclass(frozen=True)
class Lease:
    """The reconciler lease: only the holder of the current token may journal steps."""

    holder: str
    token: int  # fencing token, strictly increasing across holders
    expires_at: float
