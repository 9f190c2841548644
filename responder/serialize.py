"""One writer at a time per SQLite file: threads and gunicorn workers queue on a file lock.

Correctness does not depend on it (SQLite's write lock and the store's
compare-and-set do that). It is about latency: SQLite's busy handler sleeps and
polls when writers collide, so a storm of notifications waits in growing sleeps;
a kernel file lock wakes the next waiter the moment the lock is free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from responder.state.base import (
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    Json,
    Lease,
    NewTransition,
    State,
    StateStore,
    StepRecord,
    TransitionKind,
    TransitionRecord,
)


class DecisionLock:
    """A process-wide lock, plus an flock on path when one is given (same-host backends)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def _descriptor(self) -> int | None:
        if self.path is None:
            return None
        # Open after fork, per process: an inherited descriptor would share the lock.
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block; best effort across processes if the file is unusable."""
        with self._thread_lock:
            try:
                fd = self._descriptor()
            except OSError:
                fd = None  # the store will report the real problem
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


class SerializedWrites(StateStore):
    """A StateStore whose writes queue on a DecisionLock; reads pass straight through."""

    def __init__(self, inner: StateStore, lock: DecisionLock) -> None:
        self.inner = inner
        self.lock = lock

    def state(self) -> State:
        return self.inner.state()

    def begin_transition(
        self, new: NewTransition, expected_version: int
    ) -> TransitionRecord | None:
        with self.lock.held():
            return self.inner.begin_transition(new, expected_version)

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
        with self.lock.held():
            return self.inner.record_decision(
                kind,
                reason,
                cause,
                region=region,
                to_region=to_region,
                transition_kind=transition_kind,
                freeze=freeze,
            )

    def journal_step(self, transition_id: str, step: StepRecord, fencing_token: int) -> None:
        with self.lock.held():
            self.inner.journal_step(transition_id, step, fencing_token)

    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        return self.inner.completed_steps(transition_id)

    def finish_transition(
        self,
        transition_id: str,
        result: Literal["completed", "failed"],
        fencing_token: int,
        error: str | None = None,
    ) -> TransitionRecord:
        with self.lock.held():
            return self.inner.finish_transition(transition_id, result, fencing_token, error)

    def transition(self, transition_id: str) -> TransitionRecord:
        return self.inner.transition(transition_id)

    def freeze(self, by: str, reason: str, automatic: bool = False) -> State:
        with self.lock.held():
            return self.inner.freeze(by, reason, automatic)

    def unfreeze(self, by: str, reason: str) -> State:
        with self.lock.held():
            return self.inner.unfreeze(by, reason)

    def history(self, limit: int = 50) -> Json:
        return self.inner.history(limit)

    def action_results(self) -> dict[str, Json]:
        return self.inner.action_results()

    def acquire_lease(self, holder: str, ttl_seconds: float) -> Lease | None:
        with self.lock.held():
            return self.inner.acquire_lease(holder, ttl_seconds)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        with self.lock.held():
            return self.inner.renew_lease(lease, ttl_seconds)

    def release_lease(self, lease: Lease) -> None:
        with self.lock.held():
            self.inner.release_lease(lease)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
