"""Practice runs, pure: the schedule, the start verdict, a run's course and outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ddb_failover.practice_config import Practice
from responder.decide import practice
from responder.decide.practice import END_PREFIX, Marker, Run
from responder.state.records import Cause, Operation, TransitionRecord

# Monday 2026-12-07 10:00 UTC
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def weekly(**more: Any) -> Practice:
    return Practice(enabled=True, schedule={"weekday": "mon", "time": "10:00"}, **more)


def test_a_weekly_schedule_is_due_once_in_its_hour() -> None:
    config = weekly()
    assert not practice.due(config, MONDAY_10 - 60, None)
    assert practice.due(config, MONDAY_10, None)
    assert practice.due(config, MONDAY_10 + 59 * 60, MONDAY_10 - 7 * 24 * HOUR)
    assert not practice.due(config, MONDAY_10 + 30 * 60, MONDAY_10 + 60)  # ran in this slot
    assert not practice.due(config, MONDAY_10 + HOUR, None)
    assert practice.next_start(config, MONDAY_10 + HOUR, None) == MONDAY_10 + 7 * 24 * HOUR


def test_disabled_is_never_due() -> None:
    config = Practice(schedule={"weekday": "mon", "time": "10:00"})
    assert not practice.due(config, MONDAY_10, None)
    assert practice.next_start(config, MONDAY_10, None) is None


def test_blocked_dates_skip_a_slot() -> None:
    config = weekly(blocked_dates=[date(2026, 12, 7)])
    assert not practice.due(config, MONDAY_10, None)
    assert practice.next_start(config, MONDAY_10, None) == MONDAY_10 + 7 * 24 * HOUR


def test_allowed_windows() -> None:
    config = Practice(
        enabled=True,
        allowed_windows=[{"weekdays": ["tue", "wed"], "start": "09:00", "end": "11:30"}],
    )
    tuesday_9 = MONDAY_10 + 23 * HOUR
    assert not practice.due(config, MONDAY_10, None)
    assert practice.next_start(config, MONDAY_10, None) == tuesday_9
    assert practice.due(config, tuesday_9 + 2 * HOUR, None)
    assert not practice.due(config, tuesday_9 + 2.5 * HOUR, None)  # end excluded


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"enabled": True}, "a schedule or allowed_windows"),
        (
            {
                "schedule": {"weekday": "mon", "time": "10:00"},
                "allowed_windows": [{"start": "09:00", "end": "10:00"}],
            },
            "not both",
        ),
        ({"allowed_windows": [{"start": "11:00", "end": "10:00"}]}, "not after start"),
        ({"schedule": {"weekday": "mon", "time": "24:00"}}, "schedule.time"),
        ({"blocking_alerts": ['severity="critical"']}, "alertmanager_url"),
        ({"outcome_checks": ["up == 1"]}, "prometheus_url"),
        ({"outcome_checks": [" "], "prometheus_url": "http://p:9090"}, "empty"),
        ({"prometheus_url": "ftp://p"}, "http"),
        ({"hold_seconds": 0}, "hold_seconds"),
    ],
)
def test_config_problems_name_the_key(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Practice(**given)


def test_target_defaults_to_the_next_region_by_priority() -> None:
    assert practice.target(Practice(), REGIONS, "us-east-1") == "eu-west-1"
    assert practice.target(Practice(), REGIONS, "ap-southeast-2") == "us-east-1"
    assert practice.target(Practice(target="ap-southeast-2"), REGIONS, "us-east-1") == (
        "ap-southeast-2"
    )


def test_start_is_blocked_by_an_alert_a_plan_or_no_move() -> None:
    assert practice.blocked([], None, "us-east-1", "eu-west-1") is None
    assert "blocking alert active: HighLoad" in str(
        practice.blocked(["HighLoad"], None, "us-east-1", "eu-west-1")
    )
    assert "plan for eu-west-1 is not ready: stale" in str(
        practice.blocked([], "stale", "us-east-1", "eu-west-1")
    )
    assert "already active" in str(practice.blocked([], None, "eu-west-1", "eu-west-1"))


def test_failed_check() -> None:
    assert practice.failed_check({"a == 1": True}) is None
    assert practice.failed_check({"a == 1": True, "b == 1": False}) == "outcome check false: b == 1"
    assert "could not be evaluated" in str(practice.failed_check({"a": None}))


def leg(
    leg_no: int,
    result: str,
    started: float,
    finished: float | None,
    run: str = "r1",
    **more: Any,
) -> TransitionRecord:
    home, away = "us-east-1", "eu-west-1"
    return TransitionRecord(
        id=f"{run}-leg{leg_no}",
        kind="practice",
        from_region=home if leg_no == 1 else away,
        to_region=away if leg_no == 1 else home,
        result=result,  # type: ignore[arg-type]
        started_at=started,
        finished_at=finished,
        cause=Cause(operator="ops", reason="practice"),
        data_at_risk_seconds=None,
        dry_run=False,
        deadline_at=started + 600,
        evidence={"practice": practice.evidence(run, leg_no, home, away, 10.0, **more)},
    )


def test_a_run_moves_holds_returns_and_succeeds() -> None:
    t = MONDAY_10
    (moving,) = practice.runs([leg(1, "in_progress", t, None)], [], [], t + 1)
    assert moving.phase == "moving"
    assert practice.next_move(moving, t + 1, None, None).kind == "wait"
    (holding,) = practice.runs([leg(1, "completed", t, t + 5)], [], [], t + 6)
    assert (holding.phase, holding.hold_until) == ("holding", t + 15)
    assert practice.next_move(holding, t + 14, None, None).kind == "wait"
    back = practice.next_move(holding, t + 15, None, None)
    assert (back.kind, back.outcome) == ("back", "SUCCEEDED")
    legs = [
        leg(1, "completed", t, t + 5),
        leg(2, "completed", t + 15, t + 20, outcome="SUCCEEDED", why="held 10 s"),
    ]
    (done,) = practice.runs(legs, [], [], t + 21)
    assert (done.phase, done.outcome, done.ended_at) == ("ended", "SUCCEEDED", t + 20)
    assert done.legs == ("r1-leg1", "r1-leg2")
    assert practice.last_success([done]) == t + 20
    assert not practice.overdue(Practice(), [done], t + 34 * 24 * HOUR)
    assert practice.overdue(Practice(), [done], t + 36 * 24 * HOUR)


def test_a_false_outcome_check_goes_back_early_interrupted() -> None:
    t = MONDAY_10
    (holding,) = practice.runs([leg(1, "completed", t, t + 5)], [], [], t + 6)
    move = practice.next_move(holding, t + 6, "outcome check false: up == 1", None)
    assert (move.kind, move.outcome) == ("back", "INTERRUPTED")
    legs = [
        leg(1, "completed", t, t + 5),
        leg(2, "completed", t + 6, t + 9, outcome="INTERRUPTED", why=move.reason),
    ]
    (done,) = practice.runs(legs, [], [], t + 10)
    assert (done.outcome, done.reason) == ("INTERRUPTED", "outcome check false: up == 1")


def test_a_real_outage_ends_the_run_where_it_is() -> None:
    t = MONDAY_10
    (holding,) = practice.runs([leg(1, "completed", t, t + 5)], [], [], t + 6)
    move = practice.next_move(holding, t + 6, None, "DynamoDBRegionDown eu-west-1")
    assert (move.kind, move.outcome) == ("end", "INTERRUPTED")
    end = Marker(t + 6, "ignored", END_PREFIX + str(move.reason))
    (done,) = practice.runs([leg(1, "completed", t, t + 5)], [end], [], t + 7)
    assert (done.outcome, done.ended_at) == ("INTERRUPTED", t + 6)
    assert done.reason is not None and done.reason.startswith("DynamoDBRegionDown")
    # A failover that began during the run ends it too.
    (taken,) = practice.runs([leg(1, "completed", t, t + 5)], [], [(t + 8, "failover")], t + 9)
    assert (taken.outcome, taken.reason) == ("INTERRUPTED", "a failover began during the run")
    # The first one ends it, though history lists the newest first.
    later = [(t + 20, "failback"), (t + 8, "failover")]
    (taken,) = practice.runs([leg(1, "completed", t, t + 5)], [], later, t + 21)
    assert (taken.reason, taken.ended_at) == ("a failover began during the run", t + 8)


def test_a_real_outage_during_a_leg_aborts_it_then_hands_over() -> None:
    """The leg home under way when the region traffic holds in goes down: it is aborted, and
    once it has stopped the run ends INTERRUPTED and hands the alerts to the failover logic."""
    t = MONDAY_10
    first = leg(1, "completed", t, t + 5)
    returning = leg(2, "in_progress", t + 20, None, outcome="INTERRUPTED", why="check false")
    (run,) = practice.runs([first, returning], [], [], t + 25)
    assert run.phase == "returning"
    down = "DynamoDBRegionDown firing: DynamoDBRegionDown{region=eu-west-1}"
    move = practice.next_move(run, t + 25, None, down)
    assert (move.kind, move.outcome) == ("end", "INTERRUPTED")
    why = f"{down}: the failover logic decides"
    abort = Operation("abort", "ops", END_PREFIX + why, t + 25, rollback=True)
    aborting = replace(returning, operations=(abort,))
    # Aborted but not stopped yet (its attempt in flight): the run waits for it.
    (run,) = practice.runs([first, aborting], [], [], t + 26)
    assert run.phase == "returning"
    stopped = replace(aborting, result="aborted", finished_at=t + 50)
    (run,) = practice.runs([first, stopped], [], [], t + 51)
    assert (run.phase, run.reason) == ("ending", why)
    # Even with the alert resolved meanwhile: the hand-over is still due.
    move = practice.next_move(run, t + 51, None, None)
    assert (move.kind, move.outcome, move.reason) == ("end", "INTERRUPTED", why)
    end = Marker(t + 51, "ignored", END_PREFIX + why)
    (done,) = practice.runs([first, stopped], [end], [], t + 52)
    assert (done.phase, done.outcome, done.reason, done.ended_at) == (
        "ended",
        "INTERRUPTED",
        why,
        t + 51,
    )
    # A failover the webhook began before the run said so: handed over all the same.
    (taken,) = practice.runs([first, stopped], [], [(t + 53, "failover")], t + 54)
    assert (taken.phase, taken.outcome, taken.reason, taken.ended_at) == (
        "ended",
        "INTERRUPTED",
        why,
        t + 53,
    )
    # An abort by an operator (no END_PREFIX) still fails the run.
    by_hand = replace(stopped, operations=(replace(abort, reason="enough"),))
    (failed,) = practice.runs([first, by_hand], [], [], t + 51)
    assert failed.outcome == "FAILED"


def test_a_failed_or_stalled_leg_fails_the_run_and_a_blocked_start_is_blocked() -> None:
    t = MONDAY_10
    (failed,) = practice.runs([leg(1, "failed", t, t + 5)], [], [], t + 6)
    assert failed.outcome == "FAILED"
    (stalled,) = practice.runs([leg(1, "in_progress", t, None)], [], [], t + 601)
    assert stalled.outcome == "FAILED" and "stalled" in str(stalled.reason)
    (blocked,) = practice.runs([], [Marker(t, "blocked", "blocking alert active: X")], [], t)
    assert (blocked.outcome, blocked.reason) == ("BLOCKED", "blocking alert active: X")
    assert isinstance(blocked, Run) and blocked.to_json()["outcome"] == "BLOCKED"
