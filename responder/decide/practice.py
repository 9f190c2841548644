"""Practice runs (issue 24 §2), pure: when one is due, where it goes, how it goes on and ends.

A run is a switchover to the target (leg 1, a transition of kind `practice`), a hold, and
a switchover back home (leg 2). Nothing here reads a clock, the store or the network: the
practice runner (responder/execute/practice_runner.py) brings the history, the blocking
alerts, the outcome checks' results and the time, and does what `next_move` says.

Each leg keeps in its evidence {"practice": {"run", "leg", "home", "target",
"hold_seconds"}}, and leg 2 also "outcome" and "why": the history alone says what every
run was. A run that could not start is a `blocked` decision of transition kind `practice`;
a run ended without a leg back (a real region outage took precedence) is an `ignored`
one whose reason starts with END_PREFIX.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from ddb_failover.practice_config import WEEKDAYS, Practice, minutes
from responder.model.alerts import format_time
from responder.state.records import TransitionRecord

Outcome = Literal["SUCCEEDED", "INTERRUPTED", "FAILED", "BLOCKED"]
OUTCOMES: tuple[Outcome, ...] = ("SUCCEEDED", "INTERRUPTED", "FAILED", "BLOCKED")
# ending: a leg the run aborted for a real outage has stopped; the failover logic is next.
RunPhase = Literal["moving", "holding", "returning", "ending", "ended"]
END_PREFIX = "practice ended: "
KIND: Literal["practice"] = "practice"
# A weekly schedule's run may start this long after its time (a responder that was down
# at the minute itself still runs it); a window's run, any time inside it.
SCHEDULE_SLOT_SECONDS = 3600.0
DAY = 86400.0
# The history's times are to the millisecond: a marker written in the same millisecond as
# a leg began still counts as after it.
HISTORY_PRECISION = 0.001


@dataclass(frozen=True)
class Marker:
    """A decision of transition kind `practice`: a run blocked at start, or ended early."""

    at: float
    kind: str  # "blocked" or "ignored"
    reason: str


@dataclass(frozen=True)
class Run:
    """One practice run as the history tells it."""

    id: str
    started_at: float
    home: str | None
    target: str | None
    hold_seconds: float
    by: str | None
    phase: RunPhase
    outcome: Outcome | None = None
    reason: str | None = None
    ended_at: float | None = None
    hold_until: float | None = None
    legs: tuple[str, ...] = ()  # transition ids, leg 1 first

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": iso(self.started_at),
            "home": self.home,
            "target": self.target,
            "hold_seconds": self.hold_seconds,
            "by": self.by,
            "phase": self.phase,
            "outcome": self.outcome,
            "reason": self.reason,
            "ended_at": iso(self.ended_at),
            "hold_until": iso(self.hold_until),
            "legs": list(self.legs),
        }


@dataclass(frozen=True)
class Move:
    """What the runner does next: wait, go back home (leg 2), or end the run here."""

    kind: Literal["wait", "back", "end"]
    outcome: Outcome | None = None
    reason: str | None = None


def iso(moment: float | None) -> str | None:
    return None if moment is None else format_time(moment)


def _day_slots(practice: Practice, day: date) -> list[tuple[float, float]]:
    """The slots in which a run may start on one UTC day (none on a blocked date)."""
    if day in practice.blocked_dates:
        return []
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    weekday = WEEKDAYS[day.weekday()]
    schedule = practice.schedule
    if schedule is not None:
        if schedule.weekday != weekday:
            return []
        start = midnight + minutes(schedule.time) * 60
        return [(start, start + SCHEDULE_SLOT_SECONDS)]
    return [
        (midnight + minutes(w.start) * 60, midnight + minutes(w.end) * 60)
        for w in practice.allowed_windows
        if weekday in w.weekdays
    ]


def slot(practice: Practice, now: float) -> tuple[float, float] | None:
    """The slot now is in, if any: (start, end)."""
    today = datetime.fromtimestamp(now, UTC).date()
    for day in (today - timedelta(days=1), today):  # a slot may begin the day before
        for start, end in _day_slots(practice, day):
            if start <= now < end:
                return start, end
    return None


def due(practice: Practice, now: float, last_started: float | None) -> bool:
    """Whether the scheduler starts a run now: enabled, inside a slot, none begun in it."""
    if not practice.enabled:
        return False
    current = slot(practice, now)
    return current is not None and (last_started is None or last_started < current[0])


def next_start(practice: Practice, now: float, last_started: float | None) -> float | None:
    """When the scheduler next starts a run (now, if due); None when none is in a year."""
    if not practice.enabled:
        return None
    if due(practice, now, last_started):
        return now
    today = datetime.fromtimestamp(now, UTC).date()
    for offset in range(0, 370):
        for start, _end in sorted(_day_slots(practice, today + timedelta(days=offset))):
            if start > now:
                return start
    return None


def target(practice: Practice, regions: Sequence[str], active: str) -> str:
    """The configured target, else the next region after the active one by priority."""
    if practice.target is not None:
        return practice.target
    index = regions.index(active) if active in regions else -1
    return regions[(index + 1) % len(regions)]


def blocked(
    firing: Sequence[str], plan_problem: str | None, active: str, to_region: str
) -> str | None:
    """Why a run may not start: a blocking alert active, the target's plan, no move."""
    if to_region == active:
        return f"{to_region} is already active: a practice run needs another region"
    if firing:
        shown = ", ".join(firing[:5]) + (f" and {len(firing) - 5} more" if len(firing) > 5 else "")
        return f"blocking alert active: {shown}"
    if plan_problem is not None:
        return f"the plan for {to_region} is not ready: {plan_problem}"
    return None


def failed_check(results: Mapping[str, bool | None]) -> str | None:
    """The first outcome check that is false (None: could not be evaluated counts too)."""
    for query, ok in results.items():
        if ok is None:
            return f"outcome check could not be evaluated: {query}"
        if not ok:
            return f"outcome check false: {query}"
    return None


def evidence(run_id: str, leg: int, home: str, to: str, hold: float, **more: Any) -> Any:
    """The practice part of a leg's evidence."""
    return {"run": run_id, "leg": leg, "home": home, "target": to, "hold_seconds": hold, **more}


def _practice(record: TransitionRecord) -> Mapping[str, Any]:
    evidence = record.evidence if isinstance(record.evidence, Mapping) else {}
    found = evidence.get("practice")
    return found if isinstance(found, Mapping) else {}


def outage(region_down: str) -> str:
    """Why a run ends for a real region outage."""
    return f"{region_down}: the failover logic decides"


def leg_regions(record: TransitionRecord) -> tuple[str, ...]:
    """The run's home and target, from a leg's evidence."""
    info = _practice(record)
    return tuple(str(r) for r in (info.get("home"), info.get("target")) if r)


def outage_abort(record: TransitionRecord) -> str | None:
    """Why the run aborted this leg for a real outage (an abort reason with END_PREFIX)."""
    abort = record.abort
    if abort is not None and abort.reason.startswith(END_PREFIX):
        return abort.reason[len(END_PREFIX) :]
    return None


def _leg_failed(record: TransitionRecord, now: float) -> str | None:
    if record.result in ("failed", "aborted", "declined", "blocked"):
        return f"leg {_practice(record).get('leg')} {record.result}: {record.error or ''}".strip()
    if record.stalled(now):
        return f"leg {_practice(record).get('leg')} stalled: {record.error or 'past its deadline'}"
    return None


def runs(
    legs: Sequence[TransitionRecord],
    markers: Sequence[Marker],
    others: Sequence[tuple[float, str]],
    now: float,
) -> list[Run]:
    """Every run the history tells, newest first.

    legs: transitions of kind practice; markers: decisions of transition kind practice;
    others: (started_at, kind) of the other transitions (a failover mid-run ends it).
    """
    by_run: dict[str, dict[int, TransitionRecord]] = {}
    for record in legs:
        info = _practice(record)
        if "run" in info and info.get("leg") in (1, 2):
            by_run.setdefault(str(info["run"]), {})[int(info["leg"])] = record
    found = [
        Run(f"blocked-{m.at:.3f}", m.at, None, None, 0.0, None, "ended", "BLOCKED", m.reason, m.at)
        for m in markers
        if m.kind == "blocked"
    ]
    ends = sorted((m for m in markers if m.reason.startswith(END_PREFIX)), key=lambda m: m.at)
    for run_id, pair in by_run.items():
        if 1 in pair:
            found.append(_run(run_id, pair[1], pair.get(2), ends, others, now))
    return sorted(found, key=lambda r: r.started_at, reverse=True)


def _run(
    run_id: str,
    first: TransitionRecord,
    back: TransitionRecord | None,
    ends: Sequence[Marker],
    others: Sequence[tuple[float, str]],
    now: float,
) -> Run:
    info = _practice(first)
    base = Run(
        run_id,
        first.started_at,
        info.get("home"),
        info.get("target"),
        float(info.get("hold_seconds", 0.0)),
        first.cause.operator,
        "moving",
        legs=(first.id,) + ((back.id,) if back else ()),
    )
    latest = back or first
    why = outage_abort(latest)
    if why is not None and latest.result != "in_progress":
        # Stopped for a real outage: handed over once the run said so (its end marker), or
        # once the failover logic has begun a move of its own.
        end, took = _since(latest, ends, others)
        handed = min(end.at if end else math.inf, took[0] if took else math.inf)
        if handed < math.inf:
            return _ended(base, "INTERRUPTED", why, handed)
        return _with(base, "ending", why)
    if back is not None:
        wanted = _practice(back)
        problem = _leg_failed(back, now)
        if problem is not None:
            return _ended(base, "FAILED", problem, back.finished_at or now)
        if back.result == "completed":
            outcome = wanted.get("outcome", "SUCCEEDED")
            return _ended(base, outcome, wanted.get("why"), back.finished_at)
        return _with(base, "returning", str(wanted.get("why") or ""))
    problem = _leg_failed(first, now)
    if problem is not None:
        return _ended(base, "FAILED", problem, first.finished_at or now)
    end, took = _since(first, ends, others)
    if end is not None:
        return _ended(base, "INTERRUPTED", end.reason[len(END_PREFIX) :], end.at)
    if took is not None:
        return _ended(base, "INTERRUPTED", f"a {took[1]} began during the run", took[0])
    if first.result != "completed" or first.finished_at is None:
        return base
    hold_until = first.finished_at + base.hold_seconds
    return Run(**{**base.__dict__, "phase": "holding", "hold_until": hold_until})


def _since(
    leg: TransitionRecord, ends: Sequence[Marker], others: Sequence[tuple[float, str]]
) -> tuple[Marker | None, tuple[float, str] | None]:
    """The first end marker, and the first other transition, since leg began."""
    begun = leg.started_at - HISTORY_PRECISION
    end = min((m for m in ends if m.at >= begun), key=lambda m: m.at, default=None)
    return end, min(((at, kind) for at, kind in others if at > begun), default=None)


def _ended(base: Run, outcome: Any, reason: Any, at: float | None) -> Run:
    fields = {**base.__dict__, "phase": "ended", "outcome": outcome, "ended_at": at}
    return Run(**{**fields, "reason": str(reason) if reason else None})


def _with(base: Run, phase: RunPhase, reason: str) -> Run:
    return Run(**{**base.__dict__, "phase": phase, "reason": reason or None})


def next_move(run: Run, now: float, check_failed: str | None, region_down: str | None) -> Move:
    """What a run in progress does now. A real region outage takes precedence: the run ends
    where it is (a leg under way is aborted first) and the failover logic decides. An
    outcome check false while holding goes back home early (INTERRUPTED); the hold over
    goes back (SUCCEEDED)."""
    if run.phase == "ended":
        return Move("wait")
    if run.phase == "ending":  # the leg aborted for the outage has stopped: hand over
        return Move("end", "INTERRUPTED", run.reason)
    if region_down is not None:
        return Move("end", "INTERRUPTED", outage(region_down))
    if run.phase != "holding":
        return Move("wait")
    if check_failed is not None:
        return Move("back", "INTERRUPTED", check_failed)
    assert run.hold_until is not None
    if now >= run.hold_until:
        return Move("back", "SUCCEEDED", f"held {run.hold_seconds:g} s")
    return Move("wait")


def last_success(found: Sequence[Run]) -> float | None:
    """When the newest SUCCEEDED run ended."""
    return max((r.ended_at for r in found if r.outcome == "SUCCEEDED" and r.ended_at), default=None)


def overdue(practice: Practice, found: Sequence[Run], now: float) -> bool:
    """No run has succeeded within max_age_days (FailoverPracticeOverdue says so too)."""
    last = last_success(found)
    return last is None or now - last > practice.max_age_days * DAY
