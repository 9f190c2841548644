"""The scheduler owns deadlines: hung probes fail now, and never pile up."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from types import SimpleNamespace

import pytest
from botocore.hooks import HierarchicalEmitter
from prometheus_client import CollectorRegistry

from exporter.gate import Gate
from exporter.metrics import ProbeMetrics
from exporter.probes import Target
from exporter.reasons import ProbeError
from exporter.scheduler import Lane, Scheduler, next_slot

TIMEOUT = 0.2


def target(region: str = "us-east-1", peers: tuple[str, ...] = ()) -> Target:
    return Target(None, region, "posts", "id", "ping", "test", peers)


class Hanging:
    """A prober that blocks until released, counting its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, _: Target) -> Mapping[str, float]:
        self.calls += 1
        self.release.wait(10)
        return {}


def ok(_: Target) -> Mapping[str, float]:
    return {}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    prober = Hanging()
    yield prober
    prober.release.set()


def make(registry: CollectorRegistry, *lanes: Lane) -> Scheduler:
    metrics = ProbeMetrics(registry, "test")
    metrics.precreate(["us-east-1", "eu-west-1"], ["posts"], ["read", "write", "replication"])
    return Scheduler(lanes, metrics, interval=0.5, timeout=TIMEOUT, wall_clock=lambda: 1000.0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"table": "posts", "vantage": "test", **labels})


def test_hung_probe_fails_at_the_deadline_and_does_not_pile_up(
    registry: CollectorRegistry, hanging: Hanging
) -> None:
    scheduler = make(registry, Lane("read", target(), hanging), Lane("write", target(), ok))
    labels = {"region": "us-east-1", "operation": "read"}
    started = time.monotonic()
    first = scheduler.run_round()
    elapsed = time.monotonic() - started
    assert TIMEOUT <= elapsed < TIMEOUT + 5.0  # the hung call never returns by itself
    assert [(o.kind, o.reason) for o in first] == [("read", "timeout"), ("write", None)]
    assert value(registry, "dynamodb_probe_success", **labels) == 0
    assert value(registry, "dynamodb_probe_failures_total", reason="timeout", **labels) == 1
    assert value(registry, "dynamodb_probe_success", region="us-east-1", operation="write") == 1

    # Still hung: another timeout counted immediately, and no second call launched.
    started = time.monotonic()
    second = scheduler.run_round()
    assert second[0].reason == "timeout" and second[0].duration is None
    assert hanging.calls == 1
    assert value(registry, "dynamodb_probe_failures_total", reason="timeout", **labels) == 2

    hanging.release.set()
    scheduler.lanes[0].prober = ok
    assert scheduler.lanes[0].future is not None
    scheduler.lanes[0].future.result(timeout=5)
    third = scheduler.run_round()
    assert third[0].ok
    assert value(registry, "dynamodb_probe_success", **labels) == 1
    assert value(registry, "dynamodb_probe_last_success_timestamp_seconds", **labels) == 1000.0
    scheduler.stop()


def test_probe_error_reason_is_recorded(registry: CollectorRegistry) -> None:
    def missing(_: Target) -> Mapping[str, float]:
        raise ProbeError("not_found", "canary missing")

    scheduler = make(registry, Lane("read", target(), missing))
    (outcome,) = scheduler.run_round()
    assert (outcome.reason, outcome.detail) == ("not_found", "canary missing")
    labels = {"region": "us-east-1", "operation": "read"}
    assert value(registry, "dynamodb_probe_failures_total", reason="not_found", **labels) == 1
    assert value(registry, "dynamodb_probe_failures_total", reason="timeout", **labels) == 0
    scheduler.stop()


def test_replication_sets_lag_and_failures_stay_out_of_probe_series(
    registry: CollectorRegistry,
) -> None:
    def seen(_: Target) -> Mapping[str, float]:
        return {"eu-west-1": 990.0}

    scheduler = make(registry, Lane("replication", target(peers=("eu-west-1",)), seen))
    scheduler.run_round()
    lag = {"source_region": "eu-west-1", "region": "us-east-1"}
    assert value(registry, "dynamodb_replication_lag_seconds", **lag) == 10.0

    def broken(_: Target) -> Mapping[str, float]:
        raise ConnectionRefusedError("refused")

    scheduler.lanes[0].prober = broken
    scheduler.wall_clock = lambda: 1005.0
    scheduler.run_round()
    # The newest heartbeat seen keeps ageing while it cannot be read.
    assert value(registry, "dynamodb_replication_lag_seconds", **lag) == 15.0
    assert (
        value(
            registry,
            "dynamodb_replication_probe_failures_total",
            region="us-east-1",
            reason="connection",
        )
        == 1
    )
    assert value(registry, "dynamodb_probe_success", region="us-east-1", operation="read") is None
    scheduler.stop()


def test_probes_run_at_a_lower_cpu_priority_than_the_server(registry: CollectorRegistry) -> None:
    seen: list[int] = []

    def note(_: Target) -> Mapping[str, float]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return {}

    scheduler = make(registry, Lane("read", target(), note))
    scheduler.run_round()
    scheduler.stop()
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(19, main + 10)]


def test_failing_seconds_counts_schedule_slots_and_resets_on_success(
    registry: CollectorRegistry,
) -> None:
    results: list[bool] = []

    def scripted(_: Target) -> Mapping[str, float]:
        if not results.pop(0):
            raise ConnectionRefusedError("refused")
        return {}

    scheduler = make(registry, Lane("read", target(), scripted))
    labels = {"region": "us-east-1", "operation": "read"}
    assert value(registry, "dynamodb_probe_failing_seconds", **labels) == 0  # pre-created

    seen = []
    # Slots 0..6 at 0.5 s; slot 4 skipped (an overrun): the run of failures that
    # starts at slot 2 spans slots 2..6, 2 s, however late each round really ran.
    for slot, ok_ in [(0, True), (1, True), (2, False), (3, False), (5, False), (6, False)]:
        results.append(ok_)
        scheduler.run_round(slot=slot)
        seen.append(value(registry, "dynamodb_probe_failing_seconds", **labels))
    assert seen == [0, 0, 0, 0.5, 1.5, 2.0]

    results.extend([True, False])
    scheduler.run_round()  # by hand: slot 7
    assert value(registry, "dynamodb_probe_failing_seconds", **labels) == 0
    scheduler.run_round()  # slot 8: a new run of failures starts from zero
    assert value(registry, "dynamodb_probe_failing_seconds", **labels) == 0
    assert value(registry, "dynamodb_probe_success", **labels) == 0
    scheduler.stop()


def test_failing_seconds_is_an_exact_multiple_of_the_interval(
    registry: CollectorRegistry,
) -> None:
    def refused(_: Target) -> Mapping[str, float]:
        raise ConnectionRefusedError("refused")

    metrics = ProbeMetrics(registry, "test")
    scheduler = Scheduler([Lane("read", target(), refused)], metrics, interval=0.1, timeout=0.05)
    for slot in range(51):
        scheduler.run_round(slot=slot)
    labels = {"region": "us-east-1", "operation": "read"}
    # 50 * 0.1 is 5.000000000000001 in floating point; the rule compares with 5.
    assert value(registry, "dynamodb_probe_failing_seconds", **labels) == 5.0
    scheduler.stop()


def test_an_overrun_skips_the_slots_it_missed_and_keeps_the_grid() -> None:
    assert next_slot(3, 3.2, 1.0) == 4  # on time: the next slot
    assert next_slot(3, 5.5, 1.0) == 6  # overran slots 4 and 5: skip them
    assert next_slot(3, 6.0, 1.0) == 6  # exactly at slot 6: run it now


def test_a_probe_waiting_on_the_network_holds_no_permit() -> None:
    # One permit: a probe hung on the network must not keep another from running.
    gate = Gate(permits=1)
    client = SimpleNamespace(meta=SimpleNamespace(events=HierarchicalEmitter()))
    gate.attach(client)
    network = threading.Event()
    sent = threading.Event()

    def hung_probe() -> None:
        with gate.held():
            client.meta.events.emit("before-send.dynamodb.GetItem", request=None)
            sent.set()
            network.wait(10)  # a black-holed region
            client.meta.events.emit("before-parse.dynamodb.GetItem")

    thread = threading.Thread(target=hung_probe)
    thread.start()
    assert sent.wait(5)
    ran = threading.Event()
    other = threading.Thread(target=lambda: gate.held().__enter__() or ran.set())
    other.start()
    assert ran.wait(5), "a probe on the network kept the only permit"
    network.set()
    thread.join(5)
    other.join(5)
