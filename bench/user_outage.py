"""The outage as users see it: a client on the Global Load Balancer during a DynamoDB outage.

user_outage black-holes the active region's DynamoDB (SIGSTOP) in BENCH_USER_OUTAGE_TRIALS
trials (default 10) on the sandbox stack with the shipped profile, while a client asks
the glb front for the front page every 100 ms (each request waits for its answer, 5 s at
most; the next one starts 100 ms after the previous started, or at once if it took
longer). For each trial:

- the user's outage: from the first failed request (not a 200, or no answer) to the first
  of ten successes in a row, by the requests' start times, and the failed requests in it;
- the RTO of the same trial: onset to the failover's last step verified (bench/rto.py's
  last stage), read from the responder's history;
- users_back: onset to the first of those ten successes.

Each stack serves two trials, as in bench/rto.py (the first breaks the primary, the
second the region it failed over to), so each is its region's first outage.
Goal: user outage p95 at most the RTO p95 + 2 s, through the Global Load Balancer.
"""

from __future__ import annotations

import os
import random
import time

from bench import Figures
from bench._machine import Load
from bench.rto import DWELL, _quiet, _stack, _unix, percentile
from sandbox import profiles
from sandbox.control import send_chaos
from sandbox.net import wait_until
from sandbox.users import SUCCESSES_IN_A_ROW, User, outage
from sandbox.watch import StackView

TRIALS = int(os.environ.get("BENCH_USER_OUTAGE_TRIALS", "10"))
TRIALS_PER_STACK = 2
SLACK_OVER_RTO = 2.0  # the goal: user outage p95 <= RTO p95 + this


def _trial(view: StackView, region: str) -> dict[str, float]:
    """Black-hole region's DynamoDB with a user on the front until users are served again."""
    known = len(view.history()["transitions"])
    user = User(f"{view.urls['glb']}/")
    user.start()
    try:
        wait_until(lambda: len(user.requests) >= SUCCESSES_IN_A_ROW, 10, message="the user served")
        before = [r for r in user.requests if not r.ok]
        if before:
            raise RuntimeError(f"{len(before)} requests failed before the onset")
        send_chaos(view.dir, {"region": region, "op": "pause"})
        onset = time.time()
        found: dict[str, float] = {}

        def done() -> bool:
            if "rto" not in found:
                transitions = view.history()["transitions"]
                if len(transitions) > known and transitions[0]["result"] == "completed":
                    found["rto"] = _unix(transitions[0]["finished_at"]) - onset
                elif len(transitions) > known and transitions[0]["result"] in ("failed", "blocked"):
                    raise RuntimeError(f"transition {transitions[0]['id']}: {transitions[0]}")
            seen = outage(user.requests, onset)
            return "rto" in found and seen is not None

        try:
            wait_until(done, 120, interval=0.2, message=f"users served again after {region}")
        finally:
            send_chaos(view.dir, {"region": region, "op": "resume"})
    finally:
        user.stop()
    seen = outage(user.requests, onset)
    assert seen is not None
    return {
        "user_outage": seen.seconds,
        "failed_requests": float(seen.failed),
        "users_back": seen.back - onset,
        "rto": found["rto"],
    }


def _next_trial(view: StackView, rng: random.Random) -> dict[str, float]:
    active = view.status()["active_region"]
    wait_until(lambda: _quiet(view, active), 120, interval=0.5, message="stack quiet")
    time.sleep(rng.uniform(0, profiles.load("shipped").probe_interval))  # a fresh phase
    found = _trial(view, active)
    wait_until(lambda: _quiet(view, active), 120, interval=0.5, message="recovery")
    time.sleep(DWELL + 1)  # the responder's minimum dwell, with a margin, before the next
    return found


def user_outage() -> Figures:
    """p50 and p95 of the user's outage and of the RTO, from the same trials."""
    rng = random.Random(23)
    runs: list[dict[str, float]] = []
    with Load() as load:
        while len(runs) < TRIALS:
            with _stack("shipped") as view:
                for _ in range(min(TRIALS_PER_STACK, TRIALS - len(runs))):
                    runs.append(_next_trial(view, rng))
    figures: Figures = {"profile": "shipped", "trials": len(runs), **load.figures()}
    for stage, name, unit in (
        ("user_outage", "user_outage", "_s"),
        ("rto", "rto_last_step_verified", "_s"),
        ("users_back", "users_back", "_s"),
        ("failed_requests", "failed_requests", ""),
    ):
        values = [run[stage] for run in runs]
        figures[f"{name}_p50{unit}"] = round(percentile(values, 0.5), 2)
        figures[f"{name}_p95{unit}"] = round(percentile(values, 0.95), 2)
        figures[f"{name}_trials"] = " ".join(f"{round(v, 2):g}" for v in values)
    bound = figures["rto_last_step_verified_p95_s"] + SLACK_OVER_RTO
    figures["goals"] = {
        f"user outage p95 <= RTO p95 + {SLACK_OVER_RTO:g} s ({bound:.2f} s)": (
            figures["user_outage_p95_s"] <= bound
        ),
    }
    return figures


BENCHMARKS = {"user_outage": user_outage}
