"""bench chaos's invariants and schedules, without a stack: each check finds what it must."""

from __future__ import annotations

from typing import Any

from bench import chaos_checks as checks
from bench.chaos import report, seeds_from_env
from bench.chaos_run import Outcome
from bench.chaos_schedule import OPERATOR_OPS, REPLICA_SHARE, make

REGIONS = ("us-east-1", "eu-west-1", "us-west-2")
ACTIONS = ("www", "wordpress-glb", "origin")


def test_a_seed_makes_the_same_schedule_every_time() -> None:
    assert make(7, REGIONS, ACTIONS) == make(7, REGIONS, ACTIONS)
    assert make(7, REGIONS, ACTIONS) != make(8, REGIONS, ACTIONS)
    kinds = {e.kind for seed in range(1, 40) for e in make(seed, REGIONS, ACTIONS).events}
    assert kinds == {
        "region",
        "alert",
        "do_fault",
        "kill_worker",
        "kill_replica",
        "restart_replica",
        "store_outage",
        "sink_fault",
        "operator",
    }
    replicas = [make(seed, REGIONS, ACTIONS).replicas for seed in range(1, 1 + REPLICA_SHARE)]
    assert sorted(replicas) == [1] * (REPLICA_SHARE - 1) + [2]


def test_every_operator_command_is_drawn_repair_of_one_action_or_all() -> None:
    ops = [
        e.args
        for seed in range(1, 60)
        for e in make(seed, REGIONS, ACTIONS).events
        if e.kind == "operator"
    ]
    assert {a["op"] for a in ops} == set(OPERATOR_OPS)
    repairs = [a.get("action") for a in ops if a["op"] == "repair"]
    assert None in repairs and set(repairs) - {None} <= set(ACTIONS) and len(set(repairs)) > 1


def test_seeds_come_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("BENCH_CHAOS_SEEDS", "3, 5")
    assert seeds_from_env() == [3, 5]
    monkeypatch.delenv("BENCH_CHAOS_SEEDS")
    monkeypatch.setenv("BENCH_CHAOS_SCHEDULES", "3")
    monkeypatch.setenv("BENCH_CHAOS_FIRST_SEED", "10")
    assert seeds_from_env() == [10, 11, 12]


def test_a_violation_prints_its_seed_and_the_replay_command() -> None:
    outcome = Outcome(42, 1.0, ["(a) www: live ..."], 1, "steady", "seed 42: ...")
    text = report(outcome)
    assert "seed 42" in text and "(a) www" in text
    assert "BENCH_CHAOS_SEEDS=42 python -m bench chaos" in text


def test_world_must_equal_the_active_regions_desired_state_or_be_drift() -> None:
    status = {"phase": "steady", "active_region": "eu-west-1"}
    desired = {"www": ["203.0.113.20"], "wp-env": "eu-west-1"}
    assert checks.world_equals_record(status, desired, desired) == []
    live = {**desired, "www": ["203.0.113.10"]}
    (found,) = checks.world_equals_record(status, live, desired)
    assert found.startswith("(a) www:") and "203.0.113.10" in found
    drift = {**status, "drift": [{"action": "www", "current": "x", "desired": "y"}]}
    assert checks.world_equals_record(drift, live, desired) == []
    assert checks.world_equals_record({**status, "phase": "stalled"}, live, desired) == []


def _transition(result: str, error: str | None = None, **more: Any) -> dict[str, Any]:
    steps = [{"error": error}]
    return {"id": "t-1", "kind": "failover", "result": result, "steps": steps, **more}


def test_history_holds_only_with_a_verified_chain_and_ended_or_stalled_transitions() -> None:
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    steady, stalled = {"phase": "steady"}, {"phase": "stalled"}
    done = {"transitions": [_transition("completed")]}
    assert checks.history_holds(0, "ok", steady, done, now) == []
    found = checks.history_holds(1, "record 3 edited", steady, done, now)
    assert found[0].startswith("(b) audit")
    running = {"transitions": [_transition("in_progress")]}
    assert checks.history_holds(0, "", {"phase": "failing_over"}, running, now)
    assert checks.history_holds(0, "", stalled, running, now)  # stalled, no error shown
    failing = {"transitions": [_transition("in_progress", "HTTP 401")]}
    assert checks.history_holds(0, "", stalled, failing, now) == []
    late = {"transitions": [_transition("in_progress", deadline_at="2025-12-31T23:59:00Z")]}
    assert checks.history_holds(0, "", stalled, late, now) == []
    early = {"transitions": [_transition("in_progress", deadline_at="2026-01-01T00:01:00Z")]}
    assert checks.history_holds(0, "", stalled, early, now)


def test_each_sink_must_hear_of_each_transition_once_per_key() -> None:
    history = {"transitions": [_transition("completed")]}
    told = [{"key": "t-1:started", "text": "a"}, {"key": "t-1:completed", "text": "b"}]
    assert checks.notices_arrive(history, {"chat": told}) == []
    (missing,) = checks.notices_arrive(history, {"chat": told[:1]})
    assert "ended completed" in missing
    (nothing, _) = checks.notices_arrive(history, {"chat": []})
    assert "nothing told" in nothing
    twice = [*told, {"key": "t-1:completed", "text": "other"}]
    (clash,) = checks.notices_arrive(history, {"chat": twice})
    assert "2 different events under dedup key t-1:completed" in clash


def _write(path: str, holder: str | None, start: str, end: str) -> dict[str, Any]:
    return {
        "method": "PUT",
        "path": path,
        "holder": holder,
        "started": f"2026-01-01T00:00:{start}Z",
        "ended": f"2026-01-01T00:00:{end}Z",
    }


def test_two_holders_writing_one_object_at_once_is_a_violation() -> None:
    path = "/v2/load_balancers/x"
    apart = [_write(path, "a", "01.0", "02.0"), _write(path, "b", "02.5", "03.0")]
    assert checks.no_overlapping_writes(apart) == []
    same = [_write(path, "a", "01.0", "02.0"), _write(path, "a", "01.5", "03.0")]
    assert checks.no_overlapping_writes(same) == []
    other = [_write(path, "a", "01.0", "02.0"), _write("/v2/domains/x", "b", "01.5", "03.0")]
    assert checks.no_overlapping_writes(other) == []
    overlap = [_write(path, "a", "01.0", "02.0"), _write(path, "b", "01.5", "03.0")]
    (found,) = checks.no_overlapping_writes(overlap)
    assert found.startswith(f"(d) {path}: a and b wrote at once")
    (anonymous,) = checks.no_overlapping_writes([_write(path, None, "01.0", "02.0")])
    assert "names no lease holder" in anonymous


def test_every_request_is_answered_without_5xx_but_503_while_the_store_is_down() -> None:
    def call(status: int | None, seconds: float = 0.1, error: str | None = None) -> checks.Call:
        return checks.Call(100.0, 100.0 + seconds, "POST", "/webhook", 0, status, error)

    def never(*_: Any) -> bool:
        return False

    def always(*_: Any) -> bool:
        return True

    fine = [call(202), call(409), call(503)]
    assert checks.every_request_answered(fine, always, never) == []
    assert "503 with the store up" in checks.every_request_answered([call(503)], never, never)[0]
    assert "500 with the store up" in checks.every_request_answered([call(500)], always, never)[0]
    hung = checks.every_request_answered([call(None, 16.0, "timed out")], always, always)
    assert "hung" in hung[0]
    reset = [call(None, 0.1, "ConnectionResetError")]
    assert checks.every_request_answered(reset, never, always) == []  # its worker was killed
    assert "no answer" in checks.every_request_answered(reset, never, never)[0]
