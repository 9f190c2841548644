"""One plan evaluator per replica: the worker holding a host lock evaluates, every worker serves.

Every gunicorn worker runs a PlanRunner thread. Each tries a non-blocking flock on
DIR/plan.lock; the one that gets it evaluates the plan at once, then every interval
(jittered by 10% each way, so replicas drift apart) and whenever the active region
changes, and writes DIR/plan.json. The others retry the lock every few seconds: the
kernel frees it when its holder dies, so another worker takes over within that time
and evaluates at once. A holder that hangs keeps the lock; its plan then ages into
"stale", which readers show and FailoverPlanNotReady alerts on. Evaluation never
takes the reconciler's lease and never writes to any target.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ddb_failover import consistency
from ddb_failover.config import Config, ConfigError
from ddb_failover.logs import kv
from responder.actions.base import Action
from responder.actions.do_budget import Budget
from responder.actions.fence import Fence
from responder.actions.inspection import Limits
from responder.model.errors import ActionError
from responder.plan import plan as plans
from responder.plan.plan_file import PlanFile
from responder.state.store import StateStore, StoreUnavailable

log = logging.getLogger(__name__)

LOCK_NAME = "plan.lock"
JITTER = 0.1
# How often a worker without the lock tries it, and the holder looks for a new active region.
CHECK_SECONDS = 5.0


class HostLock:
    """A non-blocking exclusive flock: one holder among the processes of a host."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when held (already, or now)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # For a person looking: who evaluates. The lock, not the content, is what counts.
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder_name()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Let another process take the lock."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PlanSource:
    """What an evaluation reads: the active region from the store, the actions, readiness.

    The actions are built on first use, so only the evaluating worker pays for its clients.
    """

    config: Config
    store: StateStore
    readiness: plans.ReadinessFn
    build_actions: Callable[[], Sequence[Action]]
    budget: Budget | None = None  # what the actions' DigitalOcean answers said of the budget
    build_fences: Callable[[], Sequence[Fence]] = tuple  # the switchover's, as they must be
    _actions: Sequence[Action] | None = field(default=None, repr=False)
    _fences: Sequence[Fence] | None = field(default=None, repr=False)

    def active_region(self) -> str:
        """The active region now; StoreUnavailable when the store cannot say."""
        return self.store.state().active_region

    def evaluate(self, active: str) -> plans.Plan:
        """One evaluation of the plan for every region but active."""
        if self._actions is None:
            self._actions = list(self.build_actions())
        if self._fences is None:
            self._fences = list(self.build_fences())
        settings = self.config.responder
        plan = plans.evaluate(
            self._actions,
            self.config.region_names,
            active,
            self.readiness,
            settings.policy.rpo_seconds,
            Limits(max_ttl_seconds=settings.plan.max_ttl_seconds),
            budget=self.budget,
            evaluator=holder_name(),
            fences=self._fences,
        )
        return replace(plan, consistency=consistency.describe(self.config))


class PlanRunner:
    """The evaluation loop of one worker: evaluate while holding the host lock, else wait."""

    def __init__(
        self,
        source: PlanSource,
        plan_file: PlanFile,
        interval_seconds: float,
        *,
        lock: HostLock | None = None,
        check_seconds: float = CHECK_SECONDS,
        jitter: Callable[[], float] = lambda: random.uniform(1 - JITTER, 1 + JITTER),
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.file = plan_file
        self.interval = interval_seconds
        self.lock = lock or HostLock(plan_file.directory / LOCK_NAME)
        self.check_seconds = min(check_seconds, interval_seconds)
        self.jitter = jitter
        self.timer = timer
        self._next_at: float | None = None
        self._last: plans.Plan | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; call it in each worker after fork."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="plan", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and free the lock, so another worker takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.lock.release()

    def run_once(self) -> plans.Plan | None:
        """Evaluate now if this worker holds the lock and an evaluation is due; the plan if so."""
        if not self.lock.try_acquire():
            return None
        active = self.source.active_region()
        due = self._next_at is None or self.timer() >= self._next_at
        if not due and self._last is not None and self._last.active_region == active:
            return None
        plan = self.source.evaluate(active)
        about = {"interval_seconds": self.interval, "evaluator": holder_name()}
        self.file.write({**plan.to_json(), **about})
        self._next_at = self.timer() + self.interval * self.jitter()
        _log_changes(self._last, plan)
        self._last = plan
        return plan

    def _wait(self) -> float:
        if not self.lock.held or self._next_at is None:
            return self.check_seconds
        return max(0.0, min(self.check_seconds, self._next_at - self.timer()))

    def _loop(self) -> None:
        failing: str | None = None  # the last failure, logged once until it changes
        while not self._stop.is_set():
            wait = self.check_seconds  # after a failure: try again, but not at once
            try:
                self.run_once()
                failing, wait = None, self._wait()
            except (StoreUnavailable, ActionError, ConfigError, OSError) as exc:  # one line each
                if str(exc) != failing:
                    log.warning(kv(event="plan_evaluation_skipped", error=str(exc)))
                failing = str(exc)
            except Exception:  # a bug: keep the traceback, and keep the loop alive
                log.exception(kv(event="plan_evaluation_failed"))
            self._stop.wait(wait)


def _problems(plan: plans.Plan | None) -> dict[tuple[str, str, str], str]:
    if plan is None:
        return {}
    return {
        (region.region, inspection.action, problem.kind): problem.message
        for region in plan.regions
        for inspection in region.inspections
        for problem in inspection.problems
    }


def _log_changes(before: plans.Plan | None, after: plans.Plan) -> None:
    """One line per problem that appeared or went away; nothing while all stays the same."""
    old, new = _problems(before), _problems(after)
    for (region, action, kind), message in new.items():
        if (region, action, kind) not in old:
            log.warning(
                kv(event="plan_problem", region=region, action=action, kind=kind, problem=message)
            )
    for region, action, kind in old.keys() - new.keys():
        log.info(kv(event="plan_problem_gone", region=region, action=action, kind=kind))
    if before is None or before.ready != after.ready:
        log.info(
            kv(
                event="plan_evaluated",
                ready=after.ready,
                active=after.active_region,
                seconds=f"{after.duration_seconds:.2f}",
            )
        )
