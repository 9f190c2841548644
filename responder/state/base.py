"""The state store interface and the records it keeps; every backend implements StateStore.

Times are Unix seconds (float) inside; JSON renders them as RFC 3339 UTC.
A store is safe to share between threads and between processes on its backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from responder.alerts import format_time

Json = Any
Phase = Literal["steady", "failing_over", "failing_back", "blocked"]
TransitionKind = Literal["failover", "failback", "manual"]
TransitionResult = Literal["in_progress", "completed", "failed"]
StepResult = Literal["applied", "unchanged", "would_apply", "failed"]
DecisionKind = Literal["ignored", "blocked", "duplicate"]
DONE_RESULTS = frozenset({"applied", "unchanged", "would_apply"})


class StoreError(Exception):
    """Base of the state store's own errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used now; the webhook answers 503 so Alertmanager retries."""


class LeaseLost(StoreError):
    """The caller's fencing token is no longer current: another reconciler took over."""


class UnknownTransition(StoreError):
    """No transition has the given id, or it is no longer in progress."""


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
        }


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

    @property
    def in_progress(self) -> bool:
        """True until finish_transition() is called."""
        return self.result == "in_progress"

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
        }


@dataclass(frozen=True)
class NewTransition:
    """What begin_transition() records."""

    kind: TransitionKind
    from_region: str | None
    to_region: str
    cause: Cause
    data_at_risk_seconds: float | None
    dry_run: bool


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


@dataclass
class PhaseInputs:
    """What phase() needs; kept separate so every backend derives the phase the same way."""

    frozen: bool
    in_progress: TransitionRecord | None
    last_transition: TransitionRecord | None
    last_blocked_at: float | None = None
    last_unfrozen_at: float | None = None


def blocks_phase(record: DecisionRecord) -> bool:
    """An automatic transition was blocked: the phase shows blocked until something changes."""
    return record.kind == "blocked" and record.transition_kind in ("failover", "failback")


def clears_block(record: DecisionRecord) -> bool:
    """The alerts behind a block resolved: the phase goes back to steady."""
    alerts = record.cause.alerts
    return bool(alerts) and all(a.get("status") == "resolved" for a in alerts)


def phase(inputs: PhaseInputs) -> Phase:
    """Derive the phase: blocked when frozen, after a failed transition, or while an
    automatic transition is blocked (until a transition, an unfreeze, or its alerts resolve).
    """
    if inputs.in_progress is not None:
        return "failing_back" if inputs.in_progress.kind == "failback" else "failing_over"
    if inputs.frozen:
        return "blocked"
    last = inputs.last_transition
    if last is not None and last.result == "failed":
        return "blocked"
    if inputs.last_blocked_at is not None:
        newer_than = max(
            (last.finished_at or last.started_at) if last else 0.0,
            inputs.last_unfrozen_at or 0.0,
        )
        if inputs.last_blocked_at > newer_than:
            return "blocked"
    return "steady"


class StateStore(ABC):
    """Durable responder state. Every method raises StoreUnavailable when the backend is down."""

    @abstractmethod
    def state(self) -> State:
        """A consistent snapshot of the current state."""

    @abstractmethod
    def begin_transition(
        self, new: NewTransition, expected_version: int
    ) -> TransitionRecord | None:
        """Atomically record a transition if the state is still at expected_version.

        Compare-and-set: succeeds only when the version is unchanged and no transition
        is in progress; returns None to the loser of a race (record a duplicate then).
        """

    @abstractmethod
    def record_decision(
        self,
        kind: DecisionKind,
        reason: str,
        cause: Cause,
        *,
        region: str | None = None,
        to_region: str | None = None,
        transition_kind: TransitionKind | None = None,
        freeze: Freeze | None = None,
    ) -> DecisionRecord:
        """Record a decision that changed nothing; with freeze, also freeze in the same write."""

    @abstractmethod
    def journal_step(self, transition_id: str, step: StepRecord, fencing_token: int) -> None:
        """Append a step outcome; LeaseLost when fencing_token is not the current lease's."""

    @abstractmethod
    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        """Steps journaled as done (applied, unchanged, would_apply), by action name."""

    @abstractmethod
    def finish_transition(
        self,
        transition_id: str,
        result: Literal["completed", "failed"],
        fencing_token: int,
        error: str | None = None,
    ) -> TransitionRecord:
        """Close a transition; completed and not dry-run moves active_region to its target."""

    @abstractmethod
    def transition(self, transition_id: str) -> TransitionRecord:
        """One transition with its steps; UnknownTransition when absent."""

    @abstractmethod
    def freeze(self, by: str, reason: str, automatic: bool = False) -> State:
        """Stop automatic transitions until unfreeze(); idempotent."""

    @abstractmethod
    def unfreeze(self, by: str, reason: str) -> State:
        """Resume automatic transitions; idempotent."""

    @abstractmethod
    def history(self, limit: int = 50) -> Json:
        """{"transitions": [...], "decisions": [...]}, each newest first, at most limit each."""

    @abstractmethod
    def action_results(self) -> dict[str, Json]:
        """Each action's last journaled step: {name: {result, at, transition_id, error}}."""

    @abstractmethod
    def acquire_lease(self, holder: str, ttl_seconds: float) -> Lease | None:
        """Take the reconciler lease if free, expired or already ours; None when held by another.

        A holder that takes over gets a new, larger fencing token; a holder that
        re-acquires its own live lease keeps its token.
        """

    @abstractmethod
    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        """Extend our lease; LeaseLost when it expired or another holder has it."""

    @abstractmethod
    def release_lease(self, lease: Lease) -> None:
        """Give the lease up if we still hold it (the token stays, so it keeps increasing)."""

    @abstractmethod
    def ping(self) -> None:
        """Cheap reachability check for /readyz; StoreUnavailable when not usable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; the default holds none."""

    def status(self) -> Json:
        """The /api/v1/status shape: state plus each action's last result."""
        out = self.state().to_json()
        out["actions"] = self.action_results()
        return out
