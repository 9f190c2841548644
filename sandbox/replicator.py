"""Copies writes between sandbox regions the way a Global Table does, with a delay.

Each region's table stream is read; every local write is applied to every other
region ``delay`` seconds after it was seen. Replicated items carry the
``aws:rep:updateregion`` attribute, as Global Tables version 2017.11.29 did, so
they are not echoed back. A region that restarts empty is refilled from a peer.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddb_failover.logs import kv
from sandbox.regions import dynamodb_client

log = logging.getLogger("sandbox.replicator")

MARKER = "aws:rep:updateregion"
POLL_SECONDS = 0.05
RETRY_SECONDS = 0.5


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    table: str = field(compare=False)
    source: str = field(compare=False)
    event: str = field(compare=False)
    keys: dict[str, Any] = field(compare=False)
    image: dict[str, Any] | None = field(compare=False)


class _Target:
    """Applies delayed writes to one region, in order, retrying while it is down."""

    def __init__(self, name: str, url: str, stop: threading.Event) -> None:
        self.name = name
        self.client = dynamodb_client(name, url)
        self.stop = stop
        self.queue: list[_Pending] = []
        self.cond = threading.Condition()
        self.echo_deletes: set[tuple[str, str]] = set()

    def put(self, pending: _Pending) -> None:
        with self.cond:
            heapq.heappush(self.queue, pending)
            self.cond.notify()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.cond:
                while not self.queue and not self.stop.is_set():
                    self.cond.wait(0.5)
                if self.stop.is_set():
                    return
                wait = self.queue[0].due - time.time()
                if wait > 0:
                    self.cond.wait(min(wait, 0.5))
                    continue
                pending = self.queue[0]
            if self._apply(pending):
                with self.cond:
                    heapq.heappop(self.queue)
            else:
                self.stop.wait(RETRY_SECONDS)

    def _apply(self, pending: _Pending) -> bool:
        try:
            if pending.event == "REMOVE":
                self.echo_deletes.add((pending.table, repr(sorted(pending.keys.items()))))
                self.client.delete_item(TableName=pending.table, Key=pending.keys)
            else:
                item = dict(pending.image or {})
                item[MARKER] = {"S": pending.source}
                self.client.put_item(TableName=pending.table, Item=item)
            return True
        except Exception as exc:  # the region may be down: keep the write and retry
            log.debug(kv(msg="apply failed", region=self.name, table=pending.table, error=exc))
            return False


class Replicator:
    """Replicates every table between every pair of regions with a fixed delay."""

    def __init__(
        self, regions: Mapping[str, str], tables: Sequence[str], delay_seconds: float = 0.5
    ) -> None:
        self.regions = dict(regions)
        self.tables = tuple(tables)
        self.delay_seconds = delay_seconds
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._targets = {name: _Target(name, url, self._stop) for name, url in regions.items()}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one reader per (region, table) and one applier per region."""
        for target in self._targets.values():
            self._spawn(target.run, f"apply-{target.name}")
        for region in self.regions:
            for table in self.tables:
                self._spawn(lambda r=region, t=table: self._read(r, t), f"read-{region}-{table}")

    def stop(self) -> None:
        """Stop all threads; pending writes are dropped."""
        self._stop.set()
        for target in self._targets.values():
            with target.cond:
                target.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def pending(self) -> int:
        """How many writes wait to be applied, across all regions."""
        return sum(len(t.queue) for t in self._targets.values())

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=f"replicator-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read(self, region: str, table: str) -> None:
        url = self.regions[region]
        client = dynamodb_client(region, url)
        streams = _streams_client(region, url)
        known_arn: str | None = None
        last_seq: str | None = None
        iterator: str | None = None
        while not self._stop.is_set():
            try:
                if iterator is None:
                    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
                    if known_arn is not None and arn != known_arn:
                        log.info(kv(msg="region restarted; refilling", region=region, table=table))
                        self._refill(region, table)
                        last_seq = None
                    known_arn = arn
                    iterator = _iterator(streams, arn, last_seq)
                response = streams.get_records(ShardIterator=iterator)
                iterator = response.get("NextShardIterator")
                for record in response["Records"]:
                    self._route(region, table, record)
                    last_seq = record["dynamodb"]["SequenceNumber"]
                if not response["Records"]:
                    self._stop.wait(POLL_SECONDS)
            except Exception as exc:  # down, restarting or paused: rediscover and retry
                log.debug(kv(msg="read failed", region=region, table=table, error=exc))
                iterator = None
                self._stop.wait(RETRY_SECONDS)

    def _route(self, region: str, table: str, record: dict[str, Any]) -> None:
        data = record["dynamodb"]
        event = record["eventName"]
        image = data.get("NewImage")
        keys = data["Keys"]
        if image is not None and MARKER in image:
            return
        if event == "REMOVE":
            echo = (table, repr(sorted(keys.items())))
            if echo in self._targets[region].echo_deletes:
                self._targets[region].echo_deletes.discard(echo)
                return
        due = time.time() + self.delay_seconds
        for name, target in self._targets.items():
            if name != region:
                target.put(_Pending(due, next(self._seq), table, region, event, keys, image))

    def _refill(self, region: str, table: str) -> None:
        target = self._targets[region]
        for peer, url in self.regions.items():
            if peer == region:
                continue
            try:
                paginator = dynamodb_client(peer, url).get_paginator("scan")
                for page in paginator.paginate(TableName=table, ConsistentRead=True):
                    for item in page["Items"]:
                        target.put(
                            _Pending(time.time(), next(self._seq), table, peer, "INSERT", {}, item)
                        )
                return
            except Exception as exc:
                log.debug(kv(msg="refill source failed", region=peer, table=table, error=exc))


def _streams_client(region: str, url: str) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    from sandbox.regions import SANDBOX_CREDENTIALS

    return boto3.client(
        "dynamodbstreams",
        region_name=region,
        endpoint_url=url,
        config=BotoConfig(connect_timeout=2, read_timeout=2, retries={"total_max_attempts": 1}),
        **SANDBOX_CREDENTIALS,
    )


def _iterator(streams: Any, arn: str, after_seq: str | None) -> str:
    """Resume after the last record seen, or start from the stream's beginning."""
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    where: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
    if after_seq is not None:
        where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after_seq}
    response = streams.get_shard_iterator(StreamArn=arn, ShardId=shards[-1]["ShardId"], **where)
    return str(response["ShardIterator"])
