"""Sandbox regions are real moto processes whose outages behave like real ones."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from sandbox.net import wait_until
from tests.conftest import CANARY_KEY, CANARY_VALUE

TABLE = "wordpress_posts"


def get(client: Any, key: str) -> dict[str, Any] | None:
    item = client.get_item(TableName=TABLE, Key={CANARY_KEY: {"S": key}}, ConsistentRead=True)
    return item.get("Item")


def put(client: Any, key: str, **attrs: str) -> None:
    item = {CANARY_KEY: {"S": key}, **{k: {"S": v} for k, v in attrs.items()}}
    client.put_item(TableName=TABLE, Item=item)


def test_regions_start_with_table_and_canary(start_regions) -> None:
    regions = start_regions()
    for region in regions.values():
        assert get(region.client(), CANARY_VALUE) is not None
        assert region.pid is not None
    assert len({r.port for r in regions.values()}) == 2


def test_pause_is_a_black_hole_and_resume_mends(start_regions) -> None:
    region = start_regions(["us-east-1"])["us-east-1"]
    client = region.client(timeout=0.5)
    region.pause()
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        get(client, CANARY_VALUE)
    assert 0.4 < time.monotonic() - started < 10  # the timeout holds: not botocore's 60 s
    region.resume()
    assert get(client, CANARY_VALUE) is not None


def test_stop_refuses_connections_and_start_reseeds(start_regions) -> None:
    region = start_regions(["us-east-1"])["us-east-1"]
    client = region.client(timeout=0.5)
    region.stop()
    assert region.pid is None
    with pytest.raises((EndpointConnectionError, ConnectTimeoutError)):
        get(client, CANARY_VALUE)
    region.start()
    assert get(client, CANARY_VALUE) is not None


def test_slow_adds_latency_and_fast_removes_it(start_regions) -> None:
    region = start_regions(["us-east-1"])["us-east-1"]
    client = region.client(timeout=10)
    region.slow(2000)
    started = time.monotonic()
    get(client, CANARY_VALUE)
    assert time.monotonic() - started >= 2.0
    region.fast()
    started = time.monotonic()
    get(client, CANARY_VALUE)
    assert time.monotonic() - started < 1.5  # the 2 s delay is gone


def test_replicator_copies_writes_after_its_delay(start_regions, start_replicator) -> None:
    regions = start_regions()
    east, west = regions["us-east-1"].client(), regions["eu-west-1"].client()
    start_replicator(regions, [TABLE], delay_seconds=0.6)
    written = time.monotonic()
    put(east, "post-1", title="hello")
    item = wait_until(lambda: get(west, "post-1"), 30, message="post-1 in eu-west-1")
    elapsed = time.monotonic() - written
    assert item["title"] == {"S": "hello"}
    assert elapsed >= 0.6  # never before its delay
    # Replicated items are marked and never echoed back to their source.
    assert item["aws:rep:updateregion"] == {"S": "us-east-1"}
    put(west, "post-2")
    wait_until(lambda: get(east, "post-2"), 30, message="post-2 in us-east-1")
    assert "aws:rep:updateregion" not in (get(west, "post-2") or {})
    west.delete_item(TableName=TABLE, Key={CANARY_KEY: {"S": "post-1"}})
    wait_until(lambda: get(east, "post-1") is None, 30, message="delete replicated")


def test_replicator_holds_writes_for_a_paused_region(start_regions, start_replicator) -> None:
    regions = start_regions()
    east, west = regions["us-east-1"].client(), regions["eu-west-1"].client()
    replicator = start_replicator(regions, [TABLE], delay_seconds=0.1)
    regions["eu-west-1"].pause()
    put(east, "during-outage")
    wait_until(lambda: replicator.pending() >= 1, 30, message="write queued for eu-west-1")
    regions["eu-west-1"].resume()
    wait_until(lambda: get(west, "during-outage"), 30, message="write delivered after resume")


def test_restarted_region_is_refilled_from_a_peer(start_regions, start_replicator) -> None:
    regions = start_regions()
    east = regions["us-east-1"].client()
    start_replicator(regions, [TABLE], delay_seconds=0.1)
    put(east, "older-post")
    west_region = regions["eu-west-1"]
    wait_until(lambda: get(west_region.client(), "older-post"), 30, message="first copy")
    west_region.stop()
    west_region.start()
    wait_until(lambda: get(west_region.client(), "older-post"), 30, message="refill")


def test_replication_into_a_paused_region_queues_until_resumed(
    start_regions, start_replicator
) -> None:
    regions = start_regions()
    east, west = regions["us-east-1"].client(), regions["eu-west-1"].client()
    replicator = start_replicator(regions, [TABLE], delay_seconds=0.1)
    replicator.pause_into("eu-west-1")
    assert replicator.paused("eu-west-1")
    put(east, "queued")
    put(west, "outbound")  # replication out of the paused region goes on
    wait_until(lambda: get(east, "outbound"), 30, message="outbound in us-east-1")
    # "queued" was due before "outbound" arrived: only the pause holds it back.
    assert get(west, "queued") is None
    assert replicator.behind("eu-west-1")
    replicator.resume_into("eu-west-1")
    wait_until(lambda: get(west, "queued"), 30, message="queued write applied on resume")
    wait_until(lambda: replicator.pending() == 0, 30, message="nothing left queued")


def test_replication_delay_changes_while_running(start_regions, start_replicator) -> None:
    regions = start_regions()
    east, west = regions["us-east-1"].client(), regions["eu-west-1"].client()
    replicator = start_replicator(regions, [TABLE], delay_seconds=0.1)
    replicator.set_delay(1.5, "eu-west-1")
    assert (replicator.delay_of("eu-west-1"), replicator.delay_of("us-east-1")) == (1.5, 0.1)
    written = time.monotonic()
    put(east, "slow-lane")
    put(west, "fast-lane")
    wait_until(lambda: get(east, "fast-lane"), 30, message="fast-lane in us-east-1")
    assert time.monotonic() - written < 1.5
    wait_until(lambda: get(west, "slow-lane"), 30, message="slow-lane in eu-west-1")
    assert time.monotonic() - written >= 1.5
    with pytest.raises(ValueError, match="must not be negative"):
        replicator.set_delay(-1)
    with pytest.raises(ValueError, match="unknown region 'ap-south-1'"):
        replicator.pause_into("ap-south-1")
