"""Exporter: /metrics latency healthy vs one region paused, and resident memory.

Three sandbox regions with ten tables each; the exporter runs as its own
process (as in production) so its RSS is its own. Scrape latency is measured
over many sequential scrapes, each a new connection as Prometheus makes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import Figures
from bench._exporterlib import rss_mb, scrape, start_exporter
from sandbox.net import wait_until
from sandbox.regions import Region
from sandbox.stack import stop_process

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
TABLES = tuple(f"wordpress_t{i:02d}" for i in range(10))
CANARY = ("health_check_id", "ping")
SCRAPES = int(os.environ.get("BENCH_SCRAPES", "2000"))  # per phase
BLOCKS = 5
# The sandbox's probe timings: every lane probes every 2 s, 90 lanes here.
INTERVAL = float(os.environ.get("BENCH_PROBE_INTERVAL", "2"))
TIMEOUT = float(os.environ.get("BENCH_PROBE_TIMEOUT", "1"))


def _config(regions: Sequence[Region]) -> dict[str, Any]:
    return {
        "tables": list(TABLES),
        "canary": {"key": CANARY[0], "value": CANARY[1]},
        "regions": [{"name": r.name, "endpoint_url": r.url} for r in regions],
        "exporter": {
            "vantage": "bench",
            "interval_seconds": INTERVAL,
            "timeout_seconds": TIMEOUT,
        },
    }


def _start_static(directory: Path) -> tuple[subprocess.Popen[str], str]:
    """The floor: Python's own http.server handing out a file of the same size."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
         "--directory", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://...) ..."
    return process, f"http://127.0.0.1:{line.split(' port ')[1].split()[0]}"


def _successes(url: str) -> dict[bytes, bool]:
    """Each dynamodb_probe_success series (its label text) -> whether it is 1."""
    found = {}
    for line in scrape(url)[1].splitlines():
        if line.startswith(b"dynamodb_probe_success{"):
            labels, _, value = line.rpartition(b" ")
            found[labels] = value == b"1.0"
    return found


def _region_ok(url: str, region: str) -> bool | None:
    """True if all of region's probes succeed, False if all fail, None when mixed."""
    mine = [ok for labels, ok in _successes(url).items() if f'region="{region}"'.encode() in labels]
    return all(mine) if all(mine) or not any(mine) else None


def _latencies(url: str, count: int) -> list[float]:
    for _ in range(20):  # warm-up
        scrape(url)
    return [scrape(url)[0] for _ in range(count)]


def _p(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def exporter_metrics() -> Figures:
    """Scrape latency healthy vs paused, and RSS, with 10 tables x 3 regions."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as tmp:
        workdir = Path(tmp)
        regions = [Region(name, TABLES, *CANARY, workdir) for name in REGIONS]
        process = static = None
        try:
            for region in regions:
                region.start()
            config = workdir / "ddb-failover.yml"
            config.write_text(yaml.safe_dump(_config(regions)), encoding="utf-8")
            process, url = start_exporter(config)
            every = len(REGIONS) * len(TABLES) * 2
            wait_until(
                lambda: len(_successes(url)) == every and all(_successes(url).values()),
                60,
                message="every probe succeeding",
            )
            body = scrape(url)[1]
            (workdir / "static").mkdir()
            (workdir / "static" / "metrics").write_bytes(body)
            static, static_url = _start_static(workdir / "static")
            # Healthy and paused blocks alternate, so drifting load on the machine
            # weighs on both phases alike and the ratio stays meaningful.
            healthy: list[float] = []
            paused: list[float] = []
            floor: list[float] = []
            victim = regions[1]
            for _ in range(BLOCKS):
                floor += _latencies(static_url, SCRAPES // BLOCKS)
                healthy += _latencies(url, SCRAPES // BLOCKS)
                victim.pause()
                wait_until(lambda: _region_ok(url, victim.name) is False, 10, message="paused")
                paused += _latencies(url, SCRAPES // BLOCKS)
                victim.resume()
                wait_until(lambda: _region_ok(url, victim.name), 15, message="recovered")
            healthy.sort()
            paused.sort()
            floor.sort()
            rss, peak = rss_mb(process.pid)
        finally:
            if static is not None:
                static.kill()
                static.wait()
            if process is not None:
                stop_process(process, grace=10)
            for region in regions:
                region.close()

    healthy_p50, paused_p50 = statistics.median(healthy), statistics.median(paused)
    healthy_p99, paused_p99 = _p(healthy, 0.99), _p(paused, 0.99)
    ratio_p50, ratio_p99 = paused_p50 / healthy_p50, paused_p99 / healthy_p99
    return {
        "regions": len(REGIONS),
        "tables": len(TABLES),
        "scrapes_per_phase": len(healthy),
        "blocks_per_phase": BLOCKS,
        "probe_interval_seconds": INTERVAL,
        "probe_timeout_seconds": TIMEOUT,
        "cpus": os.cpu_count(),
        # Other work on the machine shows in the tail: record how busy it was.
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "metrics_body_bytes": len(body),
        "healthy_p50_ms": round(healthy_p50 * 1000, 3),
        "healthy_p99_ms": round(healthy_p99 * 1000, 3),
        "paused_p50_ms": round(paused_p50 * 1000, 3),
        "paused_p99_ms": round(paused_p99 * 1000, 3),
        "paused_over_healthy_p50": round(ratio_p50, 3),
        "paused_over_healthy_p99": round(ratio_p99, 3),
        # The machine's floor: a static file of the same size from http.server.
        "static_p50_ms": round(statistics.median(floor) * 1000, 3),
        "static_p99_ms": round(_p(floor, 0.99) * 1000, 3),
        "healthy_over_static_p99": round(healthy_p99 / _p(floor, 0.99), 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
        "goals": {
            "paused/healthy median within 1.2x": ratio_p50 <= 1.2,
            "p99 under 20 ms (healthy and paused)": max(healthy_p99, paused_p99) < 0.020,
            "RSS under 80 MB": peak < 80,
        },
    }


BENCHMARKS = {"exporter_metrics": exporter_metrics}
