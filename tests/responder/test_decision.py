"""The pure decision over a table of cases: no store, no network, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from ddb_failover.config import Policy
from responder.decide.decision import (
    Check,
    OperatorRequest,
    Readiness,
    SiteAnswer,
    UnknownRegion,
    candidates,
    decide,
    decide_operator,
    operator_candidates,
)
from responder.decide.readiness import Reading, evaluate
from responder.model.alerts import Alert
from responder.state.records import Cause, Freeze, State, TransitionRecord

EAST, WEST, SOUTH = "us-east-1", "eu-west-1", "ap-south-1"
REGIONS = (EAST, WEST, SOUTH)
NOW = 1_800_000_000.0
STARTS = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC)
DOWN, READY = "DynamoDBRegionDown", "DynamoDBFailbackReady"
SITE_DOWN = "WordPressSiteDownInActiveRegion"


def alert(
    name: str = DOWN,
    region: str = EAST,
    status: str = "firing",
    fingerprint: str = "f00d",
    annotations: dict[str, str] | None = None,
) -> Alert:
    return Alert(
        status=status,  # type: ignore[arg-type]
        labels={"alertname": name, "region": region, "table": "wordpress_posts"},
        annotations=annotations or {},
        starts_at=STARTS,
        ends_at=None,
        generator_url="",
        fingerprint=fingerprint,
    )


def transition(
    result: str = "completed",
    to: str = WEST,
    cause: tuple[Alert, ...] = (),
    finished_at: float | None = NOW - 3000,
) -> TransitionRecord:
    return TransitionRecord(
        id="t-1",
        kind="failover",
        from_region=EAST,
        to_region=to,
        result=result,  # type: ignore[arg-type]
        started_at=NOW - 3100,
        finished_at=None if result == "in_progress" else finished_at,
        cause=Cause(alerts=tuple({"fingerprint": a.fingerprint, "key": a.key} for a in cause)),
        data_at_risk_seconds=0.0,
        dry_run=False,
    )


def state(
    active: str = EAST,
    last: TransitionRecord | None = None,
    frozen: bool = False,
    recent: tuple[float, ...] = (),
) -> State:
    running = last if last is not None and last.in_progress else None
    completed = last.finished_at if last is not None and last.result == "completed" else None
    return State(
        active_region=active,
        desired_region=active,
        phase="steady",
        frozen=Freeze("alice", "maintenance", NOW - 10) if frozen else None,
        in_progress=running,
        last_transition=last,
        last_completed_at=completed,
        recent_starts=recent,
        version=7,
    )


def ok(region: str, risk: float | None = 2.0) -> Readiness:
    return Readiness(region, True, risk)


def dead(region: str) -> Readiness:
    return Readiness(region, False, None, "timeout")


def site(region: str, status: int | None = 200, error: str = "") -> SiteAnswer:
    return SiteAnswer(f"http://lb-{region}/healthz", 200, status, error)


def dead_site(region: str, status: int | None = None) -> Readiness:
    """DynamoDB ready, WordPress not: refused, or answering status."""
    answer = site(region, status, "" if status else "connection refused")
    return Readiness(region, True, 2.0, "", answer)


def strong(region: str, write_detail: str = "") -> Readiness:
    """A region of strongly consistent tables: RPO 0; its write probe failed with write_detail."""
    return Readiness(
        region, True, 0.0, strong=True, write_ok=not write_detail, write_detail=write_detail
    )


NO_QUORUM = "wordpress_posts: error InternalServerError"
ALL_READY = {r: ok(r) for r in REGIONS}


@dataclass
class Case:
    alerts: tuple[Alert, ...]
    kind: str
    reason: str  # a substring of the decision's reason
    to: str | None = None
    st: State = field(default_factory=state)
    policy: dict[str, Any] = field(default_factory=dict)
    readiness: dict[str, Readiness] = field(default_factory=lambda: dict(ALL_READY))
    freeze: bool = False


CASES = {
    "down active fails over to first ready": Case((alert(),), "failover", "to eu-west-1", WEST),
    "first target dead, next one chosen": Case(
        (alert(),),
        "failover",
        "to ap-south-1",
        SOUTH,
        readiness={WEST: dead(WEST), SOUTH: ok(SOUTH)},
    ),
    "target behind the RPO": Case(
        (alert(),),
        "blocked",
        "eu-west-1: data at risk 90.0s exceeds RPO 60s",
        readiness={WEST: ok(WEST, 90.0), SOUTH: dead(SOUTH)},
    ),
    "no heartbeat seen: lag unknown": Case(
        (alert(),),
        "blocked",
        "replication lag unknown",
        readiness={WEST: ok(WEST, None), SOUTH: ok(SOUTH, None)},
    ),
    "unchecked target is not ready": Case((alert(),), "blocked", "not checked", readiness={}),
    "every other region down too": Case(
        (alert(), alert(region=WEST, fingerprint="f2"), alert(region=SOUTH, fingerprint="f3")),
        "blocked",
        "every other region is down",
    ),
    "down region known in the same notification is skipped": Case(
        (alert(), alert(region=WEST, fingerprint="f2")), "failover", "to ap-south-1", SOUTH
    ),
    "down inactive region recorded, ignored": Case(
        (alert(region=WEST),), "ignored", "region eu-west-1 is not active (active is us-east-1)"
    ),
    "resolved alerts ignored": Case((alert(status="resolved"),), "ignored", "alerts resolved"),
    "unrelated alert ignored": Case(
        (alert(name="DynamoDBReplicationLagHigh"),), "ignored", "no failover alert"
    ),
    "frozen blocks": Case(
        (alert(),), "blocked", "frozen by alice: maintenance", st=state(frozen=True)
    ),
    "dwell never holds traffic in a down active region": Case(
        (alert(),),
        "failover",
        "failover from us-east-1 to eu-west-1 (dwell overridden: us-east-1 is down "
        "(DynamoDBRegionDown); last transition completed 100s ago, minimum is 300s)",
        WEST,
        st=state(last=transition(finished_at=NOW - 100)),
    ),
    "dwell overridden only with a ready target": Case(
        (alert(),),
        "blocked",
        "no healthy region: eu-west-1: canary read failed (timeout); ap-south-1: canary",
        st=state(last=transition(finished_at=NOW - 100)),
        readiness={WEST: dead(WEST), SOUTH: dead(SOUTH)},
    ),
    "the cap still stops a flap within the dwell, and freezes": Case(
        (alert(),),
        "blocked",
        "cap: 5 transitions in the last hour, maximum is 5; frozen",
        st=state(
            last=transition(finished_at=NOW - 60),
            recent=(NOW - 90, NOW - 400, NOW - 900, NOW - 1500, NOW - 2000),
        ),
        policy={"max_transitions_per_hour": 5},
        freeze=True,
    ),
    "a dead site in the active region fails over like a dead table": Case(
        (alert(SITE_DOWN),), "failover", "failover from us-east-1 to eu-west-1", WEST
    ),
    "a dead site in the active region overrides dwell too": Case(
        (alert(SITE_DOWN),),
        "failover",
        "(dwell overridden: us-east-1 is down (WordPressSiteDownInActiveRegion); last "
        "transition completed 20s ago",
        WEST,
        st=state(last=transition(finished_at=NOW - 20)),
    ),
    "a dead site in a standby region is not a failover": Case(
        (alert(SITE_DOWN, region=WEST),),
        "ignored",
        "region eu-west-1 is not active (active is us-east-1)",
    ),
    "a target whose site is dead is skipped": Case(
        (alert(),),
        "failover",
        "to ap-south-1",
        SOUTH,
        readiness={WEST: dead_site(WEST), SOUTH: ok(SOUTH)},
    ),
    "every target's site dead: blocked, naming each answer": Case(
        (alert(),),
        "blocked",
        "no healthy region: eu-west-1: site http://lb-eu-west-1/healthz did not answer "
        "(connection refused); ap-south-1: site http://lb-ap-south-1/healthz answered 503 "
        "(expected 200)",
        readiness={WEST: dead_site(WEST), SOUTH: dead_site(SOUTH, 503)},
    ),
    "a site that answers counts as ready": Case(
        (alert(),),
        "failover",
        "to eu-west-1",
        WEST,
        readiness={WEST: Readiness(WEST, True, 2.0, "", site(WEST)), SOUTH: ok(SOUTH)},
    ),
    "dwell elapsed": Case(
        (alert(),),
        "failover",
        "to eu-west-1",
        WEST,
        st=state(last=transition(finished_at=NOW - 301)),
    ),
    "cap blocks and freezes": Case(
        (alert(),),
        "blocked",
        "cap: 4 transitions in the last hour, maximum is 4; frozen",
        st=state(recent=(NOW - 100, NOW - 1000, NOW - 2000, NOW - 3500)),
        freeze=True,
    ),
    "cap in dry run does not freeze": Case(
        (alert(),),
        "blocked",
        "cap: 4 transitions",
        st=state(recent=(NOW - 100, NOW - 1000, NOW - 2000, NOW - 3500)),
        policy={"dry_run": True},
    ),
    "cap counts only the last hour": Case(
        (alert(),),
        "failover",
        "to eu-west-1",
        WEST,
        st=state(recent=(NOW - 100, NOW - 1000, NOW - 2000, NOW - 3601)),
    ),
    "same alert while its transition runs: duplicate": Case(
        (alert(),),
        "duplicate",
        "transition t-1 already in progress",
        st=state(last=transition("in_progress", cause=(alert(),))),
    ),
    "another table's alert while its failover runs: duplicate": Case(
        (alert(fingerprint="beef"),),
        "duplicate",
        "transition t-1 already in progress",
        st=state(last=transition("in_progress", to=SOUTH)),
    ),
    "alert while an operator's transition runs: ignored": Case(
        (alert(fingerprint="beef"),),
        "ignored",
        "already in progress",
        st=state(last=replace(transition("in_progress", to=SOUTH), kind="manual")),
    ),
    "re-sent alert after a dry run: duplicate": Case(
        (alert(),),
        "duplicate",
        "already handled by transition t-1 (completed)",
        st=state(last=transition(cause=(alert(),), finished_at=NOW - 5000)),
    ),
    "re-sent alert after a failed transition: duplicate": Case(
        (alert(),),
        "duplicate",
        "already handled by transition t-1 (failed)",
        st=state(last=transition("failed", cause=(alert(),))),
    ),
    "failback auto": Case(
        (alert(READY),), "failback", "failback from eu-west-1 to us-east-1", EAST, st=state(WEST)
    ),
    "failback manual policy": Case(
        (alert(READY),),
        "ignored",
        "failback policy is manual",
        st=state(WEST),
        policy={"failback": "manual"},
    ),
    "failback while primary active": Case(
        (alert(READY),), "ignored", "us-east-1 is already active"
    ),
    "failback for a non-primary region": Case(
        (alert(READY, region=SOUTH),), "ignored", "not the primary", st=state(WEST)
    ),
    "failback ready but primary also down": Case(
        (alert(READY), alert(fingerprint="f2")),
        "ignored",
        "us-east-1 is also reported down",
        st=state(WEST),
    ),
    "failback waits for dwell": Case(
        (alert(READY),),
        "blocked",
        "dwell",
        st=state(WEST, last=transition(finished_at=NOW - 10)),
    ),
    "failback waits for the primary's site": Case(
        (alert(READY),),
        "blocked",
        "us-east-1: site http://lb-us-east-1/healthz answered 502 (expected 200)",
        st=state(WEST),
        readiness={EAST: dead_site(EAST, 502)},
    ),
    "strong: no lag gate, nothing at risk": Case(
        (alert(),), "failover", "to eu-west-1", WEST, readiness={WEST: strong(WEST)}
    ),
    "strong: a region that cannot write is passed over": Case(
        (alert(),),
        "failover",
        "to ap-south-1",
        SOUTH,
        readiness={WEST: strong(WEST, NO_QUORUM), SOUTH: strong(SOUTH)},
    ),
    "strong: writes fail in every replica region": Case(
        (alert(),),
        "blocked",
        "quorum lost: writes fail in every replica region (us-east-1 is down; eu-west-1: "
        f"{NO_QUORUM}; ap-south-1: {NO_QUORUM}); a strongly consistent table needs two of "
        "its three members",
        readiness={WEST: strong(WEST, NO_QUORUM), SOUTH: strong(SOUTH, NO_QUORUM)},
    ),
    "strong: a failback to a primary that cannot write is no quorum loss": Case(
        (alert(READY),),
        "blocked",
        f"no healthy region: us-east-1: write probe failed ({NO_QUORUM})",
        st=state(WEST),
        readiness={EAST: strong(EAST, NO_QUORUM)},
    ),
    "failback target not ready": Case(
        (alert(READY),),
        "blocked",
        "us-east-1: canary read failed (timeout)",
        st=state(WEST),
        readiness={EAST: dead(EAST)},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_decide(case: Case) -> None:
    policy = Policy(**case.policy)
    decision = decide(case.alerts, case.st, policy, REGIONS, case.readiness, NOW)
    assert (decision.kind, decision.to_region if case.to else None) == (case.kind, case.to)
    assert case.reason in decision.reason
    assert decision.freeze is case.freeze
    if decision.is_transition:
        assert decision.from_region == case.st.active_region
        assert decision.data_at_risk_seconds == case.readiness[case.to or ""].data_at_risk_seconds


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_candidates_only_when_readiness_can_matter(case: Case) -> None:
    """No live reads for notifications that change nothing."""
    policy = Policy(**case.policy)
    checks = candidates(case.alerts, case.st, policy, REGIONS, NOW)
    nothing = decide(case.alerts, case.st, policy, REGIONS, {}, NOW)
    if nothing.kind == "blocked" and nothing.reason.startswith("no healthy region"):
        expected = [
            r for r in REGIONS if r != case.st.active_region and r in _not_down(case.alerts)
        ]
        if nothing.transition_kind == "failback":
            expected = [EAST]
        assert [c.target for c in checks] == expected
    else:
        assert checks == ()


def _not_down(alerts: tuple[Alert, ...]) -> set[str]:
    down = {a.region for a in alerts if a.alertname in (DOWN, SITE_DOWN) and a.status == "firing"}
    return set(REGIONS) - down


def test_failover_cause_names_every_alert_for_the_active_region() -> None:
    alerts = (
        alert(fingerprint="aa"),
        alert(fingerprint="bb"),
        alert(region=WEST, fingerprint="cc"),
    )
    decision = decide(alerts, state(), Policy(), REGIONS, {SOUTH: ok(SOUTH)}, NOW)
    assert decision.kind == "failover"
    assert decision.cause.fingerprints == ("aa", "bb")
    assert decision.cause.alerts[0]["starts_at"] == "2027-01-15T08:00:00.000Z"


def test_source_last_healthy_from_annotation_else_start() -> None:
    annotated = alert(annotations={"last_write_success_timestamp": "1799999000"})
    checks = candidates((annotated,), state(), Policy(), REGIONS, NOW)
    assert checks[0] == Check(WEST, EAST, 1_799_999_000.0)
    plain = candidates((alert(),), state(), Policy(), REGIONS, NOW)
    assert plain[0].source_last_healthy == STARTS.timestamp()
    both = (alert(fingerprint="x"), annotated)  # an annotated alert beats a bare startsAt
    assert candidates(both, state(), Policy(), REGIONS, NOW)[0].source_last_healthy == (
        1_799_999_000.0
    )
    garbled = alert(annotations={"last_write_success_timestamp": "soon"})
    assert candidates((garbled,), state(), Policy(), REGIONS, NOW)[0].source_last_healthy == (
        STARTS.timestamp()
    )


def test_failback_measures_data_at_risk_up_to_now() -> None:
    checks = candidates((alert(READY),), state(WEST), Policy(), REGIONS, NOW)
    assert checks == (Check(EAST, WEST, NOW),)


def test_readiness_problem_boundaries() -> None:
    assert ok(WEST, 60.0).problem(60.0) is None
    assert ok(WEST, 60.1).problem(60.0) is not None
    assert dead(WEST).problem(60.0) == "eu-west-1: canary read failed (timeout)"


# -- operator requests ---------------------------------------------------------


def op(to: str = WEST, force: bool = False) -> OperatorRequest:
    return OperatorRequest(to, by="alice", reason="drill", force=force)


OpCase = tuple[OperatorRequest, State, dict[str, Any], dict[str, Readiness], str, str]
OP_CASES: dict[str, OpCase] = {
    "manual failover": (op(), state(), {}, ALL_READY, "manual", "manual from us-east-1"),
    "allowed while frozen": (op(), state(frozen=True), {}, ALL_READY, "manual", "manual"),
    "dwell applies": (
        op(),
        state(last=transition(to=EAST, finished_at=NOW - 5)),
        {},
        ALL_READY,
        "blocked",
        "dwell",
    ),
    "force skips dwell": (
        op(force=True),
        state(last=transition(to=EAST, finished_at=NOW - 5)),
        {},
        ALL_READY,
        "manual",
        "manual",
    ),
    "cap applies without freezing": (
        op(),
        state(recent=(NOW - 1,) * 4),
        {},
        ALL_READY,
        "blocked",
        "cap: 4 transitions in the last hour, maximum is 4",
    ),
    "force skips cap": (op(force=True), state(recent=(NOW - 1,) * 4), {}, ALL_READY, "manual", ""),
    "force does not skip readiness": (
        op(force=True),
        state(),
        {},
        {WEST: dead(WEST)},
        "blocked",
        "no healthy region: eu-west-1: canary read failed",
    ),
    "already active": (op(EAST), state(), {}, ALL_READY, "ignored", "us-east-1 is already active"),
    "forced to the active region repairs a split": (
        op(EAST, force=True),
        state(),
        {},
        ALL_READY,
        "manual",
        "manual from us-east-1 to us-east-1",
    ),
    "in progress": (
        op(SOUTH),
        state(last=transition("in_progress")),
        {},
        ALL_READY,
        "blocked",
        "already in progress",
    ),
}


@pytest.mark.parametrize(
    ("request_", "st", "policy", "readiness", "kind", "reason"),
    OP_CASES.values(),
    ids=list(OP_CASES),
)
def test_decide_operator(
    request_: OperatorRequest,
    st: State,
    policy: dict[str, Any],
    readiness: dict[str, Readiness],
    kind: str,
    reason: str,
) -> None:
    decision = decide_operator(request_, st, Policy(**policy), REGIONS, readiness, NOW)
    assert decision.kind == kind
    assert reason in decision.reason
    assert decision.freeze is False
    if kind == "manual":
        assert (decision.to_region, decision.transition_kind) == (request_.to_region, "manual")
        assert decision.cause.operator == "alice"


def test_strong_readiness_has_rpo_0_whatever_the_heartbeats() -> None:
    reading = Reading(True, "ok", None, strong=True, write_ok=True)
    readiness = evaluate(WEST, reading, NOW)
    assert readiness.data_at_risk_seconds == 0.0 and readiness.problem(0.001) is None
    assert readiness.to_json()["consistency"] == "strong"
    eventual = evaluate(WEST, Reading(True, "ok", NOW - 120), NOW)
    assert eventual.to_json()["consistency"] == "eventual"
    assert eventual.problem(60) == "eu-west-1: data at risk 120.0s exceeds RPO 60s"


def test_operator_unknown_region_is_rejected() -> None:
    with pytest.raises(UnknownRegion, match="unknown region 'mars-north-1'"):
        operator_candidates(op("mars-north-1"), state(), Policy(), REGIONS, NOW)
    with pytest.raises(UnknownRegion):
        decide_operator(op("mars-north-1"), state(), Policy(), REGIONS, ALL_READY, NOW)


def test_operator_can_repair_a_failed_transition_to_the_active_region() -> None:
    failed = state(last=transition("failed", finished_at=NOW - 4000))
    failed = State(**{**failed.__dict__, "desired_region": WEST})
    checks = operator_candidates(op(EAST), failed, Policy(), REGIONS, NOW)
    assert checks == (Check(EAST, EAST, NOW),)
    decision = decide_operator(op(EAST), failed, Policy(), REGIONS, {EAST: ok(EAST)}, NOW)
    assert (decision.kind, decision.to_region) == ("manual", EAST)


def test_moves_away_from_down_regions_override_dwell_until_the_cap_freezes() -> None:
    """A real flap: each region dies a minute after traffic arrives. Dwell lets each move
    through (the active region is down), and the record says so; the hourly cap stops
    the sixth and freezes."""
    policy = Policy(min_dwell_seconds=300, max_transitions_per_hour=5)
    active, recent, finished = EAST, (), NOW - 3600.0
    for move in range(6):
        now = NOW + 60 * move
        last = replace(transition(finished_at=finished), from_region=EAST, to_region=active)
        current = replace(
            state(active, last=last, recent=recent), active_region=active, desired_region=active
        )
        down = alert(region=active, fingerprint=f"f{move}")
        decision = decide((down,), current, policy, REGIONS, ALL_READY, now)
        if move == 5:
            assert decision.kind == "blocked" and decision.freeze
            assert "cap: 5 transitions in the last hour, maximum is 5; frozen" in decision.reason
            return
        assert decision.kind == "failover", decision.reason
        assert (decision.dwell_overridden is None) == (move == 0)  # the first is past any dwell
        if move:
            assert decision.dwell_overridden == (
                f"dwell overridden: {active} is down (DynamoDBRegionDown); last transition "
                "completed 60s ago, minimum is 300s"
            )
            assert decision.to_json()["dwell_overridden"] == decision.dwell_overridden
        assert decision.to_region is not None
        active, recent, finished = decision.to_region, (*recent, now), now


def test_operators_and_failbacks_still_wait_for_dwell() -> None:
    within = state(WEST, last=transition(finished_at=NOW - 100))
    failback = decide((alert(READY),), within, Policy(), REGIONS, ALL_READY, NOW)
    assert (failback.kind, failback.dwell_overridden) == ("blocked", None)
    assert failback.reason == "dwell: last transition completed 100s ago, minimum is 300s"
    request = OperatorRequest(SOUTH, "alice", "drill")
    manual = decide_operator(request, within, Policy(), REGIONS, ALL_READY, NOW)
    assert manual.kind == "blocked" and "dwell" in manual.reason


def test_readiness_names_both_problems_and_shows_the_site() -> None:
    both = Readiness(WEST, False, None, "timeout", site(WEST, None, "timeout"))
    assert both.problem(60) == (
        "eu-west-1: canary read failed (timeout); site http://lb-eu-west-1/healthz did not "
        "answer (timeout)"
    )
    assert both.dynamodb_problem(60) == "eu-west-1: canary read failed (timeout)"
    assert (
        both.site_problem()
        == "eu-west-1: site http://lb-eu-west-1/healthz did not answer (timeout)"
    )
    assert ok(WEST).site_problem() is None and ok(WEST).to_json()["site"] is None
    assert dead_site(SOUTH, 503).to_json()["site"] == {
        "url": "http://lb-ap-south-1/healthz",
        "expect_status": 200,
        "status": 503,
        "error": "",
        "ok": False,
    }
