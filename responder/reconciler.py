"""The reconciler: drives the recorded transition through its actions, one journaled step at a time.

Only the lease holder acts; each step is journaled with the lease's fencing token,
so a holder that lost its lease cannot record anything. Steps journaled as done
are skipped, so a transition resumed after a crash does not redo them.

Dry run: reconcile() reports `would_apply` (or `unchanged`) and changes nothing;
the transition completes as a dry-run record and the active region stays put.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ddb_failover.config import Retry
from ddb_failover.logs import kv
from responder.actions.base import Action, Transition, reconcile
from responder.errors import PermanentError, TemporaryError
from responder.state.base import (
    Lease,
    LeaseLost,
    StateStore,
    StepRecord,
    StepResult,
    TransitionRecord,
    UnknownTransition,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepEvent:
    """One action run, reported to on_step: every attempt, final or to be retried."""

    transition: TransitionRecord
    action: str
    result: StepResult  # applied, unchanged, would_apply, or failed
    attempt: int
    final: bool  # False for a temporary failure that will be retried
    error: str | None = None


def backoff(attempt: int, retry: Retry, rand: float, retry_after: float | None) -> float:
    """Seconds to wait before attempt+1: exponential, half jittered, at least retry_after."""
    ceiling = min(retry.max_backoff_seconds, retry.initial_backoff_seconds * 2 ** (attempt - 1))
    delay = ceiling / 2 + rand * ceiling / 2
    return max(delay, retry_after or 0.0)


def default_holder() -> str:
    """A lease holder id unique to this process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Failed(Exception):
    """A step failed for good; carries the journaled error text and attempts made."""

    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error = error
        self.attempts = attempts


class Reconciler:
    """Finishes the transition in progress; clock, sleep and randomness are injected."""

    def __init__(
        self,
        store: StateStore,
        actions: Sequence[Action],
        retry: Retry,
        *,
        holder: str | None = None,
        lease_seconds: float = 15.0,
        renew_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        on_step: Callable[[StepEvent], None] | None = None,
        on_finished: Callable[[TransitionRecord], None] | None = None,
    ) -> None:
        self.store = store
        self.actions = tuple(actions)
        self.retry = retry
        self.holder = holder or default_holder()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds or lease_seconds / 3
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._on_step = on_step
        self._on_finished = on_finished
        self._lease: Lease | None = None
        self._running = threading.Lock()  # one pass at a time per instance

    def run_once(self) -> TransitionRecord | None:
        """Take the lease and finish the transition in progress; the finished record, or None.

        None when there is nothing to do, another holder has the lease, or the
        lease was lost midway (the new holder resumes from the journal).
        StoreUnavailable propagates: the transition stays in progress for the next pass.
        """
        with self._running:
            return self._run_once()

    def _run_once(self) -> TransitionRecord | None:
        lease = self.store.acquire_lease(self.holder, self.lease_seconds)
        if lease is None:
            return None
        self._lease = lease
        try:
            running = self.store.state().in_progress
            if running is None:
                return None
            return self._drive(running)
        except (LeaseLost, UnknownTransition) as exc:
            log.warning(kv(event="reconciler_stopped", holder=self.holder, error=str(exc)))
            return None
        finally:
            self._release()

    def _release(self) -> None:
        if self._lease is None:
            return
        try:
            self.store.release_lease(self._lease)
        except Exception as exc:  # an expiring lease frees itself; do not mask the real outcome
            log.warning(kv(event="lease_release_failed", error=str(exc)))
        self._lease = None

    def _renew(self) -> int:
        assert self._lease is not None
        self._lease = self.store.renew_lease(self._lease, self.lease_seconds)
        return self._lease.token

    def _drive(self, record: TransitionRecord) -> TransitionRecord:
        transition = Transition(
            record.id, record.kind, record.from_region, record.to_region, record.dry_run
        )
        done = self.store.completed_steps(record.id)
        log.info(
            kv(
                event="transition_resume" if done else "transition_start",
                transition=record.id,
                kind=record.kind,
                from_region=record.from_region,
                to_region=record.to_region,
                dry_run=record.dry_run,
            )
        )
        for action in self.actions:
            if action.name in done:
                continue
            try:
                self._step(action, transition, record)
            except _Failed as failed:
                token = self._renew()
                step = StepRecord(
                    action.name,
                    "failed",
                    error=failed.error,
                    at=self._clock(),
                    attempts=failed.attempts,
                )
                self.store.journal_step(record.id, step, token)
                finished = self.store.finish_transition(
                    record.id, "failed", token, f"{action.name}: {failed.error}"
                )
                self._finished(finished)
                return finished
        finished = self.store.finish_transition(record.id, "completed", self._renew())
        self._finished(finished)
        return finished

    def _step(self, action: Action, transition: Transition, record: TransitionRecord) -> None:
        """Run one action with retries and journal its outcome; _Failed when it gives up."""
        attempts = self.retry.max_attempts
        for attempt in range(1, attempts + 1):
            self._renew()
            try:
                with self._keepalive():
                    outcome = reconcile(action, transition)
            except TemporaryError as exc:
                if attempt == attempts:
                    self._event(record, action.name, "failed", attempt, True, str(exc))
                    raise _Failed(f"gave up after {attempt} attempts: {exc}", attempt) from exc
                self._event(record, action.name, "failed", attempt, False, str(exc))
                self._wait(backoff(attempt, self.retry, self._rand(), exc.retry_after))
                continue
            except PermanentError as exc:
                self._event(record, action.name, "failed", attempt, True, str(exc))
                raise _Failed(str(exc), attempt) from exc
            except Exception as exc:  # a bug in an action must not wedge the transition
                error = f"unexpected {type(exc).__name__}: {exc}"
                log.exception(kv(event="action_crashed", action=action.name))
                self._event(record, action.name, "failed", attempt, True, error)
                raise _Failed(error, attempt) from exc
            step = StepRecord(
                outcome.action,
                outcome.result,
                outcome.before,
                outcome.after,
                at=self._clock(),
                attempts=attempt,
            )
            self.store.journal_step(record.id, step, self._renew())
            self._event(record, action.name, outcome.result, attempt, True, None)
            return

    @contextmanager
    def _keepalive(self) -> Iterator[None]:
        """Renew the lease every renew_seconds while an action runs.

        A slow but live holder keeps its lease; a paused or partitioned one cannot
        renew, loses it, and is refused at its next renewal or journal write.
        The thread is joined before the caller touches the lease again.
        """
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.renew_seconds):
                try:
                    self._renew()
                except LeaseLost:
                    return  # the journal write after the action says so
                except Exception as exc:  # a store blip: the next tick may get through
                    log.warning(kv(event="lease_renew_failed", holder=self.holder, error=str(exc)))

        thread = threading.Thread(target=renew, name="lease-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _wait(self, delay: float) -> None:
        """Sleep delay seconds, renewing the lease often enough to keep it."""
        chunk = max(self.lease_seconds / 3, 0.01)
        while delay > 0:
            self._sleep(min(delay, chunk))
            delay -= chunk
            self._renew()

    def _event(
        self,
        record: TransitionRecord,
        action: str,
        result: StepResult,
        attempt: int,
        final: bool,
        error: str | None,
    ) -> None:
        level = logging.INFO if result != "failed" else logging.WARNING
        log.log(
            level,
            kv(
                event="step",
                transition=record.id,
                action=action,
                result=result,
                attempt=attempt,
                final=final,
                error=error,
            ),
        )
        if self._on_step is not None:
            try:
                self._on_step(StepEvent(record, action, result, attempt, final, error))
            except Exception:  # metrics must never stop a transition
                log.exception(kv(event="on_step_failed", action=action))

    def _finished(self, record: TransitionRecord) -> None:
        log.info(
            kv(
                event="transition_finished",
                transition=record.id,
                result=record.result,
                to_region=record.to_region,
                dry_run=record.dry_run,
                error=record.error,
            )
        )
        if self._on_finished is not None:
            try:
                self._on_finished(record)
            except Exception:
                log.exception(kv(event="on_finished_failed", transition=record.id))
