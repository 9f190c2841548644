"""Run every probe lane in the background; the scheduler, not the prober, owns the deadline."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ddb_failover.logs import kv
from exporter.gate import Gate
from exporter.metrics import ProbeMetrics
from exporter.probes import Prober, Target
from exporter.reasons import NOT_FOUND, TIMEOUT, ProbeError, classify, describe

log = logging.getLogger("exporter.scheduler")

PROBE_NICENESS = 10  # added to the process's niceness for probe threads

Timed = tuple[float, Mapping[str, float] | None, BaseException | None]


@dataclass
class Lane:
    """One probe kind against one (region, table); at most one probe in flight."""

    kind: str
    target: Target
    prober: Prober
    future: Future[Timed] | None = None
    last_reason: str | None = field(default=None)  # None: last probe succeeded
    failing_since: int | None = None  # schedule slot of the current run of failures' first

    @property
    def region(self) -> str:
        """The region this lane probes."""
        return self.target.region

    @property
    def table(self) -> str:
        """The table this lane probes."""
        return self.target.table


@dataclass(frozen=True)
class Outcome:
    """The result of one lane in one round."""

    region: str
    table: str
    kind: str
    reason: str | None  # None on success
    duration: float | None  # None when no probe was launched (previous one still stuck)
    detail: str = ""
    heartbeats: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the probe succeeded."""
        return self.reason is None


def _yield_cpu() -> None:
    # Probe threads run at a lower CPU priority than the HTTP thread (Linux
    # schedules threads individually), so a burst of botocore work cannot
    # crowd out a scrape on a busy machine.
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + PROBE_NICENESS))


def _timed(prober: Prober, target: Target, gate: Gate | None) -> Timed:
    # Runs in a worker thread: never raises, so the scheduler sees every failure.
    started = time.perf_counter()
    try:
        with gate.held() if gate is not None else contextlib.nullcontext():
            result = prober(target)
    except BaseException as exc:
        return time.perf_counter() - started, None, exc
    return time.perf_counter() - started, result, None


def next_slot(slot: int, elapsed: float, interval: float) -> int:
    """The slot after slot, or the first still ahead when a round overran (elapsed since slot 0)."""
    return max(slot + 1, math.ceil(elapsed / interval))


class Scheduler:
    """Probe rounds every interval, each lane bounded by timeout, results into metrics."""

    def __init__(
        self,
        lanes: Iterable[Lane],
        metrics: ProbeMetrics,
        interval: float,
        timeout: float,
        wall_clock: Callable[[], float] = time.time,
        on_round: Callable[[], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.lanes = list(lanes)
        self.gate = gate  # limits how many probe threads run Python at once (exporter/gate.py)
        self.metrics = metrics
        self.interval = interval
        self.timeout = timeout
        self.wall_clock = wall_clock
        self.on_round = on_round  # e.g. re-render /metrics once the round is recorded
        # One worker per lane, and a lane never has two probes in flight, so a
        # stuck region can never take a worker another lane needs.
        self._pool = ThreadPoolExecutor(
            max_workers=max(len(self.lanes), 1),
            thread_name_prefix="probe",
            initializer=_yield_cpu,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slot = -1

    def run_round(
        self, kinds: Iterable[str] | None = None, slot: int | None = None
    ) -> list[Outcome]:
        """Launch every (selected) lane, wait until the deadline, record what happened.

        slot is the round's place on the schedule: slot k starts k intervals after
        slot 0. A round run by hand takes the slot after the previous round's.
        """
        self._slot = self._slot + 1 if slot is None else slot
        wanted = None if kinds is None else set(kinds)
        lanes = [lane for lane in self.lanes if wanted is None or lane.kind in wanted]
        deadline = time.monotonic() + self.timeout
        # A lane still stuck from an earlier round gets another timeout, not a second thread.
        stuck = [lane.future is not None and not lane.future.done() for lane in lanes]
        futures = [self._launch(lane) for lane, busy in zip(lanes, stuck, strict=True) if not busy]
        wait(futures, max(0.0, deadline - time.monotonic()))
        outcomes = [
            Outcome(lane.region, lane.table, lane.kind, TIMEOUT, None, "previous probe still hung")
            if busy
            else self._collect(lane)
            for lane, busy in zip(lanes, stuck, strict=True)
        ]
        for lane, outcome in zip(lanes, outcomes, strict=True):
            self._record(lane, outcome, self._slot)
        self.metrics.refresh_lag(self.wall_clock())
        if self.on_round is not None:
            self.on_round()
        return outcomes

    def _launch(self, lane: Lane) -> Future[Timed]:
        lane.future = self._pool.submit(_timed, lane.prober, lane.target, self.gate)
        return lane.future

    def _collect(self, lane: Lane) -> Outcome:
        assert lane.future is not None
        if not lane.future.done():
            # Past the deadline: a failure now, whenever the call eventually returns.
            return Outcome(
                lane.region, lane.table, lane.kind, TIMEOUT, self.timeout,
                f"no answer within {self.timeout:g}s",
            )  # fmt: skip
        duration, found, exc = lane.future.result()
        if exc is not None:
            reason, detail = classify(exc), describe(exc)
            if reason == NOT_FOUND and not isinstance(exc, ProbeError):
                detail = f"table {lane.table} does not exist in region {lane.region} ({detail})"
            return Outcome(lane.region, lane.table, lane.kind, reason, duration, detail)
        return Outcome(lane.region, lane.table, lane.kind, None, duration, "", found or {})

    def _record(self, lane: Lane, outcome: Outcome, slot: int) -> None:
        region, table, kind = lane.region, lane.table, lane.kind
        if kind == "replication":
            if outcome.ok:
                self.metrics.heartbeats_seen(region, table, outcome.heartbeats)
            else:
                self.metrics.replication_failed(region, table, outcome.reason or "")
        elif outcome.ok:
            lane.failing_since = None
            self.metrics.probe_succeeded(
                region, table, kind, outcome.duration or 0.0, self.wall_clock()
            )
        else:
            if lane.failing_since is None:
                lane.failing_since = slot
            # Whole slots times the interval, rounded off float noise: exact multiples of
            # the interval, so `>= window` holds at the same failure on every machine.
            failing = round((slot - lane.failing_since) * self.interval, 9)
            self.metrics.probe_failed(
                region, table, kind, outcome.reason or "", outcome.duration, failing
            )
        self._log_transition(lane, outcome)
        lane.last_reason = outcome.reason

    def _log_transition(self, lane: Lane, outcome: Outcome) -> None:
        # Log changes loudly and repeats quietly: one outage is a few lines, not thousands.
        fields = {"region": lane.region, "table": lane.table, "operation": lane.kind}
        if outcome.reason == lane.last_reason:
            if not outcome.ok:
                log.debug(
                    kv(msg="probe still failing", **fields, reason=outcome.reason,
                       error=outcome.detail)
                )  # fmt: skip
            return
        if outcome.ok:
            log.info(kv(msg="probe recovered", **fields))
        else:
            log.warning(
                kv(msg="probe failed", **fields, reason=outcome.reason, error=outcome.detail)
            )

    def start(self) -> None:
        """Run rounds in a background thread until stop()."""
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # Rounds keep to one grid, slot k at k intervals after the first; a round that
        # overruns skips the slots it missed rather than bunching rounds or shifting
        # the grid, so slot numbers measure schedule time exactly.
        first = time.monotonic()
        slot = 0
        while not self._stop.is_set():
            try:
                self.run_round(slot=slot)
            except Exception:  # a bug in one round must not end probing for good
                log.exception(kv(msg="probe round failed"))
            now = time.monotonic()
            slot = next_slot(slot, now - first, self.interval)
            self._stop.wait(first + slot * self.interval - now)

    def stop(self) -> None:
        """Stop the loop; hung probe threads are abandoned, not joined."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
        self._pool.shutdown(wait=False, cancel_futures=True)
