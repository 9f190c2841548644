"""Live readiness of a target region at decision time: its canary, the data at risk, its site.

Data at risk = max(0, source_last_healthy - newest source heartbeat seen in the target):
writes the source made after that heartbeat may not have reached the target. In a
strongly consistent table (responder.consistency: strong) every write is already in the
other members, so nothing is at risk (RPO 0) and no heartbeat is read; instead the target
must take a write (this module's write probe, its own heartbeat), which it does only while
it has a quorum. A ReplicatedWriteConflictException answers that probe: no failure. With
regions[].site configured, the target's WordPress is asked its health URL beside the
canary read (responder.decide.site), and only a site that answers makes it ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ddb_failover import consistency, heartbeat
from ddb_failover.config import Canary, Config, Region
from responder.decide import site
from responder.decide.decision import Check, Readiness, SiteAnswer

ReadinessFn = Callable[[Check], Readiness]
# A strongly consistent table refused a write because another region was writing the same
# item: retry-safe, and proof that this region reached a quorum.
WRITE_CONFLICT = "ReplicatedWriteConflictException"
WRITER = "responder"  # the vantage its write probe records
UNREACHABLE = ("timeout", "connection refused or unreachable")


@dataclass(frozen=True)
class Reading:
    """What one live read of a target found, before the source's last-healthy time is applied."""

    canary_ok: bool
    detail: str  # "ok", or why the read failed
    heartbeat_at: float | None  # oldest over tables of the newest source heartbeat; None if absent
    site: SiteAnswer | None = None  # the target's WordPress; None when none is configured
    strong: bool = False  # every table is strongly consistent: RPO 0
    write_ok: bool | None = None  # the write probe of the strong tables; None: none made
    write_detail: str = ""


def evaluate(target: str, reading: Reading, source_last_healthy: float) -> Readiness:
    """Turn a reading into the Readiness decide() uses."""
    risk = None
    if reading.strong:
        risk = 0.0
    elif reading.heartbeat_at is not None:
        risk = max(0.0, source_last_healthy - reading.heartbeat_at)
    detail = "" if reading.canary_ok else reading.detail
    return Readiness(
        target,
        reading.canary_ok,
        risk,
        detail,
        reading.site,
        reading.strong,
        reading.write_ok,
        reading.write_detail,
    )


def _reason(exc: Exception) -> str:
    """A short, bounded reason for a failed read (no payloads, no secrets)."""
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return "timeout"
    if isinstance(exc, EndpointConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "unknown")
        return f"error {code}"
    return f"error {type(exc).__name__}"


class ReadinessChecker:
    """Reads the canary and the source heartbeat in a target region, with no retries."""

    def __init__(
        self,
        regions: Sequence[Region],
        tables: Sequence[str],
        canary: Canary,
        timeout_seconds: float,
        strong_tables: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._regions = {r.name: r for r in regions}
        self._tables = tuple(tables)
        self._canary = canary
        self._strong = tuple(t for t in self._tables if t in set(strong_tables))
        self._clock = clock
        # One attempt, short timeouts: a dead region must answer "not ready" fast.
        self._boto_config = BotoConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; clients are

    @classmethod
    def from_config(cls, config: Config) -> ReadinessChecker:
        """A checker for the configured regions, tables, canary and readiness timeout."""
        return cls(
            config.regions,
            config.tables,
            config.canary,
            config.responder.policy.readiness_timeout_seconds,
            consistency.strong_tables(config),
        )

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                spec = self._regions[region]
                session = boto3.session.Session()
                client = session.client(
                    "dynamodb",
                    region_name=region,
                    endpoint_url=spec.endpoint_url,
                    config=self._boto_config,
                )
                self._clients[region] = client
            return client

    def _get(self, client: Any, table: str, value: str) -> dict[str, Any] | None:
        answer = client.get_item(
            TableName=table,
            Key={self._canary.key: {"S": value}},
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def read(self, target: str, source: str) -> Reading:
        """Read target's canary and source's newest heartbeat there, and ask its site."""
        reading = self._read_tables(target, source)
        spec = self._regions.get(target)
        if spec is None or spec.site is None:
            return reading
        return replace(reading, site=site.probe(spec.site))

    def _read_tables(self, target: str, source: str) -> Reading:
        """Read target's canary and source's heartbeat there; a write in its strong tables."""
        if target not in self._regions:
            return Reading(False, "unknown region", None)
        client = self._client(target)
        reading = self._read(client, source)
        if not self._strong:
            return reading
        reading = replace(reading, strong=len(self._strong) == len(self._tables))
        if not reading.canary_ok and reading.detail in UNREACHABLE:
            # The region did not answer at all: a write would wait as long for nothing.
            return replace(reading, write_ok=False, write_detail=reading.detail)
        problem = self._write(client, target)
        return replace(reading, write_ok=problem is None, write_detail=problem or "")

    def _write(self, client: Any, target: str) -> str | None:
        """Write target's heartbeat in each strong table; why it failed, or None."""
        for table in self._strong:
            item = heartbeat.item(self._canary.key, target, self._clock(), WRITER)
            try:
                client.put_item(TableName=table, Item=item)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != WRITE_CONFLICT:
                    return f"{table}: {_reason(exc)}"
            except BotoCoreError as exc:
                return f"{table}: {_reason(exc)}"
        return None

    def _read(self, client: Any, source: str) -> Reading:
        """The canary in every table, and source's newest heartbeat in the eventual ones."""
        oldest: float | None = None
        missing = False
        try:
            for table in self._tables:
                if self._get(client, table, self._canary.value) is None:
                    return Reading(False, f"canary item missing in {table}", None)
                if table in self._strong:
                    continue  # RPO 0: nothing to measure
                written = heartbeat.written_at(
                    self._get(client, table, heartbeat.key_value(source))
                )
                if written is None:
                    missing = True
                elif oldest is None or written < oldest:
                    oldest = written
        except (BotoCoreError, ClientError) as exc:
            return Reading(False, _reason(exc), None)
        return Reading(True, "ok", None if missing else oldest)

    def check(self, check: Check) -> Readiness:
        """Readiness of check.target to take over from check.source."""
        reading = self.read(check.target, check.source)
        return evaluate(check.target, reading, check.source_last_healthy)

    __call__ = check


class CachedReadiness:
    """Shares one live reading per (target, source) for ttl seconds across threads.

    Many identical notifications arriving at once (two Alertmanagers, re-sends)
    then cost one read per worker, not one each. Not dedup state: losing it is harmless.
    """

    def __init__(
        self,
        checker: ReadinessChecker,
        ttl_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checker = checker
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Reading]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def check(self, check: Check) -> Readiness:
        """Like ReadinessChecker.check, reusing a fresh enough reading."""
        key = (check.target, check.source)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one reader per key; the others wait and reuse its answer
            cached = self._cache.get(key)
            if cached is None or self._clock() - cached[0] > self._ttl:
                cached = (self._clock(), self._checker.read(check.target, check.source))
                self._cache[key] = cached
        return evaluate(check.target, cached[1], check.source_last_healthy)

    __call__ = check
