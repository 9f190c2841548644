"""The exporter's metric families, built on an injected registry."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from exporter.reasons import REASONS

OPERATIONS = ("read", "write")
# From 1 ms (a local region) to 10 s (far past any sane probe timeout).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBE_LABELS = ("region", "table", "vantage", "operation")


class ProbeMetrics:
    """Every exporter series; values only, so a scrape never waits on a region."""

    def __init__(self, registry: CollectorRegistry, vantage: str, version: str = "") -> None:
        self.vantage = vantage
        self.success = Gauge(
            "dynamodb_probe_success",
            "1 if the last completed probe succeeded, else 0.",
            PROBE_LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "dynamodb_probe_duration_seconds",
            "Probe latency; a timed-out probe counts as its timeout.",
            PROBE_LABELS,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "dynamodb_probe_failures",
            "Failed probes by bounded reason.",
            (*PROBE_LABELS, "reason"),
            registry=registry,
        )
        self.last_success = Gauge(
            "dynamodb_probe_last_success_timestamp_seconds",
            "Unix time of the last successful probe.",
            PROBE_LABELS,
            registry=registry,
        )
        self.lag = Gauge(
            "dynamodb_replication_lag_seconds",
            "Age of the newest heartbeat from source_region seen in region.",
            ("table", "source_region", "region", "vantage"),
            registry=registry,
        )
        # Replication is measured, not pass/fail: its failures stay out of the
        # read/write series (and so out of the region-down rules).
        self.replication_failures = Counter(
            "dynamodb_replication_probe_failures",
            "Replication probes (heartbeat reads) that failed, by bounded reason.",
            ("region", "table", "vantage", "reason"),
            registry=registry,
        )
        Info("ddb_failover_exporter_build", "Exporter build information.", registry=registry).info(
            {"version": version}
        )
        self._newest: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()  # guards _newest only; never held across I/O

    def precreate(
        self, regions: Iterable[str], tables: Iterable[str], operations: Iterable[str]
    ) -> None:
        """Create the bounded series at zero so they exist before the first event."""
        tables = tuple(tables)
        operations = tuple(operations)
        for region in regions:
            for table in tables:
                for op in operations:
                    if op in OPERATIONS:
                        self.duration.labels(region, table, self.vantage, op)
                        for reason in REASONS:
                            self.failures.labels(region, table, self.vantage, op, reason)
                    elif op == "replication":
                        for reason in REASONS:
                            self.replication_failures.labels(region, table, self.vantage, reason)

    def probe_succeeded(
        self, region: str, table: str, operation: str, duration: float, now: float
    ) -> None:
        """Record a successful read or write probe."""
        self.duration.labels(region, table, self.vantage, operation).observe(duration)
        self.success.labels(region, table, self.vantage, operation).set(1)
        self.last_success.labels(region, table, self.vantage, operation).set(now)

    def probe_failed(
        self, region: str, table: str, operation: str, reason: str, duration: float | None
    ) -> None:
        """Record a failed read or write probe; duration None when none was launched."""
        if duration is not None:
            self.duration.labels(region, table, self.vantage, operation).observe(duration)
        self.success.labels(region, table, self.vantage, operation).set(0)
        self.failures.labels(region, table, self.vantage, operation, reason).inc()

    def replication_failed(self, region: str, table: str, reason: str) -> None:
        """Count a heartbeat read that failed."""
        self.replication_failures.labels(region, table, self.vantage, reason).inc()

    def heartbeats_seen(self, region: str, table: str, written: Mapping[str, float]) -> None:
        """Remember the newest heartbeat time seen in region from each source region."""
        with self._lock:
            for source, at in written.items():
                key = (table, source, region)
                if at > self._newest.get(key, float("-inf")):
                    self._newest[key] = at

    def refresh_lag(self, now: float) -> None:
        """Set every known lag to the age of the newest heartbeat seen, as of now."""
        with self._lock:
            newest = dict(self._newest)
        for (table, source, region), at in newest.items():
            self.lag.labels(table, source, region, self.vantage).set(max(0.0, now - at))

    def lag_of(self, table: str, source: str, region: str, now: float) -> float | None:
        """The current lag for one pair, or None before its first heartbeat was seen."""
        with self._lock:
            at = self._newest.get((table, source, region))
        return None if at is None else max(0.0, now - at)
