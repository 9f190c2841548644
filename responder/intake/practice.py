"""Practice runs, the I/O side: start one, drive it on, say how they went.

The decisions are decide/practice.py's; here the history is read, Alertmanager and
Prometheus asked (through Sources, injected), and legs begun as switchovers of kind
`practice` through the same gates as any transition. Every worker runs a PracticeLoop;
a round acts only under the reconciler's lease, so one worker at a time starts or ends
a run, and everything it knows comes from the shared store.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddb_failover.logs import kv
from ddb_failover.practice_config import Practice
from responder.decide import practice
from responder.decide.decision import SwitchoverRequest
from responder.decide.evidence import Seen
from responder.decide.practice import END_PREFIX, KIND, Marker, Move, Run
from responder.execute.operations import Refused as NotAborted
from responder.intake.handling import Handled, handle_operator
from responder.intake.service import Service
from responder.model.alerts import Alert, Notification, PayloadError, parse_time
from responder.model.holder import default_holder
from responder.model.loop import Loop
from responder.plan.plan_file import not_ready
from responder.state.records import Cause, Json, State, TransitionRecord
from responder.state.store import StoreUnavailable

log = logging.getLogger("ddb_failover.responder.practice")
EXTENSION = "ddb_failover.practice"  # app.extensions: this process's Practices
HISTORY = 500
REGION_DOWN = "DynamoDBRegionDown"
BACK_SUFFIX = ": back home"  # leg 2's reason ends so; a blocked leg 2 is no BLOCKED run
BACK = "practice run {}" + BACK_SUFFIX
LEASE_SECONDS = 10.0
CACHE_SECONDS = 1.0


class Refused(Exception):
    """A run may not start now (not in an allowed slot, one already under way)."""


@dataclass(frozen=True)
class Sources:
    """What a practice round reads outside the store."""

    # Alertmanager matchers -> the active alerts matching any, as "name{region}" strings;
    # OSError or ValueError when Alertmanager cannot tell.
    firing: Callable[[Sequence[str]], list[str]]
    # A PromQL expression -> True (a non-zero sample), False (none, or zero), None (error).
    check: Callable[[str], bool | None]
    # Alertmanager matchers -> the active alerts matching any, whole (for the failover logic
    # when a run hands a real outage over); OSError or ValueError as for firing.
    alerts: Callable[[Sequence[str]], list[Alert]] = field(default=lambda _filters: [])


def _at(text: Any) -> float | None:
    try:
        return parse_time(text, "at").timestamp()
    except PayloadError:
        return None


class Practices:
    """Start, drive and report practice runs for one process."""

    def __init__(self, service: Service, sources: Sources, holder: str | None = None) -> None:
        self.service = service
        self.sources = sources
        self.holder = f"{holder or default_holder()}/practice"
        self._checked_at: float | None = None
        self._failed: str | None = None
        self._cache: tuple[float, list[Run]] | None = None
        self._back_tried_at = float("-inf")

    @property
    def config(self) -> Practice:
        return self.service.config.responder.practice

    def runs(self, now: float | None = None) -> list[Run]:
        """Every run the history holds, newest first."""
        now = self.service.clock() if now is None else now
        history = self.service.store.history(limit=HISTORY)
        legs, others = [], []
        for found in history.get("transitions", []):
            started = _at(found.get("started_at"))
            if found.get("kind") == KIND:
                legs.append(self.service.store.transition(found["id"]))
            elif started is not None:
                others.append((started, str(found.get("kind"))))
        markers = [
            Marker(at, str(d.get("kind")), str(d.get("reason") or ""))
            for d in history.get("decisions", [])
            if d.get("transition_kind") == KIND
            and (at := _at(d.get("at"))) is not None
            and not str((d.get("cause") or {}).get("reason") or "").endswith(BACK_SUFFIX)
        ]
        markers = [m for m in markers if m.kind == "blocked" or m.reason.startswith(END_PREFIX)]
        return practice.runs(legs, markers, others, now)

    def cached_runs(self) -> list[Run]:
        """runs(), read at most once a second (for /metrics); at once after this one acts."""
        at = time.monotonic()
        if self._cache is None or at - self._cache[0] >= CACHE_SECONDS:
            self._cache = (at, self.runs())
        return self._cache[1]

    def status(self) -> Json:
        """GET /api/v1/practice: the config's when, the newest runs, the last success."""
        now = self.service.clock()
        found = self.runs(now)
        last_started = next((r.started_at for r in found if r.outcome != "BLOCKED"), None)
        next_at = practice.next_start(self.config, now, last_started)
        last = practice.last_success(found)
        return {
            "enabled": self.config.enabled,
            "hold_seconds": self.config.hold_seconds,
            "max_age_days": self.config.max_age_days,
            "next_start": practice.iso(next_at),
            "last_success": practice.iso(last),
            "overdue": practice.overdue(self.config, found, now),
            "current": next((r.to_json() for r in found if r.phase != "ended"), None),
            "runs": [r.to_json() for r in found[:20]],
        }

    def start(self, by: str, hold: float | None = None, now_flag: bool = True) -> Json:
        """Start a run: BLOCKED recorded when an alert, the plan or a gate stops it.

        Refused when one is under way, or, without now_flag, outside an allowed slot."""
        now = self.service.clock()
        found = self.runs(now)
        if any(r.phase != "ended" for r in found):
            raise Refused("a practice run is already under way")
        if not now_flag and practice.slot(self.config, now) is None:
            raise Refused("outside the practice schedule's slots (--now starts one anyway)")
        return self._begin(by, hold if hold is not None else self.config.hold_seconds, now)

    def _begin(self, by: str, hold: float, now: float) -> Json:
        store, config = self.service.store, self.service.config
        self._cache = None
        state = store.state()
        home = state.active_region
        to = practice.target(self.config, config.region_names, home)
        blocking = self.config.blocking_alerts
        try:
            firing = self.sources.firing(blocking) if blocking else []
        except (OSError, ValueError) as exc:
            firing = [f"(Alertmanager did not answer: {type(exc).__name__})"]
        plan = not_ready(self.service.plan_file.read(), to, home)
        problem = practice.blocked(firing, plan, home, to)
        run_id = uuid.uuid4().hex[:12]
        cause = Cause(operator=by, reason=f"practice run {run_id}")
        if problem is not None:
            store.record_decision(
                "blocked",
                problem,
                cause,
                to_region=to,
                transition_kind=KIND,
                announce=lambda made: self.service.telling.blocked(made, now),
            )
            log.info(kv(event="practice_blocked", reason=problem))
            return {"run": None, "outcome": "BLOCKED", "reason": problem}
        request = SwitchoverRequest(
            to, by, f"practice run {run_id}: to {to}, hold {hold:g} s", kind=KIND
        )
        handled = self._leg(request, practice.evidence(run_id, 1, home, to, hold), now)
        if handled.transition is None:
            reason = handled.decision.reason
            return {"run": None, "outcome": "BLOCKED", "reason": reason}
        log.info(kv(event="practice_started", run=run_id, target=to, hold_seconds=hold))
        self.service.runner.wake()
        return {"run": run_id, "outcome": None, "transition": handled.transition.id}

    def _leg(self, request: SwitchoverRequest, evidence: Json, now: float) -> Handled:
        svc = self.service
        return handle_operator(
            request,
            svc.store,
            svc.config,
            svc.readiness,
            now,
            svc.telling,
            Seen(now, practice=evidence),
        )

    def tick(self) -> float:
        """One round under the lease: the schedule, then the run under way; the next wait."""
        store = self.service.store
        if not self._may_act(store.state(), self.service.clock()):
            return self.config.check_interval_seconds
        lease = store.acquire_lease(self.holder, LEASE_SECONDS)
        if lease is None:  # the reconciler drives a transition (or another worker's round)
            self._outage_during_leg(store.state())
            return min(self.config.check_interval_seconds, 5.0)
        try:
            return self._tick()
        finally:
            store.release_lease(lease)

    def _may_act(self, state: State, now: float) -> bool:
        """Whether a round has anything to do: a run may be under way (the newest transition
        is a leg), or one may be due. Saves the lease's write and the history's read."""
        last = state.last_transition
        if last is not None and last.kind == KIND:
            return True
        return self.config.enabled and practice.slot(self.config, now) is not None

    def _tick(self) -> float:
        now = self.service.clock()
        found = self.runs(now)
        current = next((r for r in found if r.phase != "ended"), None)
        if current is None:
            self._failed = None
            last = next((r.started_at for r in found if r.outcome != "BLOCKED"), None)
            blocked = next((r.started_at for r in found if r.outcome == "BLOCKED"), None)
            due = practice.due(self.config, now, max(last or 0.0, blocked or 0.0) or None)
            if due:
                self._begin("practice-schedule", self.config.hold_seconds, now)
            return self.config.check_interval_seconds
        down = self._down(_regions(current))
        move = practice.next_move(current, now, self._check(current, now), down)
        if move.kind == "back" and now - self._back_tried_at < self.config.check_interval_seconds:
            return 1.0  # the way home was refused (a freeze, a gate): ask again in a while
        self._act(current, move, now)
        if current.hold_until is not None and move.kind == "wait":
            return max(0.5, min(self.config.check_interval_seconds, current.hold_until - now))
        return min(self.config.check_interval_seconds, 1.0)

    def _check(self, run: Run, now: float) -> str | None:
        """The outcome checks, at most every check_interval_seconds; the first false."""
        if run.phase != "holding" or not self.config.outcome_checks:
            return None
        interval = self.config.check_interval_seconds
        if self._checked_at is None or now - self._checked_at >= interval:
            results = {q: self.sources.check(q) for q in self.config.outcome_checks}
            self._failed = practice.failed_check(results)
            self._checked_at = now
        return self._failed

    def _outage_during_leg(self, state: State) -> None:
        """While a leg runs, the reconciler holds the lease: a real outage in one of the run's
        regions aborts the leg anyway, as an operator's abort (a compare-and-set on the
        record) needs no lease. The leg stops at its next step boundary."""
        running = state.in_progress
        if running is None or running.kind != KIND or running.abort is not None:
            return
        down = self._down(practice.leg_regions(running))
        if down is not None:
            self._abort(running, END_PREFIX + practice.outage(down))

    def _abort(self, leg: TransitionRecord, reason: str) -> None:
        """Abort a leg with rollback: its applied steps go back, then its fence opens."""
        try:
            self.service.abort(leg.cause.operator or "practice", reason, True, leg.id)
        except NotAborted as exc:  # it ended, or someone aborted it, meanwhile
            log.info(kv(event="practice_abort_refused", transition=leg.id, error=str(exc)))
            return
        log.info(kv(event="practice_leg_aborted", transition=leg.id, reason=reason))

    def _down(self, regions: Sequence[str]) -> str | None:
        """A real DynamoDBRegionDown for one of regions, from Alertmanager."""
        if self.config.alertmanager_url is None:
            return None
        try:
            firing = self.sources.firing(_down_matchers(regions))
        except (OSError, ValueError) as exc:  # no answer: not an outage
            log.warning(kv(event="practice_alertmanager_failed", error=str(exc)))
            return None
        return f"{REGION_DOWN} firing: {', '.join(firing)}" if firing else None

    def _act(self, run: Run, move: Move, now: float) -> None:
        if move.kind == "wait":
            return
        self._cache = None
        if move.kind == "end":
            self._end(run, END_PREFIX + str(move.reason))
            return
        assert run.home is not None and run.target is not None
        request = SwitchoverRequest(
            run.home, run.by or "practice", BACK.format(run.id), kind=KIND, back=True
        )
        more = {"outcome": move.outcome, "why": move.reason}
        evidence = practice.evidence(run.id, 2, run.home, run.target, run.hold_seconds, **more)
        handled = self._leg(request, evidence, now)
        self._back_tried_at = now if handled.transition is None else float("-inf")
        log.info(kv(event="practice_back", run=run.id, outcome=move.outcome, why=move.reason,
                    began=handled.transition is not None))  # fmt: skip
        self.service.runner.wake()

    def _end(self, run: Run, reason: str) -> None:
        """A real outage: abort the run's leg under way (its applied steps back, the fence
        opened), and once none is, end the run and hand the alerts to the failover logic."""
        store = self.service.store
        running = store.state().in_progress
        if running is not None and running.id in run.legs:
            if running.abort is None:
                self._abort(running, reason)
            return
        cause = Cause(operator=run.by, reason=f"practice run {run.id}")
        store.record_decision("ignored", reason, cause, to_region=run.home, transition_kind=KIND)
        log.info(kv(event="practice_ended", run=run.id, outcome="INTERRUPTED", reason=reason))
        if run.phase == "ending":  # the webhook's failover found the leg in its way
            self._hand_over(run)

    def _hand_over(self, run: Run) -> None:
        """The outage's alerts, as Alertmanager has them now, to the failover logic."""
        try:
            alerts = self.sources.alerts(_down_matchers(_regions(run)))
        except (OSError, ValueError) as exc:  # Alertmanager's next notification decides
            log.warning(kv(event="practice_alertmanager_failed", error=str(exc)))
            return
        if not alerts:
            return
        url = self.config.alertmanager_url or ""
        handed = Notification("firing", "practice", "", {}, {}, {}, url, 0, tuple(alerts))
        for handled in self.service.handle_notification(handed):
            log.info(kv(event="practice_handed_over", run=run.id, decision=handled.decision.kind))


def _regions(run: Run) -> list[str]:
    return [r for r in (run.home, run.target) if r]


def _down_matchers(regions: Sequence[str]) -> list[str]:
    """Alertmanager filters for a real DynamoDBRegionDown in one of regions."""
    return [f'{{alertname="{REGION_DOWN}",region="{r}"}}' for r in regions]


class PracticeLoop(Loop):
    """Each worker's practice round: the schedule and the run under way."""

    name = "practice"

    def __init__(self, practices: Practices) -> None:
        super().__init__()
        self.practices = practices

    def round(self) -> float:
        try:
            return self.practices.tick()
        except StoreUnavailable as exc:
            log.warning(kv(event="practice_store_unavailable", error=str(exc)))
        except Exception:  # a bug: keep the traceback, and keep the loop alive
            log.exception(kv(event="practice_round_failed"))
        return self.practices.config.check_interval_seconds
