"""do_global_load_balancer through pydo against the DigitalOcean API sandbox."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ddb_failover.config import GlobalLoadBalancerAction
from responder.actions.base import reconcile
from responder.actions.do_client import DOClient
from responder.actions.do_global_load_balancer import GlobalLoadBalancer, first_region, put_first
from responder.model.errors import PermanentError, TemporaryError
from tests.responder.dosandbox import (
    EAST,
    SEED,
    WEST,
    Sandbox,
    transition,
)

GLB_ID = "b53415a9-f504-5998-a1d5-d0673cf65c94"
GLB_PATH = f"/v2/load_balancers/{GLB_ID}"
REGIONAL_ID = "4de7ac8b-495b-4884-9a69-1050c6793cd6"


def glb_action(**fields: Any) -> GlobalLoadBalancerAction:
    return GlobalLoadBalancerAction.model_validate(
        {
            "type": "do_global_load_balancer",
            "name": "wordpress-glb",
            "load_balancer_id": GLB_ID,
            "values": {EAST: "nyc3", WEST: "ams3"},
            **fields,
        }
    )


def glb(sandbox: Sandbox) -> dict[str, Any]:
    return next(lb for lb in sandbox.state()["load_balancers"] if lb["id"] == GLB_ID)


def calls(sandbox: Sandbox) -> list[str]:
    return [f"{r['method']} {r['status']}" for r in sandbox.requests()]


def with_priorities(sandbox: Sandbox, priorities: dict[str, int]) -> None:
    seed = copy.deepcopy(SEED)
    [seeded] = [lb for lb in seed["load_balancers"] if lb["id"] == GLB_ID]
    seeded["glb_settings"]["region_priorities"] = priorities
    sandbox.control("POST", "/_sandbox/state", {"seed": seed})


def test_first_region_and_put_first() -> None:
    assert first_region({"nyc3": 1, "ams3": 2}) == "nyc3"
    assert first_region({"nyc3": 3, "ams3": 3}) is None  # a tie has no first
    assert first_region({}) is None
    assert put_first({"nyc3": 1, "ams3": 5, "sfo3": 3}, "ams3") == {"ams3": 1, "nyc3": 2, "sfo3": 3}
    assert put_first({"nyc3": 2, "ams3": 2}, "sfo3") == {"sfo3": 1, "ams3": 2, "nyc3": 3}


def test_already_first_is_unchanged_with_one_read(sandbox: Sandbox, do_client: DOClient) -> None:
    outcome = reconcile(GlobalLoadBalancer(glb_action(), do_client), transition(EAST))

    assert (outcome.result, outcome.before) == ("unchanged", {"first_region": "nyc3"})
    assert calls(sandbox) == ["GET 200"]


def test_target_region_goes_first_and_the_rest_is_kept(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    before = glb(sandbox)

    outcome = reconcile(GlobalLoadBalancer(glb_action(), do_client), transition(WEST))

    assert outcome.result == "applied"
    assert (outcome.before, outcome.after) == ({"first_region": "nyc3"}, {"first_region": "ams3"})
    # Read, read, write the whole load balancer back, read to verify.
    assert calls(sandbox) == ["GET 200", "GET 200", "PUT 200", "GET 200"]
    after = glb(sandbox)
    assert after["glb_settings"] == {
        **before["glb_settings"],
        "region_priorities": {"ams3": 1, "nyc3": 2},
    }
    for kept in ("type", "target_load_balancer_ids", "domains", "forwarding_rules", "region"):
        assert after[kept] == before[kept], kept


def test_failback_restores_the_primary_first(sandbox: Sandbox, do_client: DOClient) -> None:
    action = GlobalLoadBalancer(glb_action(), do_client)
    reconcile(action, transition(WEST))

    outcome = reconcile(action, transition(EAST))

    assert (outcome.result, outcome.after) == ("applied", {"first_region": "nyc3"})
    assert glb(sandbox)["glb_settings"]["region_priorities"] == {"nyc3": 1, "ams3": 2}


def test_the_other_regions_keep_their_order(sandbox: Sandbox, do_client: DOClient) -> None:
    with_priorities(sandbox, {"nyc3": 1, "ams3": 5, "sfo3": 3})
    action = GlobalLoadBalancer(glb_action(), do_client)

    reconcile(action, transition(WEST))

    # ams3 was last (5); nyc3 (1) and sfo3 (3) follow it in the order they had.
    priorities = glb(sandbox)["glb_settings"]["region_priorities"]
    assert priorities == {"ams3": 1, "nyc3": 2, "sfo3": 3}


def test_a_tie_at_the_top_is_resolved(sandbox: Sandbox, do_client: DOClient) -> None:
    with_priorities(sandbox, {"nyc3": 1, "ams3": 1})
    action = GlobalLoadBalancer(glb_action(), do_client)

    outcome = reconcile(action, transition(EAST))

    assert (outcome.before, outcome.after) == ({"first_region": None}, {"first_region": "nyc3"})


def test_a_region_without_a_priority_is_permanent(sandbox: Sandbox, do_client: DOClient) -> None:
    action = GlobalLoadBalancer(glb_action(values={EAST: "nyc3", WEST: "sfo3"}), do_client)

    with pytest.raises(PermanentError) as refused:
        reconcile(action, transition(WEST))

    assert str(refused.value) == (
        f"wordpress-glb: sfo3 has no priority on load balancer {GLB_ID} "
        "(its regions: ams3, nyc3); not moving traffic"
    )
    assert sandbox.writes() == []


def test_a_regional_load_balancer_is_permanent(sandbox: Sandbox, do_client: DOClient) -> None:
    action = GlobalLoadBalancer(glb_action(load_balancer_id=REGIONAL_ID), do_client)

    with pytest.raises(PermanentError, match="is REGIONAL, not GLOBAL; use do_load_balancer"):
        reconcile(action, transition(WEST))
    assert sandbox.writes() == []


def test_a_5xx_on_the_write_is_temporary_then_one_write(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = GlobalLoadBalancer(glb_action(), do_client)
    sandbox.fault(status=503, count=1, method="PUT", path_prefix=GLB_PATH)

    with pytest.raises(TemporaryError, match="HTTP 503"):
        reconcile(action, transition(WEST))
    assert glb(sandbox)["glb_settings"]["region_priorities"] == {"nyc3": 1, "ams3": 2}
    outcome = reconcile(action, transition(WEST))

    assert outcome.result == "applied"
    puts = [(r["status"], r["fault"]) for r in sandbox.requests() if r["method"] == "PUT"]
    assert puts == [(503, True), (200, False)]


def test_a_5xx_on_verify_then_the_retry_finds_it_done(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = GlobalLoadBalancer(glb_action(), do_client)
    desired = action.desired(WEST)
    action.apply(desired, transition(WEST))
    sandbox.fault(status=500, count=1, path_prefix=GLB_PATH)

    with pytest.raises(TemporaryError, match="HTTP 500"):
        action.verify(desired)
    outcome = reconcile(action, transition(WEST))

    assert outcome.result == "unchanged"
    assert sandbox.writes() == [f"PUT {GLB_PATH}"]


def test_rate_limit_is_temporary_with_retry_after(sandbox: Sandbox, do_client: DOClient) -> None:
    sandbox.fault(status=429, count=1, retry_after=4, path_prefix=GLB_PATH)
    with pytest.raises(TemporaryError) as caught:
        GlobalLoadBalancer(glb_action(), do_client).current()
    assert caught.value.retry_after == 4.0


def test_dry_run_changes_nothing(sandbox: Sandbox, do_client: DOClient) -> None:
    outcome = reconcile(GlobalLoadBalancer(glb_action(), do_client), transition(WEST, dry_run=True))

    assert (outcome.result, outcome.after) == ("would_apply", {"first_region": "ams3"})
    assert sandbox.writes() == []


# --- inspect: the plan's read-only view ---


def test_inspect_reads_once_and_says_what_would_change(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    seen = GlobalLoadBalancer(glb_action(), do_client).inspect(WEST)

    assert (seen.current, seen.desired) == ({"first_region": "nyc3"}, {"first_region": "ams3"})
    assert (seen.would_change, seen.ready, seen.problems) == (True, True, ())
    assert calls(sandbox) == ["GET 200"]


@pytest.mark.parametrize(
    ("fields", "kind", "message"),
    [
        (
            {"values": {EAST: "nyc3", WEST: "sfo3"}},
            "invalid_target",
            f"sfo3 has no priority on load balancer {GLB_ID} (its regions: ams3, nyc3)",
        ),
        (
            {"load_balancer_id": REGIONAL_ID},
            "invalid_target",
            f"load balancer {REGIONAL_ID} is REGIONAL, not GLOBAL",
        ),
        (
            {"load_balancer_id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"},
            "missing",
            "get load balancer 0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0: HTTP 404",
        ),
    ],
)
def test_inspect_names_what_would_stop_the_move(
    sandbox: Sandbox, do_client: DOClient, fields: dict[str, Any], kind: str, message: str
) -> None:
    seen = GlobalLoadBalancer(glb_action(**fields), do_client).inspect(WEST)

    assert [p.kind for p in seen.problems] == [kind]
    assert seen.problems[0].message.startswith(f"wordpress-glb: {message}")
    assert not seen.ready
    assert sandbox.writes() == []


def test_inspect_with_a_revoked_token_is_a_credentials_problem(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    sandbox.fault(status=401, path_prefix=GLB_PATH)
    seen = GlobalLoadBalancer(glb_action(), do_client).inspect(WEST)
    assert [(p.kind, "HTTP 401" in p.message) for p in seen.problems] == [("credentials", True)]
    assert (seen.current, seen.would_change) == (None, None)
