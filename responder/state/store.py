"""The state store interface and its errors; every backend implements StateStore.

A store is safe to share between threads and between processes on its backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Literal

from responder.state.chain import AuditLog, Event
from responder.state.outbox import Announce, Notice
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    InFlight,
    Json,
    Lease,
    NewTransition,
    Operation,
    State,
    StepRecord,
    TransitionKind,
    TransitionRecord,
)


class StoreError(Exception):
    """Base of the state store's own errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used now; the webhook answers 503 so Alertmanager retries."""


class LeaseLost(StoreError):
    """The caller's fencing token is no longer current: another reconciler took over."""


class UnknownTransition(StoreError):
    """No transition has the given id, or it is no longer in progress."""


class Refused(StoreError):
    """An operator command that does not apply to the transition as it is now (HTTP 409)."""


class AttemptInFlight(Refused):
    """A command on a step whose attempt is running now: it waits for the attempt (HTTP 409)."""


class StateStore(ABC):
    """Durable responder state. Every method raises StoreUnavailable when the backend is down."""

    @abstractmethod
    def state(self) -> State:
        """A consistent snapshot of the current state."""

    @abstractmethod
    def begin_transition(
        self, new: NewTransition, expected_version: int, announce: Announce | None = None
    ) -> TransitionRecord | None:
        """Atomically record a transition if the state is still at expected_version.

        Compare-and-set: succeeds only when the version is unchanged and no transition
        is in progress; returns None to the loser of a race (record a duplicate then).
        Every write queues its notices (announce makes them of the written record, whose id
        only the write knows) in the outbox, in the same write as the change they report.
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
        announce: Announce | None = None,
    ) -> DecisionRecord:
        """Record a decision that changed nothing; with freeze, also freeze in the same write.

        A repeat (repeat_key() equal to the newest decision with that key) adds to that
        decision's count and last_at instead of adding a record, in one small write and
        no audit event; the answer is that decision. Its side effects (block, freeze)
        apply as for a new one.
        """

    @abstractmethod
    def journal_step(self, transition_id: str, step: StepRecord, fencing_token: int) -> None:
        """Append a step outcome and clear the attempts and the attempt in flight, in one write.

        LeaseLost when fencing_token is not the current lease's.
        """

    @abstractmethod
    def record_attempts(
        self,
        transition_id: str,
        attempts: Attempts,
        fencing_token: int,
        notices: Sequence[Notice] = (),
        in_flight: InFlight | None = None,
    ) -> None:
        """Record how the step in trouble is going, and the attempt still running (an attempt
        that outlived its timeout) or None; LeaseLost as journal_step()."""

    @abstractmethod
    def mark_in_flight(
        self, transition_id: str, in_flight: InFlight | None, fencing_token: int
    ) -> None:
        """Set (before an attempt starts) or clear (after it returned) the attempt in flight.

        Changes the transition's revision, so an operator command decided before is
        re-checked. Outside the audit chain: it records no outcome, only that one is
        pending. LeaseLost as journal_step().
        """

    @abstractmethod
    def operate(
        self,
        transition_id: str,
        expected_revision: int,
        operation: Operation | None,
        attempts: Attempts | None,
        step: StepRecord | None = None,
        approval: Approval | None = None,
        notices: Sequence[Notice] = (),
    ) -> TransitionRecord | None:
        """Apply an operator command to the transition in progress, compare-and-set.

        Appends operation, sets attempts (None clears them), appends step and replaces the
        approval when given, all in one write, only if the transition's revision is still
        expected_revision; None when it moved (read again and re-check). UnknownTransition
        when not in progress.
        """

    @abstractmethod
    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        """Forward steps journaled as done (applied, unchanged, would_apply, skipped)."""

    @abstractmethod
    def finish_transition(
        self,
        transition_id: str,
        result: Literal["completed", "failed", "aborted", "declined", "blocked"],
        fencing_token: int,
        error: str | None = None,
        notices: Sequence[Notice] = (),
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
    def notices(self, now: float, limit: int = 50) -> list[Notice]:
        """Queued notices with a delivery still pending (claimed ones too), oldest first."""

    @abstractmethod
    def claim_notice(self, notice_id: str, holder: str, until: float, now: float) -> Notice | None:
        """Take a notice to deliver until `until`; None when another holds it or none is due."""

    @abstractmethod
    def update_notice(self, notice: Notice, holder: str) -> None:
        """Write a claimed notice's deliveries back and release it; LeaseLost if not ours."""

    @abstractmethod
    def prune(self, before: float) -> int:
        """Forget decisions and finished transitions older than before (not the newest
        transition: the state derives from it); how many records went. A decision still
        repeating is forgotten too: its next repeat records it afresh.

        The audit chain loses the events only those records needed, keeps the last one
        removed as its anchor, and records the prune as an event of its own.
        """

    @abstractmethod
    def audit_log(self) -> AuditLog:
        """The audit chain and every record it covers, for `ddb-responder audit verify`."""

    @abstractmethod
    def audit_events(self, since: float = 0.0) -> Iterator[Event]:
        """The audit events appended at or after since (Unix seconds), oldest first."""

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
