"""Copies writes between sandbox regions the way a Global Table does.

Eventual consistency (the default): each region's table stream is read, and
every local write is applied to every other region ``delay`` seconds after it
was seen. Replicated items carry the ``aws:rep:updateregion`` attribute, as
Global Tables version 2017.11.29 did, so they are not echoed back. A region
that restarts empty is refilled from a peer.

Strong consistency (``synchronous=True``): no streams; a region's write is
handed over by commit(), which waits until another member has applied it (a
witness only acknowledges it). sandbox/quorum.py decides when a write may be
made; this module only moves it.

Replication into a region can be paused (its writes queue) and resumed, and
its delay changed while running.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddb_failover.logs import kv
from sandbox.regions import dynamodb_client

log = logging.getLogger("sandbox.replicator")

Write = tuple[dict[str, Any], dict[str, Any] | None]  # (keys, new image; None when deleted)

MARKER = "aws:rep:updateregion"
WITNESS_PATH = "/_sandbox/witness"
# Marks the replicator's own writes, which a STRONG region applies as they come.
REPLICATED_HEADER = "X-Sandbox-Replicated"
POLL_SECONDS = 0.05
RETRY_SECONDS = 0.5


def _replicated(request: Any, **_: Any) -> None:
    request.headers[REPLICATED_HEADER] = "1"


class Commit:
    """One synchronous write: which members have applied it so far."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.acks: set[str] = set()
        self.done = False  # its writer has had its answer: a member without it now lags

    def ack(self, member: str) -> None:
        """Record that member has applied every write of the commit."""
        with self._cond:
            self.acks.add(member)
            self._cond.notify_all()

    def wait(self, expected: Iterable[str], timeout: float) -> int:
        """Wait until every expected member and at least one has applied it, at most timeout
        seconds; how many have. The commit is done from then on."""
        wanted = set(expected)
        with self._cond:
            self._cond.wait_for(lambda: bool(self.acks) and wanted <= self.acks, timeout)
            self.done = True
            return len(self.acks)


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    table: str = field(compare=False)
    source: str = field(compare=False)
    event: str = field(compare=False)
    keys: dict[str, Any] = field(compare=False)
    image: dict[str, Any] | None = field(compare=False)
    commit: Commit | None = field(compare=False, default=None)
    last: bool = field(compare=False, default=True)  # the commit's last write to this target


class _Target:
    """Applies writes to one region, in order, retrying while it is down or paused."""

    def __init__(
        self, name: str, url: str, stop: threading.Event, delay: float, mark: bool = True
    ) -> None:
        self.name = name
        self.url = url
        self.client = dynamodb_client(name, url)
        self.stop = stop
        self.delay = delay  # seconds from a write's source to here (eventual consistency)
        self.mark = mark  # tag replicated items with their source, so streams don't echo them
        if not mark:  # strong consistency: the region server must not take it for a client's
            self.client.meta.events.register("request-created", _replicated)
        self.paused = False
        self.queue: list[_Pending] = []
        self.cond = threading.Condition()
        self.echo_deletes: set[tuple[str, str]] = set()

    def put(self, pending: _Pending) -> None:
        with self.cond:
            heapq.heappush(self.queue, pending)
            self.cond.notify()

    def set_paused(self, paused: bool) -> None:
        with self.cond:
            self.paused = paused
            self.cond.notify()

    def behind(self) -> bool:
        """True while writes wait here that their writers were told are done (or a refill)."""
        with self.cond:
            return any(p.commit is None or p.commit.done for p in self.queue)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.cond:
                while (not self.queue or self.paused) and not self.stop.is_set():
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
                if pending.commit is not None and pending.last:
                    pending.commit.ack(self.name)
            else:
                self.stop.wait(RETRY_SECONDS)

    def _apply(self, pending: _Pending) -> bool:
        try:
            if pending.event == "REMOVE":
                if self.mark:
                    self.echo_deletes.add((pending.table, repr(sorted(pending.keys.items()))))
                self.client.delete_item(TableName=pending.table, Key=pending.keys)
            else:
                item = dict(pending.image or {})
                if self.mark:
                    item[MARKER] = {"S": pending.source}
                self.client.put_item(TableName=pending.table, Item=item)
            return True
        except Exception as exc:  # the region may be down: keep the write and retry
            log.debug(kv(msg="apply failed", region=self.name, table=pending.table, error=exc))
            return False


class _WitnessTarget(_Target):
    """A witness holds no table: it only acknowledges each write it is sent."""

    def _apply(self, pending: _Pending) -> bool:
        request = urllib.request.Request(f"{self.url}{WITNESS_PATH}", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except OSError as exc:
            log.debug(kv(msg="witness ack failed", region=self.name, error=exc))
            return False


class Replicator:
    """Replicates every table between every pair of regions (and to a witness, if any)."""

    def __init__(
        self,
        regions: Mapping[str, str],
        tables: Sequence[str],
        delay_seconds: float = 0.5,
        *,
        synchronous: bool = False,
        witness: tuple[str, str] | None = None,
    ) -> None:
        if witness is not None and not synchronous:
            raise ValueError("a witness takes part in strong consistency only")
        self.regions = dict(regions)
        self.tables = tuple(tables)
        self.synchronous = synchronous
        self._stop = threading.Event()
        self._seq = itertools.count()
        delay = 0.0 if synchronous else delay_seconds
        self._targets = {
            name: _Target(name, url, self._stop, delay, mark=not synchronous)
            for name, url in regions.items()
        }
        if witness is not None:
            name, url = witness
            self._targets[name] = _WitnessTarget(name, url, self._stop, 0.0)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one applier per member and, with eventual consistency, a reader per stream."""
        for target in self._targets.values():
            self._spawn(target.run, f"apply-{target.name}")
        if self.synchronous:
            return
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

    def _target(self, region: str) -> _Target:
        target = self._targets.get(region)
        if target is None:
            raise ValueError(f"unknown region {region!r}; known: {', '.join(self._targets)}")
        return target

    def pause_into(self, region: str) -> None:
        """Stop applying writes to region; they queue until resume_into."""
        self._target(region).set_paused(True)

    def resume_into(self, region: str) -> None:
        """Apply the writes queued for region, and replicate into it again."""
        self._target(region).set_paused(False)

    def paused(self, region: str) -> bool:
        """True while replication into region is paused."""
        return self._target(region).paused

    def behind(self, region: str) -> bool:
        """True while writes wait to be applied to region."""
        return self._target(region).behind()

    def set_delay(self, seconds: float, region: str | None = None) -> None:
        """Replicate later writes into region (every region by default) after seconds."""
        if self.synchronous:
            raise ValueError("strong consistency replicates synchronously: it has no delay")
        if seconds < 0:
            raise ValueError("a replication delay must not be negative")
        for target in [self._target(region)] if region else self._targets.values():
            target.delay = seconds

    def delay_of(self, region: str) -> float:
        """The current replication delay into region, in seconds."""
        return self._target(region).delay

    def send(self, source: str, table: str, writes: Sequence[Write]) -> Commit:
        """Queue source's writes ((keys, image or None) pairs) for every other member, now.

        Wait on the returned Commit for a member to have applied them all. Members
        that have not keep them queued and apply them when they can: a region
        catching up.
        """
        commit = Commit()
        now = time.time()
        for name, target in self._targets.items():
            if name == source:
                continue
            for index, (keys, image) in enumerate(writes):
                event = "MODIFY" if image is not None else "REMOVE"
                last = index == len(writes) - 1
                target.put(
                    _Pending(now, next(self._seq), table, source, event, keys, image, commit, last)
                )
        return commit

    def refill(self, region: str) -> bool:
        """Queue every item of every table from a caught-up peer for region (it restarted).

        False when no peer could be read: try again later.
        """
        return all(self._refill(region, table) for table in self.tables)

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
        now = time.time()
        for name, target in self._targets.items():
            if name != region:
                pending = _Pending(
                    now + target.delay, next(self._seq), table, region, event, keys, image
                )
                target.put(pending)

    def _refill(self, region: str, table: str) -> bool:
        target = self._targets[region]
        for peer, url in self.regions.items():
            if peer == region or (self.synchronous and self._targets[peer].behind()):
                continue
            try:
                client = dynamodb_client(peer, url)
                if self.synchronous:  # the replicator's own read: no quorum to ask, no lock
                    client.meta.events.register("request-created", _replicated)
                paginator = client.get_paginator("scan")
                for page in paginator.paginate(TableName=table, ConsistentRead=True):
                    for item in page["Items"]:
                        target.put(
                            _Pending(time.time(), next(self._seq), table, peer, "INSERT", {}, item)
                        )
                return True
            except Exception as exc:
                log.debug(kv(msg="refill source failed", region=peer, table=table, error=exc))
        return False


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
