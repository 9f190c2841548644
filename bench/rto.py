"""Recovery time: onset to each pipeline stage over N outage trials, and blip immunity.

Each trial black-holes the primary on one shared sandbox stack and times the
first failing probe, the alert firing, the webhook, the decision and the last
action verified (the transition completed), then lets it fail back. The
polling design of the seed article and Route 53 health-check failover are
computed from their published parameters for comparison.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import Figures
from sandbox.cli import send_chaos
from sandbox.demo import run_scenario, start_stack, wait_stack
from sandbox.net import wait_until
from sandbox.stack import stop_process
from sandbox.watch import StackView

TRIALS = int(os.environ.get("BENCH_RTO_TRIALS", "3"))
BLIP_MINUTES = float(os.environ.get("BENCH_BLIP_MINUTES", "10"))
STAGES = ("probe_failed", "alert_firing", "webhook_received", "decision", "failover_completed")
GOAL_SECONDS = 30.0


def polling_design(interval: float, failures: int) -> tuple[float, float]:
    """Median and worst onset-to-detection of 'N consecutive failed checks every T s'.

    The first failing check comes uniformly within one interval of the onset,
    then failures - 1 more intervals pass.
    """
    base = (failures - 1) * interval
    return base + interval / 2, base + interval


@contextmanager
def _stack(*options: str) -> Iterator[StackView]:
    directory = Path(tempfile.mkdtemp(prefix="ddb-bench-rto-"))
    proc = start_stack(directory, *options)
    try:
        yield wait_stack(directory, proc)
    finally:
        stop_process(proc, grace=60)


def _quiet(view: StackView, primary: str) -> Callable[[], bool]:
    def check() -> bool:
        status = view.status()
        return status["active_region"] == primary and not view.alerts("DynamoDBRegionDown")

    return check


def rto() -> Figures:
    """N outage trials on one stack: median and max per stage."""
    figures: Figures = {"trials": TRIALS}
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    # The shipped probe timings (5 s interval, 2 s timeout), not the sandbox's faster ones.
    shipped = ("--probe-interval-seconds", "5", "--probe-timeout-seconds", "2")
    with _stack(*shipped, "--failback-window", "20s", "--min-dwell-seconds", "5") as view:
        primary = view.status()["active_region"]
        for trial in range(TRIALS):
            wait_until(_quiet(view, primary), 180, interval=1, message="stack steady")
            timeline = run_scenario(view, quiet=True)
            for stage in STAGES:
                at = timeline.at(stage)
                figures[f"trial{trial + 1}_{stage}_s"] = at
                if at is not None:
                    per_stage[stage].append(at)
            if not timeline.has("failback_completed"):
                raise RuntimeError(f"trial {trial + 1}: no failback; events {timeline.events}")
    for stage, values in per_stage.items():
        figures[f"{stage}_median_s"] = statistics.median(values) if values else None
        figures[f"{stage}_max_s"] = max(values) if values else None
    for name, (interval, failures) in {
        "seed_polling_60s_x3": (60, 3),
        "route53_30s_x3": (30, 3),
        "route53_10s_x3": (10, 3),
    }.items():
        median, worst = polling_design(interval, failures)
        figures[f"{name}_detect_median_s"] = median
        figures[f"{name}_detect_max_s"] = worst
    done = per_stage["failover_completed"]
    median = statistics.median(done) if len(done) == TRIALS else float("inf")
    figures["goals"] = {f"median onset->last action verified < {GOAL_SECONDS:g}s": median < 30}
    return figures


def blips() -> Figures:
    """Random outages shorter than the window for BLIP_MINUTES: no transition may happen."""
    rng = random.Random(7)
    count = 0
    longest = 0.0
    with _stack() as view:
        primary = view.status()["active_region"]
        wait_until(_quiet(view, primary), 180, interval=1, message="stack steady")
        before = len(view.history()["transitions"])
        end = time.monotonic() + BLIP_MINUTES * 60
        while time.monotonic() < end:
            length = rng.uniform(1.0, 5.0)
            send_chaos(view.dir, {"region": primary, "op": "pause"})
            time.sleep(length)  # the outage itself, not a synchronisation
            send_chaos(view.dir, {"region": primary, "op": "resume"})
            count += 1
            longest = max(longest, length)
            time.sleep(rng.uniform(10.0, 25.0))
        after = len(view.history()["transitions"])
    transitions = after - before
    return {
        "minutes": BLIP_MINUTES,
        "blips": count,
        "longest_blip_s": round(longest, 2),
        "transitions": transitions,
        "goals": {"zero transitions from blips": transitions == 0},
    }


BENCHMARKS = {"rto": rto, "blips": blips}
