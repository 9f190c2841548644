"""The drain against real DynamoDB regions (moto servers) and the sandbox's replicator:
writes made before the fence are in the target once the marker is; a paused replication
times the drain out; a dead target cannot hold the fence on past the wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from responder.actions import aws_client
from responder.actions.base import Transition, reconcile
from responder.actions.drain import STOPPED, Drain, Marker
from sandbox.regions import Region as SandboxRegion
from sandbox.replicator import Replicator
from tests.conftest import CANARY_KEY
from tests.responder import test_readiness

EAST, WEST = "us-east-1", "eu-west-1"
TABLES = test_readiness.TABLES
regions = test_readiness.regions  # two moto regions, for this module
DELAY = 0.6  # replication delay: longer than a write and a read
TRANSITION = Transition("t-1", "switchover", EAST, WEST)


@pytest.fixture
def replicator(regions: dict[str, SandboxRegion]) -> Iterator[Replicator]:
    made = Replicator({n: r.url for n, r in regions.items()}, TABLES, DELAY)
    made.start()
    yield made
    made.stop()


def marker(regions: dict[str, SandboxRegion]) -> Marker:
    endpoints: dict[str, str | None] = {n: r.url for n, r in regions.items()}
    return Marker(endpoints, TABLES, CANARY_KEY, aws_client.client_factory(1.0))


def test_writes_before_the_fence_are_in_the_target_once_drained(
    regions: dict[str, SandboxRegion], replicator: Replicator
) -> None:
    east, west = regions[EAST].client(), regions[WEST].client()
    keys = [f"post-{time.time_ns()}-{n}" for n in range(20)]
    for key in keys:  # the application's last writes, just before the fence
        east.put_item(TableName=TABLES[0], Item={CANARY_KEY: {"S": key}, "n": {"S": key}})
    drain = Drain(marker(regions), "t-1", EAST, WEST, 10.0)
    outcome = reconcile(drain, TRANSITION)
    assert outcome.result == "applied" and outcome.after["drained"] is True
    assert outcome.after["marker"] == "t-1"
    assert DELAY <= outcome.after["seconds"] < 10.0
    missing = [
        key
        for key in keys
        if "Item"
        not in west.get_item(TableName=TABLES[0], Key={CANARY_KEY: {"S": key}}, ConsistentRead=True)
    ]
    assert missing == []
    # Resumed after a crash: the marker is there, nothing is written or waited for again.
    again = reconcile(Drain(marker(regions), "t-1", EAST, WEST, 10.0), TRANSITION)
    assert (again.result, again.after) == ("unchanged", {"marker": "t-1"})


def test_a_paused_replication_times_the_drain_out(
    regions: dict[str, SandboxRegion], replicator: Replicator
) -> None:
    replicator.pause_into(WEST)
    try:
        started = time.monotonic()
        outcome = reconcile(Drain(marker(regions), "t-2", EAST, WEST, 1.5), TRANSITION)
        assert time.monotonic() - started < 1.5 + 10.0  # not an endless wait
    finally:
        replicator.resume_into(WEST)
    assert outcome.result == "applied" and outcome.after["drained"] is False
    assert outcome.after["marker"] is None
    assert outcome.after["error"] == (
        f"{WEST} did not show the marker written in {EAST} within 1.5s"
    )


def test_an_abort_ends_the_wait_without_waiting_it_out(
    regions: dict[str, SandboxRegion], replicator: Replicator
) -> None:
    """The transition is aborted while its drain waits (replication paused): the drain
    stops at its next check, says why, and the rollback is not held for the whole wait."""
    asked = threading.Event()
    replicator.pause_into(WEST)
    try:
        timer = threading.Timer(0.5, asked.set)
        timer.start()
        drain = Drain(marker(regions), "t-4", EAST, WEST, 20.0, stopped=asked.is_set)
        outcome = reconcile(drain, TRANSITION)
        timer.cancel()
    finally:
        replicator.resume_into(WEST)
    assert outcome.result == "applied" and outcome.after["drained"] is False
    assert (outcome.after["marker"], outcome.after["error"]) == (None, STOPPED)
    assert outcome.after["seconds"] < 20.0


def test_a_dead_target_cannot_hold_the_fence_past_the_wait(
    regions: dict[str, SandboxRegion], replicator: Replicator
) -> None:
    regions[WEST].pause()  # a black hole: reads hang until their timeout
    try:
        started = time.monotonic()
        outcome = reconcile(Drain(marker(regions), "t-3", EAST, WEST, 2.0), TRANSITION)
        # The wait and its reads (1 s timeout each), far below a read hung for botocore's 60 s.
        assert time.monotonic() - started < 2.0 + 20.0
    finally:
        regions[WEST].resume()
    assert outcome.after["drained"] is False
    assert outcome.after["error"].startswith(f"{WEST} did not show the marker written in {EAST}")
