"""The reconciler's background thread in each process: contends for the lease; the holder acts.

Every gunicorn worker runs one. A worker that records a transition, or takes
an operator's command, wakes its own runner at once; the others poll: quickly
while a step is due (to take over if its holder dies), at the next attempt's
time while a step waits out its backoff, and slowly otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ddb_failover.logs import kv
from responder.execute.reconciler import Reconciler
from responder.model.loop import Loop
from responder.state.records import TransitionRecord
from responder.state.store import StateStore, StoreUnavailable

log = logging.getLogger(__name__)
# Pruning is cheap but not free: once an hour per process is plenty for a retention in days.
PRUNE_EVERY_SECONDS = 3600.0


class Runner(Loop):
    """Runs reconciler passes in a daemon thread: on wake(), and every interval otherwise."""

    name = "reconciler"

    def __init__(
        self,
        store: StateStore,
        reconciler: Reconciler,
        *,
        interval_seconds: float = 5.0,
        busy_interval_seconds: float = 0.5,
        retain_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.store = store
        self.reconciler = reconciler
        self.interval = interval_seconds
        self.busy_interval = busy_interval_seconds
        self.retain_seconds = retain_seconds
        self._clock = clock
        self._pruned_at: float | None = None
        self._pass_lock = threading.Lock()  # run_now() and the thread never overlap
        # A stray attempt that returned frees its step: the next pass goes on at once.
        reconciler.keeper.on_idle = self.wake

    def run_now(self) -> TransitionRecord | None:
        """One pass in the caller's thread: drive the transition in progress, if one is due."""
        with self._pass_lock:
            # A read first: the idle and waiting cases then cost no write to the store.
            due = self.reconciler.due_in(self.store.state())
            if due is None or due > 0:
                return None
            return self.reconciler.run_once()

    def prune_if_due(self) -> int:
        """Forget history older than the retention, at most once per PRUNE_EVERY_SECONDS."""
        now = self._clock()
        if self.retain_seconds is None:
            return 0
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return 0
        self._pruned_at = now
        gone = self.store.prune(now - self.retain_seconds)
        if gone:
            log.info(kv(event="history_pruned", records=gone, retain_seconds=self.retain_seconds))
        return gone

    def _next_wait(self) -> float:
        """How long to sleep: until the next attempt is due, between the two intervals."""
        due = self.reconciler.due_in(self.store.state())
        if due is None:
            return self.interval
        return min(max(due, self.busy_interval), self.interval)

    def round(self) -> float:
        """A pass, and pruning when due; the wait until the next attempt is due."""
        try:
            self.run_now()
            self.prune_if_due()
            return self._next_wait()
        except StoreUnavailable as exc:  # expected during an outage: one line, retry
            log.warning(kv(event="reconciler_store_unavailable", error=str(exc)))
        except Exception:  # a bug: keep the traceback, and keep the loop alive
            log.exception(kv(event="reconciler_pass_failed", holder=self.reconciler.holder))
        return self.interval
