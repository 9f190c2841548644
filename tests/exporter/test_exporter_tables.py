"""dynamodb_table_info and dynamodb_replica_status: DescribeTable, read beside the probes.

Against STRONG sandbox tables (two replicas and a witness, real moto processes)
and the eventual-consistency regions the other exporter tests share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ddb_failover import heartbeat
from ddb_failover.config import Config
from exporter.tables import Description, TableStates, parse
from sandbox.net import wait_until
from sandbox.quorum import StrongMembers
from tests.conftest import STRONG_REGIONS, WITNESS
from tests.exporter.exporterlib import CANARY, TABLE, config_for, scrape, value
from tests.exporter.test_exporter_metrics_report import parsed

pytestmark = pytest.mark.slow
EAST, EAST2 = STRONG_REGIONS
DESCRIBE_INTERVAL = 0.5
HUNG_TIMEOUT = 3.0


def strong_config(members: StrongMembers, **exporter: Any) -> Config:
    settings = {"describe_interval_seconds": DESCRIBE_INTERVAL, **exporter}
    return config_for(list(members.regions.values()), **settings)


def labelled(samples: dict[Any, float], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The samples of metric name, by the values of the labels keys."""
    return {
        tuple(dict(labels)[key] for key in keys): found
        for (sample, labels), found in samples.items()
        if sample == name
    }


def statuses(samples: dict[Any, float]) -> dict[tuple[str, ...], float]:
    return labelled(samples, "dynamodb_replica_status", "region", "status")


def info(samples: dict[Any, float]) -> dict[tuple[str, ...], float]:
    return labelled(samples, "dynamodb_table_info", "consistency", "witness_region")


def test_strong_table_info_and_replica_statuses(
    strong: StrongMembers, run_exporter: Callable[[Config], str]
) -> None:
    url = run_exporter(strong_config(strong))
    wait_until(lambda: info(scrape(url)[0]), 30, message="the table described")
    samples, _ = scrape(url)
    assert info(samples) == {("STRONG", WITNESS): 1.0}
    assert statuses(samples) == {(EAST, "ACTIVE"): 1.0, (EAST2, "ACTIVE"): 1.0}
    described = value(samples, "dynamodb_table_describe_last_success_timestamp_seconds")
    assert described is not None and abs(described - time.time()) < 10
    # The probes work on a STRONG table: reads and writes succeed in both replicas.
    wait_until(
        lambda: all(
            value(scrape(url)[0], "dynamodb_probe_success", region=r, operation=op) == 1
            for r in (EAST, EAST2)
            for op in ("read", "write")
        ),
        30,
        message="probes succeeding",
    )

    strong.coordinator.set_status(EAST2, "REGION_DISABLED")
    wait_until(
        lambda: statuses(scrape(url)[0]).get((EAST2, "REGION_DISABLED")),
        30,
        message="the disabled replica reported",
    )
    # Only the current status is exported: ACTIVE's series left with the change.
    assert statuses(scrape(url)[0]) == {(EAST, "ACTIVE"): 1.0, (EAST2, "REGION_DISABLED"): 1.0}


def test_a_paused_region_delays_neither_the_description_nor_the_probes(
    strong: StrongMembers, run_exporter: Callable[[Config], str]
) -> None:
    # A long timeout, so that a scrape waiting on the hung DescribeTable could not pass for quick.
    url = run_exporter(
        strong_config(strong, timeout_seconds=HUNG_TIMEOUT, interval_seconds=HUNG_TIMEOUT)
    )
    wait_until(lambda: info(scrape(url)[0]), 30, message="the table described")
    strong.all[EAST].pause()  # the first region asked
    strong.coordinator.set_status(EAST2, "UPDATING")
    started = time.monotonic()
    wait_until(
        lambda: statuses(scrape(url)[0]).get((EAST2, "UPDATING")),
        30,
        message="a description read from us-east-2 while us-east-1 hangs",
    )
    samples, took = scrape(url)
    assert took < HUNG_TIMEOUT / 2  # the scrape never waits on DescribeTable
    assert time.monotonic() - started < HUNG_TIMEOUT * 5  # one timeout, then the next region
    # us-east-2 keeps its quorum through the witness: its probes never stop succeeding.
    assert value(samples, "dynamodb_probe_success", region=EAST2, operation="write") == 1
    assert value(samples, "dynamodb_probe_success", region=EAST2, operation="read") == 1


def test_a_write_conflict_is_no_probe_failure(
    strong: StrongMembers, run_exporter: Callable[[Config], str]
) -> None:
    url = run_exporter(strong_config(strong))
    wait_until(
        lambda: value(scrape(url)[0], "dynamodb_probe_success", region=EAST, operation="write"),
        30,
        message="writes succeeding",
    )
    beat = json.dumps({CANARY["key"]: {"S": heartbeat.key_value(EAST)}}, sort_keys=True)
    conflicts = strong.coordinator.conflicts
    # us-east-2 "writes" us-east-1's heartbeat item: every write of it in us-east-1 conflicts.
    held = strong.coordinator.prepare(EAST2, TABLE, [beat])
    try:
        wait_until(
            lambda: strong.coordinator.conflicts >= conflicts + 4,
            30,
            message="the exporter's heartbeat writes conflicting (two rounds, each retried once)",
        )
        samples, _ = scrape(url)
    finally:
        strong.coordinator.release(held)
    labels = {"region": EAST, "operation": "write"}
    assert value(samples, "dynamodb_probe_success", **labels) == 1
    for reason in ("other", "timeout", "connection", "throttled"):
        assert value(samples, "dynamodb_probe_failures_total", reason=reason, **labels) == 0


@pytest.mark.parametrize(
    ("table", "region", "expected"),
    [
        (
            {
                "TableStatus": "ACTIVE",
                "MultiRegionConsistency": "STRONG",
                "Replicas": [
                    {"RegionName": "us-east-2", "ReplicaStatus": "ACTIVE"},
                    {"RegionName": "us-east-1", "ReplicaStatus": "REGION_DISABLED"},
                ],
                "GlobalTableWitnesses": [{"RegionName": "us-west-2", "WitnessStatus": "ACTIVE"}],
            },
            "us-east-1",
            Description(
                "STRONG", "us-west-2", {"us-east-1": "REGION_DISABLED", "us-east-2": "ACTIVE"}
            ),
        ),
        # Replicas listing only the other regions: the answering one is the table's status.
        (
            {
                "TableStatus": "UPDATING",
                "Replicas": [{"RegionName": "eu-west-1", "ReplicaStatus": "ACTIVE"}],
            },
            "us-east-1",
            Description("EVENTUAL", "", {"eu-west-1": "ACTIVE", "us-east-1": "UPDATING"}),
        ),
        ({"TableStatus": "ACTIVE"}, "us-east-1", Description("EVENTUAL", "", {})),
    ],
)
def test_parse(table: dict[str, Any], region: str, expected: Description) -> None:
    assert parse({"Table": table}, region) == expected


def test_rendered_series_are_the_registrys_and_keep_only_current_values() -> None:
    registry = CollectorRegistry()
    states = TableStates('v "1"', registry)
    assert states.render() == b""  # nothing before a first answer
    states.record("t1", Description("STRONG", "us-west-2", {"us-east-1": "ACTIVE"}), 1700000000.5)
    states.record("t2", Description("EVENTUAL", "", {}), 1700000001.0)
    assert parsed(states.render().decode()) == parsed(generate_latest(registry).decode())
    states.record(
        "t1", Description("STRONG", "us-west-2", {"us-east-1": "ARCHIVING"}), 1700000002.0
    )
    lines = states.render().decode()
    assert 'region="us-east-1",status="ARCHIVING"' in lines
    assert "ACTIVE" not in lines
    assert parsed(lines) == parsed(generate_latest(registry).decode())
