"""The keeper: no attempt outlives the lease it was started under.

An attempt runs in its own thread, bounded by the action's timeout_seconds; one that
hangs past it cannot be stopped from outside (a thread cannot be killed). So the
worker keeps the lease for as long as any of its attempt threads lives, renewing it
every renew_seconds: no other worker or replica may act meanwhile. When it cannot
renew (another holder took the lease, or the store stayed unreachable until the lease
ran out), the process exits at once (os._exit(75), EX_TEMPFAIL): the attempt dies
with it, command subprocesses die with it (PR_SET_PDEATHSIG), and gunicorn starts a
new worker. Between the lease running out and the exit, the fence's deadline
(responder.model.fence) refuses every outside write.

When an attempt that outlived its timeout (a stray) returns, its on_end callback runs
(the reconciler clears the in-flight marker) and the keeper lets the lease go unless a
reconciler pass is using it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from ddb_failover.logs import kv
from responder.model.fence import Deadline
from responder.state.records import Lease
from responder.state.store import LeaseLost, StateStore

log = logging.getLogger(__name__)
EXIT_LEASE_LOST = 75  # EX_TEMPFAIL: gunicorn's arbiter starts a fresh worker


class Attempt:
    """One attempt's thread, and what to do when it ends after its caller stopped waiting."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.ended = threading.Event()
        self.on_end: Callable[[Lease], None] | None = None


class Keeper:
    """Holds this worker's lease; renews it while any attempt thread lives; exits if it cannot."""

    def __init__(
        self,
        store: StateStore,
        holder: str,
        lease_seconds: float,
        renew_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        exit: Callable[[int], object] = os._exit,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.deadline = Deadline(0.0, clock)
        self.on_idle = on_idle
        self._clock = clock
        self._exit = exit
        self._lease: Lease | None = None
        self._attempts: list[Attempt] = []
        self._in_pass = False
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.exited: int | None = None  # the code passed to exit (seen when exit returns)

    @property
    def lease(self) -> Lease | None:
        """The lease this worker holds, if any."""
        with self._lock:
            return self._lease

    def busy(self) -> bool:
        """True while an attempt thread of this worker lives."""
        with self._lock:
            return any(not a.ended.is_set() for a in self._attempts)

    def acquire(self) -> Lease | None:
        """Take the lease for a reconciler pass; None when another holder has it."""
        lease = self.store.acquire_lease(self.holder, self.lease_seconds)
        with self._lock:
            if lease is not None:
                self._set(lease)
                self._in_pass = True
            return lease

    def renew(self) -> Lease:
        """Extend the lease now; LeaseLost when it is gone."""
        with self._lock:
            current = self._lease
        if current is None:
            raise LeaseLost("no lease held")
        renewed = self.store.renew_lease(current, self.lease_seconds)
        with self._lock:
            if self._lease is not None and self._lease.token == renewed.token:
                self._set(renewed)
        return renewed

    def end_pass(self) -> None:
        """The pass is over: give the lease up, unless an attempt still lives (kept till then)."""
        with self._lock:
            self._in_pass = False
            if any(not a.ended.is_set() for a in self._attempts):
                return
            lease, self._lease = self._lease, None
        self._release(lease)

    def start(self, target: Callable[[], None], name: str) -> Attempt:
        """Run target in an attempt thread; the lease is renewed until it returns."""
        attempt: Attempt

        def run() -> None:
            try:
                target()
            finally:
                with self._lock:
                    attempt.ended.set()
                    self._changed.notify_all()

        attempt = Attempt(threading.Thread(target=run, name=name, daemon=True))
        with self._lock:
            self._attempts.append(attempt)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._keep, name="lease-keeper", daemon=True)
                self._thread.start()
        attempt.thread.start()
        return attempt

    def when_ended(self, attempt: Attempt, on_end: Callable[[Lease], None]) -> None:
        """Call on_end(lease) once attempt returns (the caller stopped waiting for it)."""
        with self._lock:
            if not attempt.ended.is_set():
                attempt.on_end = on_end
                self._changed.notify_all()
                return
            self._attempts.remove(attempt)
            lease = self._lease
        if lease is not None:  # it returned meanwhile: settle it in the caller's pass
            on_end(lease)

    def forget(self, attempt: Attempt) -> None:
        """The caller saw attempt return and settles it itself."""
        with self._lock:
            if attempt in self._attempts:
                self._attempts.remove(attempt)

    def _set(self, lease: Lease) -> None:
        self._lease = lease
        self.deadline.extend(lease.expires_at)

    def _keep(self) -> None:
        """Renew every renew_seconds while attempts live; settle the strays that return."""
        # Paced by the monotonic clock: the wall clock (injected) may jump.
        next_renewal = time.monotonic() + self.renew_seconds
        settled = False
        while True:
            with self._lock:
                strays = [a for a in self._attempts if a.ended.is_set() and a.on_end is not None]
                for attempt in strays:
                    self._attempts.remove(attempt)
                lease = self._lease
            for attempt in strays:
                self._settle(attempt, lease)
                settled = True
            with self._lock:
                if self._strays_pending():
                    continue
                if not any(not a.ended.is_set() for a in self._attempts):
                    self._thread = None
                    idle = settled and not self._in_pass
                    lease = self._lease if idle else None
                    if idle:
                        self._lease = None
                    break
                wait = next_renewal - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
            next_renewal = time.monotonic() + self.renew_seconds
            if not self._renew_or_exit():
                return
        if lease is not None:
            self._release(lease)
        if settled and self.on_idle is not None:
            self.on_idle()

    def _strays_pending(self) -> bool:
        return any(a.ended.is_set() and a.on_end is not None for a in self._attempts)

    def _settle(self, attempt: Attempt, lease: Lease | None) -> None:
        on_end = attempt.on_end
        if on_end is None or lease is None:
            return
        try:
            on_end(lease)
        except Exception as exc:  # the next holder clears a marker left behind
            log.warning(kv(event="stray_settle_failed", holder=self.holder, error=str(exc)))

    def _renew_or_exit(self) -> bool:
        """Renew; on failure, exit once the lease is surely gone. False when exited."""
        try:
            self.renew()
            return True
        except LeaseLost as exc:
            return self._die(f"lease lost: {exc}")
        except Exception as exc:
            lease = self.lease
            if lease is None or self._clock() >= lease.expires_at:
                return self._die(f"lease ran out unrenewed: {exc}")
            log.warning(kv(event="lease_renew_failed", holder=self.holder, error=str(exc)))
            return True

    def _die(self, why: str) -> bool:
        """An attempt lives but the lease is gone: nothing of this worker may act. Exit now."""
        log.critical(kv(event="worker_exit", holder=self.holder, code=EXIT_LEASE_LOST, why=why))
        with self._lock:
            self.exited = EXIT_LEASE_LOST
            self._thread = None
            self._lease = None
        self._exit(EXIT_LEASE_LOST)
        return False

    def _release(self, lease: Lease | None) -> None:
        if lease is None:
            return
        try:
            self.store.release_lease(lease)
        except Exception as exc:  # an expiring lease frees itself
            log.warning(kv(event="lease_release_failed", holder=self.holder, error=str(exc)))
