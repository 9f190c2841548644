"""`python -m bench chaos`: random fault schedules over the real stack, checked for invariants.

Each schedule is a seed (bench/chaos_schedule.py): one or two responder replicas under
gunicorn (two on the DynamoDB control table for one seed in four), an approval policy,
and a couple of dozen events: region outages and recoveries, Alertmanager-shaped
deliveries (duplicate, concurrent, out of order, resolved), DigitalOcean faults (5xx,
429, 401, answers past the client's timeout with the change made before, after or
never), SIGKILL of a worker or a replica and restarts, state-store outages, and
operator commands, repair among them. Then the system quiesces (reported drift is
repaired) and the invariants of issue 22 are checked (bench/chaos_checks.py). All
schedules share one stack, reset between them (bench/chaos_stack.py).

BENCH_CHAOS_SCHEDULES=N   how many seeds to run (default 300), from BENCH_CHAOS_FIRST_SEED
                          (default 1)
BENCH_CHAOS_SEEDS=1,2     run exactly these seeds (a replay)
BENCH_CHAOS_MINUTES=M     stop starting schedules after M minutes (default: no limit)

A failing schedule prints its seed, what it did, what it found, and the command that
replays it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import Figures
from bench._machine import Load
from bench.chaos_run import Outcome, run_schedule
from bench.chaos_schedule import make
from bench.chaos_stack import ChaosStack

GOAL_SCHEDULES = 300
GOAL_MINUTES = 60.0
LOG = Path(__file__).resolve().parent / "results" / "chaos-runs.jsonl"


def seeds_from_env() -> list[int]:
    """The seeds to run, from BENCH_CHAOS_SEEDS or BENCH_CHAOS_SCHEDULES."""
    chosen = os.environ.get("BENCH_CHAOS_SEEDS", "").strip()
    if chosen:
        return [int(part) for part in chosen.split(",") if part.strip()]
    count = int(os.environ.get("BENCH_CHAOS_SCHEDULES", str(GOAL_SCHEDULES)))
    first = int(os.environ.get("BENCH_CHAOS_FIRST_SEED", "1"))
    return list(range(first, first + count))


def report(outcome: Outcome) -> str:
    """A failing schedule, for a person: seed, violations, what it did, the replay command."""
    lines = [f"chaos: seed {outcome.seed} VIOLATED {len(outcome.violations)} invariant(s):"]
    lines += [f"  {v}" for v in outcome.violations]
    lines += [f"  schedule: {outcome.described}", f"  replay: {outcome.replay()}"]
    return "\n".join(lines)


def run_on(
    stack: ChaosStack, seeds: Sequence[int], minutes: float | None = None, log: Path | None = None
) -> list[Outcome]:
    """Run the seeds' schedules on a started stack; their outcomes."""
    outcomes: list[Outcome] = []
    started = time.monotonic()
    for seed in seeds:
        if minutes is not None and time.monotonic() - started > minutes * 60:
            break
        schedule = make(seed, stack.regions, [a["name"] for a in stack.actions])
        outcome = run_schedule(stack, schedule)
        outcomes.append(outcome)
        line = (
            f"chaos: seed {seed} {outcome.seconds:.1f}s {outcome.transitions} transition(s), "
            f"ended {outcome.phase}, {len(outcome.violations)} violation(s)"
        )
        print(line, flush=True)
        if outcome.violations:
            kept = stack.preserve(seed, outcome.notes)  # for whoever reads the report
            print(report(outcome), f"  kept: {kept}", sep="\n", file=sys.stderr, flush=True)
        if log is not None:
            with log.open("a", encoding="utf-8") as handle:
                kept_fields = {
                    k: v for k, v in vars(outcome).items() if k not in ("described", "notes")
                }
                handle.write(json.dumps(kept_fields) + "\n")
    return outcomes


def run_seeds(
    seeds: Sequence[int], minutes: float | None = None, log: Path | None = None
) -> list[Outcome]:
    """Start one stack, run the seeds' schedules on it, stop it; their outcomes."""
    stack = ChaosStack()
    # Stopped by SIGTERM (a background run has SIGINT ignored): stop the stack on the way out.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        stack.start()
        return run_on(stack, seeds, minutes, log)
    finally:
        stack.close()
        signal.signal(signal.SIGTERM, previous)
        if stack.keep:
            print(f"chaos: the stack's logs and stores are kept in {stack.dir}", file=sys.stderr)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def by_check(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many violations each invariant had, (a) to (e)."""
    counts = {check: 0 for check in ("a", "b", "c", "d", "e")}
    for outcome in outcomes:
        for violation in outcome.violations:
            check = violation[1:2]
            counts[check] = counts.get(check, 0) + 1
    return counts


def chaos() -> Figures:
    """Run the schedules; figures schedules, violations, wall time and the violating seeds."""
    minutes = os.environ.get("BENCH_CHAOS_MINUTES")
    started = time.monotonic()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with Load() as load:
        outcomes = run_seeds(seeds_from_env(), float(minutes) if minutes else None, LOG)
    wall = time.monotonic() - started
    bad = [o for o in outcomes if o.violations]
    per = sorted(o.seconds for o in outcomes)
    return {
        "schedules": len(outcomes),
        "violations": sum(len(o.violations) for o in outcomes),
        "violating_seeds": [o.seed for o in bad],
        "violations_by_check": by_check(outcomes),
        "transitions": sum(o.transitions for o in outcomes),
        "wall_seconds": round(wall, 1),
        "schedule_seconds_p50": per[len(per) // 2] if per else 0.0,
        "schedule_seconds_max": per[-1] if per else 0.0,
        **load.figures(),
        "goals": {
            f"at least {GOAL_SCHEDULES} schedules": len(outcomes) >= GOAL_SCHEDULES,
            "0 violations": not bad,
            f"under {GOAL_MINUTES:.0f} minutes": wall < GOAL_MINUTES * 60,
        },
    }


BENCHMARKS = {"chaos": chaos}
