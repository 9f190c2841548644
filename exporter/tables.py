"""Each table's global-table description: consistency mode, witness, replica statuses.

DescribeTable changes only when a person (or DynamoDB) changes the table, so a
thread of its own reads it once per table every ``describe_interval_seconds``,
never on the probe or scrape path. Per table it asks the configured regions in
priority order until one answers (each call bounded by the probe timeout), and
tables are read in parallel, so a slow or dead region delays only its own
answer, and the next region's.

Series, each with the exporter's ``vantage``:

- ``dynamodb_table_info{table, consistency, witness_region}`` 1: ``consistency``
  is ``MultiRegionConsistency`` (``EVENTUAL`` when DescribeTable leaves it out,
  DynamoDB's default); ``witness_region`` is empty without a witness.
- ``dynamodb_replica_status{table, region, status}`` 1 for each replica's current
  ``ReplicaStatus``.
- ``dynamodb_table_describe_last_success_timestamp_seconds{table}``.

Only current values are exported: when a status changes, the old series leaves
/metrics and Prometheus marks it stale at its next scrape (so an alert on it
resolves); a replica DynamoDB removed from the table leaves with it. While
DescribeTable cannot be read the last answer stays, and the timestamp tells its
age. Nothing is exported for a table before its first answer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ddb_failover.logs import kv
from exporter.gate import Gate
from exporter.reasons import describe

log = logging.getLogger("exporter.tables")

TABLE_INFO = "dynamodb_table_info"
REPLICA_STATUS = "dynamodb_replica_status"
DESCRIBED = "dynamodb_table_describe_last_success_timestamp_seconds"
EVENTUAL = "EVENTUAL"
MAX_WORKERS = 8  # tables described at once


@dataclass(frozen=True)
class Description:
    """What DescribeTable says about a table's global-table setup."""

    consistency: str
    witness: str  # "" without one
    statuses: Mapping[str, str] = field(default_factory=dict)  # region -> ReplicaStatus


def parse(answer: Mapping[str, Any], region: str) -> Description:
    """A Description from a DescribeTable answer given by region."""
    table = answer["Table"]
    statuses = {r["RegionName"]: r.get("ReplicaStatus", "") for r in table.get("Replicas", [])}
    if statuses and region not in statuses:
        # Replicas may list only the other regions' replicas; the one that answered
        # reports its own state as the table's.
        statuses[region] = table.get("TableStatus", "")
    witnesses = sorted(w["RegionName"] for w in table.get("GlobalTableWitnesses", []))
    return Description(
        consistency=table.get("MultiRegionConsistency") or EVENTUAL,
        witness=",".join(witnesses),
        statuses=dict(sorted(statuses.items())),
    )


Described = Mapping[str, tuple[Description, float]]  # table -> (description, read at)


class TableStates:
    """The latest Description of each table and its series, rendered once per change."""

    def __init__(self, vantage: str, registry: CollectorRegistry | None = None) -> None:
        self.vantage = vantage
        self._lock = threading.Lock()
        self._described: dict[str, tuple[Description, float]] = {}
        self._body = b""
        if registry is not None:
            registry.register(_RegistryView(self))

    def record(self, table: str, description: Description, at: float) -> None:
        """Remember table's latest description, read at Unix time at."""
        with self._lock:
            self._described[table] = (description, at)
            view = CollectorRegistry()
            view.register(_Snapshot(dict(self._described), self.vantage))
            self._body = generate_latest(view)

    def get(self, table: str) -> Description | None:
        """The latest description of table, if any was read."""
        with self._lock:
            found = self._described.get(table)
        return None if found is None else found[0]

    def render(self) -> bytes:
        """The series in the Prometheus text format."""
        return self._body  # one reference: no lock needed

    def snapshot(self) -> dict[str, tuple[Description, float]]:
        """Every table's latest description and when it was read."""
        with self._lock:
            return dict(self._described)


def families(described: Described, vantage: str) -> Iterator[Metric]:
    """The series of these descriptions, as metric families."""
    info = GaugeMetricFamily(
        TABLE_INFO,
        "The table's multi-Region consistency mode and witness region, from DescribeTable.",
        labels=("table", "consistency", "witness_region", "vantage"),
    )
    status = GaugeMetricFamily(
        REPLICA_STATUS,
        "1 for each replica's current ReplicaStatus, from DescribeTable.",
        labels=("table", "region", "status", "vantage"),
    )
    at = GaugeMetricFamily(
        DESCRIBED,
        "Unix time of the last DescribeTable answer for the table.",
        labels=("table", "vantage"),
    )
    for table, (description, when) in sorted(described.items()):
        info.add_metric([table, description.consistency, description.witness, vantage], 1)
        for region, current in description.statuses.items():
            status.add_metric([table, region, current, vantage], 1)
        at.add_metric([table, vantage], when)
    yield from (info, status, at)


class _Snapshot(Collector):
    def __init__(self, described: Described, vantage: str) -> None:
        self._described = described
        self._vantage = vantage

    def collect(self) -> Iterable[Metric]:
        return families(self._described, self._vantage)


class _RegistryView(Collector):
    """TableStates as seen through a registry."""

    def __init__(self, states: TableStates) -> None:
        self._states = states

    def collect(self) -> Iterable[Metric]:
        return families(self._states.snapshot(), self._states.vantage)


class Describer:
    """Reads every table's DescribeTable every interval, in a background thread."""

    def __init__(
        self,
        states: TableStates,
        tables: Sequence[str],
        clients: Mapping[str, Any],  # region -> client, in priority order
        interval: float,
        gate: Gate | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.states = states
        self.tables = tuple(tables)
        self.clients = dict(clients)
        self.interval = interval
        self.gate = gate  # the clients hand permits back on send: calls must hold one
        self.wall_clock = wall_clock
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(len(self.tables), MAX_WORKERS)), thread_name_prefix="describe"
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        """Describe every table once (in parallel) and record the answers."""
        list(self._pool.map(self._describe, self.tables))

    def _describe(self, table: str) -> None:
        for region, client in self.clients.items():
            if self._stop.is_set():
                return
            try:
                with self.gate.held() if self.gate is not None else contextlib.nullcontext():
                    answer = client.describe_table(TableName=table)
            except Exception as exc:  # try the next region
                log.warning(
                    kv(msg="describe failed", table=table, region=region, error=describe(exc))
                )
                continue
            self.states.record(table, parse(answer, region), self.wall_clock())
            return

    def start(self) -> None:
        """Describe now, then every interval, until stop()."""
        self._thread = threading.Thread(target=self._loop, name="describer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bug in one pass must not end describing for good
                log.exception(kv(msg="describe pass failed"))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop the loop; a call in flight is abandoned, not joined."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
