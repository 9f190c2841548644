"""Pre-created series and the --once table."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter import report
from exporter.metrics import ProbeMetrics
from exporter.reasons import REASONS
from exporter.scheduler import Outcome


def test_bounded_series_exist_before_the_first_event() -> None:
    registry = CollectorRegistry()
    ProbeMetrics(registry, "v1").precreate(["us-east-1", "eu-west-1"], ["t1", "t2"], ["read"])
    for region in ("us-east-1", "eu-west-1"):
        for table in ("t1", "t2"):
            labels = {"region": region, "table": table, "vantage": "v1", "operation": "read"}
            for reason in REASONS:
                name = "dynamodb_probe_failures_total"
                assert registry.get_sample_value(name, {**labels, "reason": reason}) == 0
            assert registry.get_sample_value("dynamodb_probe_duration_seconds_count", labels) == 0
            write = {**labels, "operation": "write", "reason": "timeout"}
            assert registry.get_sample_value("dynamodb_probe_failures_total", write) is None


def test_lag_keeps_the_newest_heartbeat() -> None:
    metrics = ProbeMetrics(CollectorRegistry(), "v1")
    metrics.heartbeats_seen("us-east-1", "t", {"eu-west-1": 100.0})
    metrics.heartbeats_seen("us-east-1", "t", {"eu-west-1": 90.0})  # an older copy read late
    assert metrics.lag_of("t", "eu-west-1", "us-east-1", now=103.0) == 3.0
    assert metrics.lag_of("t", "ap-south-1", "us-east-1", now=103.0) is None


def test_once_table_and_verdict() -> None:
    outcomes = [
        Outcome("us-east-1", "t", "read", None, 0.0042),
        Outcome("eu-west-1", "t", "read", "timeout", 0.3, "no answer within 0.3s"),
        Outcome("us-east-1", "t", "replication", None, 0.002, "", {"eu-west-1": 1.0}),
    ]
    lines = report.table(
        report.rows(outcomes, ["us-east-1", "eu-west-1"], lambda *_: 1.5)
    ).splitlines()
    assert lines[0].split() == list(report.HEADER)
    assert lines[1].split() == ["us-east-1", "t", "read", "ok", "-", "4.2ms"]
    assert lines[2].split()[:6] == ["eu-west-1", "t", "read", "FAIL", "timeout", "300.0ms"]
    assert lines[3].endswith("lag from eu-west-1: 1.50s")
    assert report.failed(outcomes)
    assert not report.failed([outcomes[0], outcomes[2]])
    replication_only = [Outcome("us-east-1", "t", "replication", "timeout", 0.3)]
    assert not report.failed(replication_only)
