"""The request glue over a real SQLite file: readiness only when it matters, freeze, dry run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ddb_failover.config import Config, parse
from responder.decide.decision import Check, OperatorRequest, Readiness, UnknownRegion
from responder.intake.handling import handle_alerts, handle_operator
from responder.state.sqlite.store import SqliteStore
from tests.responder.fakes import EAST, WEST, always_ready, config, region_down_alerts

SOUTH = "ap-south-1"
NOW = 1_800_000_000.0


class Readings:
    """A readiness function that records which targets were read."""

    def __init__(self, ready: dict[str, bool]) -> None:
        self.ready = ready
        self.reads: list[Check] = []

    def __call__(self, check: Check) -> Readiness:
        self.reads.append(check)
        ok = self.ready.get(check.target, False)
        return Readiness(check.target, ok, 1.0 if ok else None, "" if ok else "timeout")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db", EAST, clock=lambda: NOW)


def three_regions(**policy: object) -> Config:
    return parse(
        {
            "tables": ["wordpress_posts"],
            "canary": {"key": "health_check_id", "value": "ping"},
            "regions": [{"name": EAST}, {"name": WEST}, {"name": SOUTH}],
            "responder": {"policy": policy},
        }
    )


def test_failover_reads_targets_in_order_until_one_is_ready(store: SqliteStore) -> None:
    readings = Readings({WEST: False, SOUTH: True})
    handled = handle_alerts(region_down_alerts(), store, three_regions(), readings, NOW)
    assert handled.transition is not None and handled.transition.to_region == SOUTH
    assert [c.target for c in readings.reads] == [WEST, SOUTH]
    # One alert has last_write_success_timestamp (01:10:00): it beats the other's startsAt.
    assert readings.reads[0].source_last_healthy == 1795655400.0
    assert handled.to_json()["transition_id"] == handled.transition.id


def test_a_notification_that_changes_nothing_reads_nothing(store: SqliteStore) -> None:
    readings = Readings({WEST: True})
    first = handle_alerts(region_down_alerts(), store, config(), readings, NOW)
    assert first.transition is not None
    readings.reads.clear()
    again = handle_alerts(region_down_alerts(), store, config(), readings, NOW)
    assert (again.decision.kind, readings.reads) == ("duplicate", [])
    assert again.record is not None and again.record.kind == "duplicate"


def test_no_healthy_region_is_blocked_and_recorded(store: SqliteStore) -> None:
    handled = handle_alerts(region_down_alerts(), store, config(), Readings({}), NOW)
    assert handled.decision.kind == "blocked" and handled.transition is None
    assert handled.decision.reason == "no healthy region: eu-west-1: canary read failed (timeout)"
    history = store.history()
    assert history["transitions"] == []
    assert history["decisions"][0]["kind"] == "blocked"
    assert history["decisions"][0]["cause"]["alerts"][0]["fingerprint"] == "a1b2c3d4e5f60718"
    assert store.state().phase == "blocked"


def test_the_hourly_cap_freezes_the_store(tmp_path: Path) -> None:
    clock = [NOW]
    store = SqliteStore(tmp_path / "state.db", EAST, clock=lambda: clock[0])
    cfg = config(max_transitions_per_hour=1, min_dwell_seconds=0)
    first = handle_alerts(region_down_alerts(), store, cfg, always_ready, NOW)
    assert first.transition is not None
    lease = store.acquire_lease("t", 10)
    assert lease is not None
    store.finish_transition(first.transition.id, "completed", lease.token)
    clock[0] += 60
    request = OperatorRequest(EAST, by="alice", reason="back")
    # An operator past the cap is blocked but does not freeze: a human is already there.
    blocked = handle_operator(request, store, cfg, always_ready, clock[0])
    assert blocked.decision.kind == "blocked" and store.state().frozen is None
    ready = region_down_alerts()  # us-east-1 is inactive now: ignored, no cap involved
    assert handle_alerts(ready, store, cfg, always_ready, clock[0]).decision.kind == "ignored"
    # Automatic: WEST down now, beyond the cap -> blocked and frozen.
    west_down = tuple(
        replace(a, labels={**a.labels, "region": WEST}, fingerprint="ffff" + str(i))
        for i, a in enumerate(region_down_alerts())
    )
    capped = handle_alerts(west_down, store, cfg, always_ready, clock[0])
    assert capped.decision.kind == "blocked" and capped.decision.freeze
    frozen = store.state().frozen
    assert frozen is not None and frozen.automatic and frozen.by == "responder"
    # Frozen from now on, until a human unfreezes.
    assert (
        "frozen by responder"
        in handle_alerts(west_down, store, cfg, always_ready, clock[0] + 7200).decision.reason
    )


def test_dry_run_records_a_dry_transition(store: SqliteStore) -> None:
    handled = handle_alerts(region_down_alerts(), store, config(dry_run=True), always_ready, NOW)
    assert handled.transition is not None and handled.transition.dry_run


def test_operator_failover_and_unknown_region(store: SqliteStore) -> None:
    request = OperatorRequest(WEST, by="alice", reason="drill")
    handled = handle_operator(request, store, config(), always_ready, NOW)
    assert handled.transition is not None and handled.transition.kind == "manual"
    assert handled.transition.cause.operator == "alice"
    with pytest.raises(UnknownRegion):
        handle_operator(OperatorRequest("sa-east-1", "a", "b"), store, config(), always_ready, NOW)
    assert len(store.history()["transitions"]) == 1


def test_blocked_phase_clears_when_the_alerts_resolve(store: SqliteStore) -> None:
    handle_alerts(region_down_alerts(), store, config(), Readings({}), NOW)
    assert store.state().phase == "blocked"
    resolved = tuple(replace(a, status="resolved") for a in region_down_alerts())
    assert handle_alerts(resolved, store, config(), Readings({}), NOW).decision.kind == "ignored"
    assert store.state().phase == "steady"
