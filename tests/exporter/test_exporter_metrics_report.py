"""Pre-created series and the --once table."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.parser import text_string_to_metric_families

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


def test_fast_render_is_what_prometheus_client_renders() -> None:
    # The exporter renders its own lines; they must be the very lines the generic
    # path renders from the registry (HELP, TYPE, names, labels, values).
    disable_created_metrics()
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry, 'vantage "a\\b"', version="1.2.3")
    metrics.precreate(["us-east-1", "eu-west-1"], ["t1"], ["read", "write", "replication"])
    metrics.probe_succeeded("us-east-1", "t1", "read", 0.0042, 1700000000.123)
    metrics.probe_succeeded("us-east-1", "t1", "read", 12.5, 1700000005.5)
    metrics.probe_failed("eu-west-1", "t1", "write", "timeout", 2.0, 15.0)
    metrics.probe_failed("eu-west-1", "t1", "write", "connection", None, 20.0)
    metrics.replication_failed("eu-west-1", "t1", "throttled")
    metrics.heartbeats_seen("us-east-1", "t1", {"eu-west-1": 1700000000.0})
    metrics.refresh_lag(1700000002.25)
    ours = metrics.render().decode()
    generic = generate_latest(registry).decode()
    assert parsed(ours) == parsed(generic)
    assert sorted(line for line in ours.splitlines() if line.startswith("#")) == sorted(
        line for line in generic.splitlines() if line.startswith("#")
    )
    assert 'dynamodb_probe_failing_seconds{region="eu-west-1",table="t1"' in ours


def parsed(text: str) -> set[tuple[str, str, str, frozenset[tuple[str, str]], float]]:
    return {
        (family.name, family.type, sample.name, frozenset(sample.labels.items()), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
