"""Live readiness of a STRONG table's regions: real moto processes, the sandbox's quorum.

Two replicas and a witness (tests/conftest.py strong_members): RPO 0 needs no heartbeat,
the target must take a write, and a write conflict is no failure.
"""

from __future__ import annotations

import json

from ddb_failover import heartbeat
from ddb_failover.config import Canary, Region
from responder.decide.decision import Check
from responder.decide.readiness import ReadinessChecker
from sandbox.net import wait_until
from sandbox.quorum import StrongMembers
from tests.conftest import CANARY_KEY, CANARY_VALUE, STRONG_REGIONS, WITNESS

TABLE = "wordpress_posts"
EAST, EAST2 = STRONG_REGIONS
T0 = 1_800_000_000.0


def checker(strong: StrongMembers, strong_tables: tuple[str, ...] = (TABLE,)) -> ReadinessChecker:
    return ReadinessChecker(
        [Region(name=n, endpoint_url=r.url) for n, r in strong.regions.items()],
        (TABLE,),
        Canary(key=CANARY_KEY, value=CANARY_VALUE),
        2.0,
        strong_tables,
        clock=lambda: T0,
    )


def test_strong_target_is_ready_with_rpo_0_and_no_heartbeat(strong: StrongMembers) -> None:
    # No heartbeat of EAST2 was ever written in EAST: an eventual table would not be ready.
    eventual = checker(strong, strong_tables=()).check(Check(EAST, EAST2, T0 + 600))
    assert eventual.problem(60) == (
        "us-east-1: replication lag unknown (no heartbeat from the source)"
    )
    readiness = checker(strong).check(Check(EAST, EAST2, T0 + 600))
    assert readiness.strong and readiness.write_ok is True
    assert readiness.data_at_risk_seconds == 0.0
    assert readiness.problem(60) is None
    # The write probe is the target's own heartbeat, in every member once it returns.
    written = (
        strong.regions[EAST2]
        .client()
        .get_item(
            TableName=TABLE, Key={CANARY_KEY: {"S": heartbeat.key_value(EAST)}}, ConsistentRead=True
        )
    )
    assert heartbeat.written_at(written.get("Item")) == T0


def test_without_a_quorum_the_write_probe_fails(strong: StrongMembers) -> None:
    strong.all[EAST2].pause()
    strong.all[WITNESS].stop()
    wait_until(lambda: not strong.coordinator.has_quorum(EAST), 30, message="quorum lost")
    readiness = checker(strong).check(Check(EAST, EAST2, T0))
    assert readiness.write_ok is False
    assert readiness.write_detail == "wordpress_posts: error InternalServerError"
    assert readiness.problem(60) is not None


def test_a_write_conflict_is_no_failure(strong: StrongMembers) -> None:
    mine = json.dumps({CANARY_KEY: {"S": heartbeat.key_value(EAST)}}, sort_keys=True)
    held = strong.coordinator.prepare(EAST2, TABLE, [mine])  # EAST2 is writing the same item
    try:
        readiness = checker(strong).check(Check(EAST, EAST2, T0))
    finally:
        strong.coordinator.release(held)
    assert (readiness.write_ok, readiness.write_detail) == (True, "")
    assert readiness.problem(60) is None


def test_a_dead_region_is_not_written_to_again(strong: StrongMembers) -> None:
    strong.all[EAST2].stop()
    readiness = checker(strong).check(Check(EAST2, EAST, T0))
    assert (readiness.canary_ok, readiness.write_ok) == (False, False)
    assert readiness.write_detail == "connection refused or unreachable"
