"""The exporter's series: plain values per probe lane, rendered straight to the text format.

prometheus_client's generic path (a registry's collect() building sample
objects, then escaping and checking every label of every line) cost about
0.2 s of CPU per round with 100 tables in 3 regions, as much as 150 probe
calls. Here each series' line prefix is built once, when the series is
created, and a round's render only formats the values. The same values are
also on the injected registry, through a collector, for anything that reads
a registry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Info, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.reasons import REASONS

OPERATIONS = ("read", "write")
# From 1 ms (a local region) to 10 s (far past any sane probe timeout).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBE_LABELS = ("region", "table", "vantage", "operation")
LAG_LABELS = ("table", "source_region", "region", "vantage")
REPLICATION_LABELS = ("region", "table", "vantage", "reason")
UPPER_BOUNDS = (*(floatToGoString(b) for b in DURATION_BUCKETS), "+Inf")

SUCCESS = "dynamodb_probe_success"
DURATION = "dynamodb_probe_duration_seconds"
FAILURES = "dynamodb_probe_failures"
LAST_SUCCESS = "dynamodb_probe_last_success_timestamp_seconds"
FAILING = "dynamodb_probe_failing_seconds"
LAG = "dynamodb_replication_lag_seconds"
REPLICATION_FAILURES = "dynamodb_replication_probe_failures"
HELP = {
    SUCCESS: "1 if the last completed probe succeeded, else 0.",
    DURATION: "Probe latency; a timed-out probe counts as its timeout.",
    FAILURES: "Failed probes by bounded reason.",
    LAST_SUCCESS: "Unix time of the last successful probe.",
    # What DynamoDBRegionDown compares with its window: exact multiples of the
    # interval, read off the probe schedule, so no scrape or evaluation timing
    # can stretch it (docs/alerting.md).
    FAILING: "Seconds from the scheduled start of the first failed probe of the current run of "
    "failures to that of the latest one; 0 after a success.",
    LAG: "Age of the newest heartbeat from source_region seen in region.",
    # Replication is measured, not pass/fail: its failures stay out of the
    # read/write series (and so out of the region-down rules).
    REPLICATION_FAILURES: "Replication probes (heartbeat reads) that failed, by bounded reason.",
}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _selector(name: str, labels: Mapping[str, str]) -> str:
    """`name{a="x",b="y"} `: a line up to its value."""
    pairs = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return f"{name}{{{pairs}}} "


def _value(number: float) -> str:
    return floatToGoString(number)


def _count(number: int) -> str:
    # floatToGoString's own output below a million, without its cost.
    return f"{number}.0" if number < 1_000_000 else floatToGoString(number)


def _header(name: str, kind: str, suffix: str = "") -> str:
    return f"# HELP {name}{suffix} {HELP[name]}\n# TYPE {name}{suffix} {kind}\n"


@dataclass
class _Probe:
    """One read or write lane: its values and its lines' prefixes."""

    labels: dict[str, str]
    buckets: list[int] = field(default_factory=lambda: [0] * len(UPPER_BOUNDS))
    total: float = 0.0
    count: int = 0
    success: float | None = None
    last_success: float | None = None
    failing: float = 0.0
    failures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REASONS, 0.0))

    def __post_init__(self) -> None:
        self.lines = {
            name: _selector(name, self.labels) for name in (SUCCESS, LAST_SUCCESS, FAILING)
        }
        self.bucket_lines = [
            _selector(f"{DURATION}_bucket", {**self.labels, "le": le}) for le in UPPER_BOUNDS
        ]
        self.count_line = _selector(f"{DURATION}_count", self.labels)
        self.sum_line = _selector(f"{DURATION}_sum", self.labels)
        self.failure_lines = {
            reason: _selector(f"{FAILURES}_total", {**self.labels, "reason": reason})
            for reason in REASONS
        }

    def observe(self, duration: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if duration <= bound:
                self.buckets[i] += 1
                break
        else:
            self.buckets[-1] += 1
        self.total += duration
        self.count += 1

    def cumulative(self) -> list[int]:
        running, out = 0, []
        for n in self.buckets:
            running += n
            out.append(running)
        return out


class ProbeMetrics:
    """Every exporter series; values only, so a scrape never waits on a region.

    Written by the scheduler's thread alone; render() runs on that thread too.
    """

    def __init__(self, registry: CollectorRegistry, vantage: str, version: str = "") -> None:
        self.vantage = vantage
        self._probes: dict[tuple[str, str, str], _Probe] = {}
        self._replication: dict[tuple[str, str], dict[str, float]] = {}
        self._lag: dict[tuple[str, str, str], float] = {}
        self._newest: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()  # guards _newest only; never held across I/O
        build = Info("ddb_failover_exporter_build", "Exporter build information.", registry=None)
        build.info({"version": version})
        constant = CollectorRegistry()
        constant.register(build)
        self._constant = generate_latest(constant).decode()
        registry.register(build)
        registry.register(_RegistryView(self))

    def _probe(self, region: str, table: str, operation: str) -> _Probe:
        key = (region, table, operation)
        probe = self._probes.get(key)
        if probe is None:
            labels = dict(zip(PROBE_LABELS, (region, table, self.vantage, operation), strict=True))
            probe = self._probes[key] = _Probe(labels)
        return probe

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
                        self._probe(region, table, op)
                    elif op == "replication":
                        self._replication.setdefault((region, table), dict.fromkeys(REASONS, 0.0))

    def probe_succeeded(
        self, region: str, table: str, operation: str, duration: float, now: float
    ) -> None:
        """Record a successful read or write probe."""
        probe = self._probe(region, table, operation)
        probe.observe(duration)
        probe.success, probe.last_success, probe.failing = 1.0, now, 0.0

    def probe_failed(
        self,
        region: str,
        table: str,
        operation: str,
        reason: str,
        duration: float | None,
        failing_seconds: float,
    ) -> None:
        """Record a failed read or write probe; duration None when none was launched."""
        probe = self._probe(region, table, operation)
        if duration is not None:
            probe.observe(duration)
        probe.success, probe.failing = 0.0, failing_seconds
        probe.failures[reason] += 1

    def replication_failed(self, region: str, table: str, reason: str) -> None:
        """Count a heartbeat read that failed."""
        self._replication.setdefault((region, table), dict.fromkeys(REASONS, 0.0))[reason] += 1

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
        for key, at in newest.items():
            self._lag[key] = max(0.0, now - at)

    def lag_of(self, table: str, source: str, region: str, now: float) -> float | None:
        """The current lag for one pair, or None before its first heartbeat was seen."""
        with self._lock:
            at = self._newest.get((table, source, region))
        return None if at is None else max(0.0, now - at)

    def render(self) -> bytes:
        """Every series in the Prometheus text format (version 0.0.4)."""
        probes = list(self._probes.values())
        out = [_header(SUCCESS, "gauge")]
        out += [f"{p.lines[SUCCESS]}{_value(p.success)}\n" for p in probes if p.success is not None]
        out.append(_header(DURATION, "histogram"))
        for p in probes:
            cumulative = p.cumulative()
            out += [
                f"{line}{_count(n)}\n" for line, n in zip(p.bucket_lines, cumulative, strict=True)
            ]
            out.append(f"{p.count_line}{_count(p.count)}\n{p.sum_line}{_value(p.total)}\n")
        out.append(_header(FAILURES, "counter", "_total"))
        for p in probes:
            out += [f"{p.failure_lines[r]}{_value(n)}\n" for r, n in p.failures.items()]
        out.append(_header(LAST_SUCCESS, "gauge"))
        out += [
            f"{p.lines[LAST_SUCCESS]}{_value(p.last_success)}\n"
            for p in probes
            if p.last_success is not None
        ]
        out.append(_header(FAILING, "gauge"))
        out += [f"{p.lines[FAILING]}{_value(p.failing)}\n" for p in probes]
        out.append(_header(LAG, "gauge"))
        for (table, source, region), lag in list(self._lag.items()):
            labels = dict(zip(LAG_LABELS, (table, source, region, self.vantage), strict=True))
            out.append(f"{_selector(LAG, labels)}{_value(lag)}\n")
        out.append(_header(REPLICATION_FAILURES, "counter", "_total"))
        for (region, table), reasons in list(self._replication.items()):
            for reason, n in reasons.items():
                labels = dict(
                    zip(REPLICATION_LABELS, (region, table, self.vantage, reason), strict=True)
                )
                out.append(f"{_selector(f'{REPLICATION_FAILURES}_total', labels)}{_value(n)}\n")
        out.append(self._constant)
        return "".join(out).encode()

    def families(self) -> Iterator[Metric]:
        """The same series as metric families, for a registry's collect()."""
        probes = list(self._probes.values())
        success = GaugeMetricFamily(SUCCESS, HELP[SUCCESS], labels=PROBE_LABELS)
        last = GaugeMetricFamily(LAST_SUCCESS, HELP[LAST_SUCCESS], labels=PROBE_LABELS)
        failing = GaugeMetricFamily(FAILING, HELP[FAILING], labels=PROBE_LABELS)
        duration = HistogramMetricFamily(DURATION, HELP[DURATION], labels=PROBE_LABELS)
        failures = CounterMetricFamily(
            FAILURES, HELP[FAILURES], labels=(*PROBE_LABELS, "reason"), created=None
        )
        for p in probes:
            values = list(p.labels.values())
            if p.success is not None:
                success.add_metric(values, p.success)
            if p.last_success is not None:
                last.add_metric(values, p.last_success)
            failing.add_metric(values, p.failing)
            cumulative = [
                (le, float(n)) for le, n in zip(UPPER_BOUNDS, p.cumulative(), strict=True)
            ]
            duration.add_metric(values, cumulative, p.total)
            for reason, n in p.failures.items():
                failures.add_metric([*values, reason], n)
        lag = GaugeMetricFamily(LAG, HELP[LAG], labels=LAG_LABELS)
        for (table, source, region), seconds in list(self._lag.items()):
            lag.add_metric([table, source, region, self.vantage], seconds)
        replication = CounterMetricFamily(
            REPLICATION_FAILURES, HELP[REPLICATION_FAILURES], labels=REPLICATION_LABELS
        )
        for (region, table), reasons in list(self._replication.items()):
            for reason, n in reasons.items():
                replication.add_metric([region, table, self.vantage, reason], n)
        yield from (success, duration, failures, last, failing, lag, replication)


class _RegistryView(Collector):
    """ProbeMetrics as seen through a registry."""

    def __init__(self, metrics: ProbeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()
