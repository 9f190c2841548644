"""Replication lag follows the sandbox replicator's delay."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from ddb_failover.config import Config
from sandbox.net import wait_until
from tests.exporter.exporterlib import INTERVAL, TABLE, config_for, scrape, value

pytestmark = pytest.mark.slow
DELAY = 1.5
# Tolerance: a replicated heartbeat is never younger than DELAY (it is applied
# DELAY after the replicator saw it); heartbeats are written once per interval
# and the stream poll, apply and probe add a little, so the median lag lies in
# [DELAY, DELAY + interval + 0.5 s]. A heartbeat write lost to a slow moment
# adds one interval to single samples, so those may reach DELAY + 3 intervals.
LOWER, MEDIAN_UPPER, UPPER = DELAY - 0.01, DELAY + INTERVAL + 0.5, DELAY + 3 * INTERVAL + 0.5


def test_lag_tracks_replicator_delay(
    start_regions: Callable[..., dict],
    start_replicator: Callable[..., object],
    run_exporter: Callable[[Config], str],
) -> None:
    regions = start_regions(("us-east-1", "eu-west-1"), (TABLE,))
    start_replicator(regions, (TABLE,), DELAY)
    # A generous timeout: a heartbeat write lost to a busy machine would age the lag.
    url = run_exporter(config_for(list(regions.values()), timeout_seconds=INTERVAL * 0.9))
    pairs = [("us-east-1", "eu-west-1"), ("eu-west-1", "us-east-1")]

    def lags() -> list[float | None]:
        samples, _ = scrape(url)
        return [
            value(samples, "dynamodb_replication_lag_seconds", source_region=s, region=r)
            for s, r in pairs
        ]

    wait_until(lambda: all(lag is not None for lag in lags()), 30, message="lag series")
    seen: list[float] = []
    deadline = time.monotonic() + 6 * INTERVAL
    while time.monotonic() < deadline:
        current = lags()
        seen.extend(lag for lag in current if lag is not None)
        time.sleep(INTERVAL / 2)  # pacing the samples, not synchronising
    assert len(seen) >= 6, seen
    assert all(LOWER <= lag <= UPPER for lag in seen), (LOWER, UPPER, seen)
    assert LOWER <= statistics.median(seen) <= MEDIAN_UPPER, seen
