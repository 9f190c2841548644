"""Exporter cost as tables grow: CPU per probe round and RSS, against a bare loop of the same calls.

Three sandbox regions holding 100 tables each. For 1, 10, 30 and 100 tables
the exporter runs as deployed (`python -m exporter`, its own process, every
lane in its own thread, /metrics rendered once a round) and, as the
baseline, a bare loop in a process of its own makes the very same boto3
calls (the exporter's probers on clients built the same way) one after the
other at the same pace, and nothing else. Both are measured by their process's CPU time
(user + system, every thread) over whole rounds after two warm-up rounds, in
alternating blocks so drifting machine load weighs on both alike, and by
their resident memory at the end.

`python -m bench.exporter_scale bare CONFIG ROUNDS` is the baseline's process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import Figures
from bench._exporterlib import CREDENTIALS, rss_mb, scrape, start_exporter
from bench._machine import Load
from sandbox.net import wait_until
from sandbox.regions import Region
from sandbox.stack import stop_process

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
CANARY = ("health_check_id", "ping")
# tables -> (probe interval, timeout, rounds per block): every round ends well
# inside its timeout on a busy 2-core machine, so no probe fails.
SIZES = {1: (1.0, 0.8, 20), 10: (2.0, 1.5, 12), 30: (4.0, 3.0, 8), 100: (12.0, 10.0, 5)}
BLOCKS = int(os.environ.get("BENCH_SCALE_BLOCKS", "2"))
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def _tables(count: int) -> list[str]:
    return [f"scale_t{i:03d}" for i in range(count)]


def _config(regions: list[Region], tables: int) -> dict[str, Any]:
    interval, timeout, _ = SIZES[tables]
    return {
        "tables": _tables(tables),
        "canary": {"key": CANARY[0], "value": CANARY[1]},
        "regions": [{"name": r.name, "endpoint_url": r.url} for r in regions],
        "exporter": {"vantage": "bench", "interval_seconds": interval, "timeout_seconds": timeout},
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def _probes_done(url: str) -> tuple[float, int]:
    """Read and write probes completed so far (histogram counts) and how many failed."""
    done, failed = 0.0, 0
    for line in scrape(url)[1].decode().splitlines():
        if line.startswith("dynamodb_probe_duration_seconds_count{"):
            done += float(line.rpartition(" ")[2])
        elif line.startswith("dynamodb_probe_success{") and line.endswith(" 0.0"):
            failed += 1
    return done, failed


def _exporter_block(config: Path, tables: int) -> dict[str, float]:
    """CPU seconds per round and RSS of the real exporter over one block of rounds."""
    interval, _, rounds = SIZES[tables]
    per_round = 2 * tables * len(REGIONS)  # read and write probes per round
    process, url = start_exporter(config)
    try:
        # Warm-up: two whole rounds (connections open, caches filled).
        wait_until(lambda: _probes_done(url)[0] >= 2 * per_round, 60 + 4 * interval, interval=0.2)
        # The window is the measurement, not a wait: scraping meanwhile would add
        # the cost of scrapes, which bench/exporter_metrics.py measures on its own.
        done_before, cpu_before = _probes_done(url)[0], cpu_seconds(process.pid)
        time.sleep(rounds * interval)
        cpu = cpu_seconds(process.pid) - cpu_before
        done, failed = _probes_done(url)
        rss, _ = rss_mb(process.pid)
    finally:
        stop_process(process, grace=10)
    return {"cpu_per_round": cpu / ((done - done_before) / per_round), "rss": rss, "failed": failed}


def _bare_block(config: Path, tables: int) -> dict[str, float]:
    """CPU seconds per round and RSS of the bare loop over one block of rounds."""
    rounds = SIZES[tables][2]
    result = subprocess.run(
        [sys.executable, "-m", "bench.exporter_scale", "bare", str(config), str(rounds)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **CREDENTIALS},
        check=True,
    )
    return dict(json.loads(result.stdout))


def exporter_scale() -> Figures:
    """CPU per round and RSS at 1, 10, 30 and 100 tables: exporter over bare loop."""
    workdir = Path(tempfile.mkdtemp(prefix="ddb-bench-scale-"))
    regions = [Region(name, _tables(max(SIZES)), *CANARY, workdir) for name in REGIONS]
    figures: Figures = {"regions": len(REGIONS), "blocks": BLOCKS}
    try:
        for region in regions:
            region.start()
        with Load() as load:
            for tables in SIZES:
                config = workdir / f"exporter-{tables}.yml"
                config.write_text(yaml.safe_dump(_config(regions, tables)))
                runs: dict[str, list[dict[str, float]]] = {"bare": [], "exporter": []}
                for block in range(BLOCKS):
                    order = ("bare", "exporter") if block % 2 == 0 else ("exporter", "bare")
                    for which in order:
                        measure = _bare_block if which == "bare" else _exporter_block
                        runs[which].append(measure(config, tables))
                bare = statistics.median(r["cpu_per_round"] for r in runs["bare"])
                real = statistics.median(r["cpu_per_round"] for r in runs["exporter"])
                figures[f"t{tables}_probe_interval_s"] = SIZES[tables][0]
                figures[f"t{tables}_calls_per_round"] = 3 * tables * len(REGIONS)
                figures[f"t{tables}_bare_cpu_per_round_s"] = round(bare, 4)
                figures[f"t{tables}_exporter_cpu_per_round_s"] = round(real, 4)
                figures[f"t{tables}_cpu_ratio"] = round(real / bare, 3)
                figures[f"t{tables}_bare_rss_mb"] = round(max(r["rss"] for r in runs["bare"]), 1)
                figures[f"t{tables}_exporter_rss_mb"] = round(
                    max(r["rss"] for r in runs["exporter"]), 1
                )
                figures[f"t{tables}_failed_probes"] = sum(r["failed"] for r in runs["exporter"])
        figures.update(load.figures())
    finally:
        for region in regions:
            region.close()
    rss = {t: figures[f"t{t}_exporter_rss_mb"] for t in SIZES}
    # Linear growth: the memory each extra table costs does not grow with the count.
    low = (rss[30] - rss[1]) / 29
    high = (rss[100] - rss[30]) / 70
    figures["exporter_rss_mb_per_table_1_to_30"] = round(low, 3)
    figures["exporter_rss_mb_per_table_30_to_100"] = round(high, 3)
    worst = max(figures[f"t{t}_cpu_ratio"] for t in SIZES)
    figures["goals"] = {
        "exporter CPU per round at most 1.3x the bare loop's, at every size": worst <= 1.3,
        "RSS grows linearly (per-table cost 30->100 at most 1.25x that of 1->30)": high
        <= 1.25 * max(low, 0.01),
        "no probe failed": all(figures[f"t{t}_failed_probes"] == 0 for t in SIZES),
    }
    return figures


def bare(config_path: Path, rounds: int) -> dict[str, float]:
    """The baseline: the exporter's own lanes (probers, targets, clients) called in one loop."""
    from ddb_failover.config import load
    from exporter.app import Exporter

    config = load(str(config_path))
    lanes = Exporter(config, process_metrics=False).scheduler.lanes
    interval = config.exporter.interval_seconds

    def one_round() -> None:
        # At the exporter's pace: a process woken once an interval pays for cold
        # caches that one looping flat out does not.
        started = time.monotonic()
        for lane in lanes:
            lane.prober(lane.target)
        time.sleep(max(0.0, started + interval - time.monotonic()))

    for _ in range(2):  # warm-up, as for the exporter
        one_round()
    started = time.process_time()
    for _ in range(rounds):
        one_round()
    cpu = (time.process_time() - started) / rounds
    return {"cpu_per_round": cpu, "rss": rss_mb(os.getpid())[0], "failed": 0}


BENCHMARKS = {"exporter_scale": exporter_scale}

if __name__ == "__main__" and sys.argv[1:2] == ["bare"]:
    print(json.dumps(bare(Path(sys.argv[2]), int(sys.argv[3]))))
