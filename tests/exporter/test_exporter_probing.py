"""The exporter against real moto regions: healthy, paused, stopped, missing data."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

from ddb_failover.config import Config
from sandbox.net import wait_until
from sandbox.regions import Region, create_table
from tests.exporter.exporterlib import INTERVAL, NAMES, TABLE, TIMEOUT, config_for, scrape, value

pytestmark = pytest.mark.slow
OPS = ("read", "write")


def all_succeeding(url: str, regions: tuple[str, ...] = NAMES) -> bool:
    samples, _ = scrape(url)
    return all(
        value(samples, "dynamodb_probe_success", region=r, operation=op) == 1
        for r in regions
        for op in OPS
    )


def failures(url: str, region: str, operation: str, reason: str, table: str = TABLE) -> float:
    samples, _ = scrape(url)
    labels = {"region": region, "operation": operation, "reason": reason, "table": table}
    found = value(samples, "dynamodb_probe_failures_total", **labels)
    assert found is not None, f"series missing: {labels}"
    return found


def test_healthy_regions_all_succeed(
    healthy: list[Region], run_exporter: Callable[[Config], str]
) -> None:
    url = run_exporter(config_for(healthy))
    wait_until(lambda: all_succeeding(url), 30, message="every region/operation succeeding")
    samples, _ = scrape(url)
    for region in NAMES:
        for op in OPS:
            labels = {"region": region, "operation": op}
            assert value(samples, "dynamodb_probe_last_success_timestamp_seconds", **labels)
            assert value(samples, "dynamodb_probe_duration_seconds_count", **labels)
            for reason in ("timeout", "connection", "not_found", "throttled", "access_denied"):
                assert value(samples, "dynamodb_probe_failures_total", reason=reason, **labels) == 0
    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
        assert (response.status, response.read()) == (200, b"ok\n")
    # moto's tables are regional: DescribeTable names no mode (EVENTUAL) and no replica.
    info = wait_until(
        lambda: value(
            scrape(url)[0], "dynamodb_table_info", consistency="EVENTUAL", witness_region=""
        ),
        30,
        message="the table described at start",
    )
    assert info == 1
    assert not [key for key in scrape(url)[0] if key[0] == "dynamodb_replica_status"]


def lasting_threads() -> int:
    """Threads alive, but for the metrics server's one per scrape (it may still be ending)."""
    return sum(not t.name.endswith("(process_request_thread)") for t in threading.enumerate())


def test_paused_region_times_out_fast_and_recovers(
    healthy: list[Region], run_exporter: Callable[[Config], str]
) -> None:
    url = run_exporter(config_for(healthy))
    wait_until(lambda: all_succeeding(url), 30, message="healthy before the pause")
    others = NAMES[:1] + NAMES[2:]
    threads_before = lasting_threads()

    healthy[1].pause()
    paused_at = time.monotonic()
    wait_until(
        lambda: (
            value(scrape(url)[0], "dynamodb_probe_success", region=NAMES[1], operation="read") == 0
        ),
        30,
        interval=0.02,
        message="paused region's read success dropping to 0",
    )
    detected = time.monotonic() - paused_at
    # The contract: within one interval plus one timeout (plus this poll's own latency).
    assert detected < INTERVAL + TIMEOUT + 0.3, f"took {detected:.2f}s to notice the pause"
    assert failures(url, NAMES[1], "read", "timeout") >= 1
    assert failures(url, NAMES[1], "read", "connection") == 0

    # While it hangs for several rounds: scrapes stay fast, the others stay up,
    # and stuck probes are not piled up thread on thread.
    latencies = []
    deadline = time.monotonic() + 4 * INTERVAL
    while time.monotonic() < deadline:
        samples, elapsed = scrape(url)
        latencies.append(elapsed)
        for region in others:
            for op in OPS:
                assert value(samples, "dynamodb_probe_success", region=region, operation=op) == 1
    # A scrape that waited on a stuck probe would take a whole timeout.
    assert max(latencies) < TIMEOUT / 3, f"slowest scrape {max(latencies) * 1000:.1f} ms"
    assert failures(url, NAMES[1], "read", "timeout") >= 3
    assert lasting_threads() <= threads_before + 3

    healthy[1].resume()
    wait_until(lambda: all_succeeding(url), 30, message="paused region recovering")


def test_stopped_region_is_a_connection_failure(
    healthy: list[Region], run_exporter: Callable[[Config], str]
) -> None:
    url = run_exporter(config_for(healthy))
    wait_until(lambda: all_succeeding(url), 30, message="healthy before the stop")
    healthy[2].stop()
    wait_until(
        lambda: (
            failures(url, NAMES[2], "write", "connection") >= 1
            and failures(url, NAMES[2], "read", "connection") >= 1
        ),
        30,
        message="connection failures from the stopped region",
    )
    samples, _ = scrape(url)
    assert value(samples, "dynamodb_probe_success", region=NAMES[2], operation="read") == 0
    assert all_succeeding(url, NAMES[:2])
    healthy[2].start()
    wait_until(lambda: all_succeeding(url), 30, message="restarted region recovering")


def test_missing_canary_is_not_found(
    healthy: list[Region], run_exporter: Callable[[Config], str]
) -> None:
    region = healthy[0]
    client = region.client()
    key = {region.canary_key: {"S": region.canary_value}}
    url = run_exporter(config_for(healthy))
    wait_until(lambda: all_succeeding(url), 30, message="healthy before deleting the canary")
    client.delete_item(TableName=TABLE, Key=key)
    try:
        wait_until(
            lambda: failures(url, region.name, "read", "not_found") >= 1,
            30,
            message="not_found for the missing canary",
        )
        samples, _ = scrape(url)
        assert value(samples, "dynamodb_probe_success", region=region.name, operation="read") == 0
        # The write probe and the other regions are unaffected.
        assert value(samples, "dynamodb_probe_success", region=region.name, operation="write") == 1
        assert all_succeeding(url, NAMES[1:])
    finally:
        client.put_item(TableName=TABLE, Item=key)
    wait_until(lambda: all_succeeding(url), 30, message="canary restored")


def test_table_missing_in_one_region_is_not_found_there_only(
    healthy: list[Region],
    run_exporter: Callable[[Config], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = f"wordpress_extra_{int(time.time() * 1000)}"
    owner = healthy[0]
    client = owner.client()
    create_table(client, extra, owner.canary_key)
    client.put_item(TableName=extra, Item={owner.canary_key: {"S": owner.canary_value}})
    caplog.set_level(logging.WARNING, logger="exporter.scheduler")

    url = run_exporter(config_for(healthy, tables=[TABLE, extra]))
    lacking = NAMES[1:]
    wait_until(
        lambda: all(failures(url, r, op, "not_found", extra) >= 1 for r in lacking for op in OPS),
        30,
        message="not_found where the table is missing",
    )
    samples, _ = scrape(url)
    for op in OPS:
        labels = {"region": owner.name, "operation": op, "table": extra}
        assert value(samples, "dynamodb_probe_success", **labels) == 1
    assert all_succeeding(url)  # the table every region has is still fine everywhere
    lines = [r.getMessage() for r in caplog.records if "reason=not_found" in r.getMessage()]
    for region in lacking:
        assert any(
            f"region={region}" in line
            and f"table {extra} does not exist in region {region}" in line
            for line in lines
        ), lines
