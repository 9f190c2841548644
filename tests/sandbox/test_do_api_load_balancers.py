"""DigitalOcean's load balancer rules in the sandbox: regional ones stay in their region,
global ones (type GLOBAL) target regional ones and carry region priorities."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.sandbox.doapi import HTTP, OBJECTS, PRIMARY, SECONDARY, Server

LB_ID = OBJECTS["load_balancer_ids"][PRIMARY]
GLB_ID = OBJECTS["global_load_balancer_id"]
EAST_SLUG, WEST_SLUG = OBJECTS["droplet_regions"][PRIMARY], OBJECTS["droplet_regions"][SECONDARY]
EAST_IDS, WEST_IDS = OBJECTS["droplet_ids"][PRIMARY], OBJECTS["droplet_ids"][SECONDARY]
# What a client may send back of a load balancer it read (the API's writable settings).
WRITABLE = (
    "name",
    "type",
    "forwarding_rules",
    "health_check",
    "sticky_sessions",
    "glb_settings",
    "target_load_balancer_ids",
    "domains",
)


def get_lb(server: Server, lb_id: str) -> dict[str, Any]:
    status, _, body = server.call("GET", f"/v2/load_balancers/{lb_id}")
    assert status == 200, body
    return dict(body["load_balancer"])


def put_body(lb: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A PUT body echoing lb's settings, with changes (None removes a key)."""
    body = {k: copy.deepcopy(lb[k]) for k in WRITABLE if k in lb}
    body["region"] = lb["region"]["slug"]
    body["tag" if lb["tag"] else "droplet_ids"] = lb["tag"] or lb["droplet_ids"]
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def put_lb(server: Server, lb_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, _, answer = server.call("PUT", f"/v2/load_balancers/{lb_id}", body)
    return status, answer


def test_each_regional_load_balancer_balances_its_own_regions_tagged_droplets(
    server: Server,
) -> None:
    tagged = server.client().droplets.list(tag_name="wordpress", **HTTP)["droplets"]
    assert sorted(d["id"] for d in tagged) == sorted(EAST_IDS + WEST_IDS)
    for region in (PRIMARY, SECONDARY):
        lb = get_lb(server, OBJECTS["load_balancer_ids"][region])
        assert lb["tag"] == "wordpress"
        assert lb["region"]["slug"] == OBJECTS["droplet_regions"][region]
        assert sorted(lb["droplet_ids"]) == OBJECTS["droplet_ids"][region]


def test_a_droplet_of_another_region_by_id_is_422(server: Server) -> None:
    lb = get_lb(server, LB_ID)
    before = server.control("GET", "state")

    status, error = put_lb(server, LB_ID, put_body(lb, tag=None, droplet_ids=[WEST_IDS[0]]))

    assert status == 422 and error["id"] == "unprocessable_entity"
    assert error["message"] == (
        f"droplet_ids: droplet(s) [{WEST_IDS[0]}] are in {WEST_SLUG}, not in {EAST_SLUG}; "
        "a regional load balancer only balances droplets of its own region"
    )
    assert server.control("GET", "state") == before


def test_adding_a_droplet_of_another_region_is_422(server: Server) -> None:
    lb = get_lb(server, LB_ID)
    assert put_lb(server, LB_ID, put_body(lb, tag=None, droplet_ids=[EAST_IDS[0]]))[0] == 200
    path = f"/v2/load_balancers/{LB_ID}/droplets"

    status, _, error = server.call("POST", path, {"droplet_ids": [EAST_IDS[1], WEST_IDS[1]]})
    assert (status, error["id"]) == (422, "unprocessable_entity")
    assert f"[{WEST_IDS[1]}] are in {WEST_SLUG}" in error["message"]
    status, _, error = server.call("POST", path, {"droplet_ids": [42]})
    assert (status, error["message"]) == (422, "droplet_ids: no such droplet(s) [42]")
    assert get_lb(server, LB_ID)["droplet_ids"] == [EAST_IDS[0]]


def test_a_tag_of_another_regions_droplets_leaves_no_backends(server: Server) -> None:
    lb = get_lb(server, LB_ID)

    # By tag DigitalOcean accepts it: the tag simply names no droplet in this region.
    status, answer = put_lb(server, LB_ID, put_body(lb, tag=OBJECTS["droplet_tags"][SECONDARY]))

    assert status == 200
    assert answer["load_balancer"]["droplet_ids"] == []
    assert get_lb(server, LB_ID)["droplet_ids"] == []


def test_region_and_type_cannot_change(server: Server) -> None:
    lb = get_lb(server, LB_ID)
    status, error = put_lb(server, LB_ID, put_body(lb, region=WEST_SLUG))
    assert (status, error["message"]) == (
        422,
        f"region cannot be changed (load balancer is in {EAST_SLUG})",
    )
    status, error = put_lb(server, LB_ID, put_body(lb, type="GLOBAL"))
    assert (status, error["message"]) == (422, "type cannot be changed (load balancer is REGIONAL)")


def test_global_load_balancer_targets_the_regional_ones_with_priorities(server: Server) -> None:
    glb = get_lb(server, GLB_ID)
    assert glb["type"] == "GLOBAL"
    assert glb["target_load_balancer_ids"] == list(OBJECTS["load_balancer_ids"].values())
    assert glb["glb_settings"]["region_priorities"] == {EAST_SLUG: 1, WEST_SLUG: 2}
    assert glb["glb_settings"]["failover_threshold"] == 50
    assert glb["droplet_ids"] == []

    settings = {**glb["glb_settings"], "region_priorities": {WEST_SLUG: 1, EAST_SLUG: 2}}
    status, answer = put_lb(server, GLB_ID, put_body(glb, glb_settings=settings))

    assert status == 200, answer
    after = get_lb(server, GLB_ID)
    assert after["glb_settings"] == settings
    assert after["target_load_balancer_ids"] == glb["target_load_balancer_ids"]
    assert after["domains"] == glb["domains"]


def test_global_load_balancer_takes_droplets_of_any_region(server: Server) -> None:
    glb = get_lb(server, GLB_ID)
    body = put_body(glb, droplet_ids=[EAST_IDS[0], WEST_IDS[0]], target_load_balancer_ids=None)
    status, answer = put_lb(server, GLB_ID, body)
    assert status == 200, answer
    assert answer["load_balancer"]["droplet_ids"] == [EAST_IDS[0], WEST_IDS[0]]
    # Left out of the full representation, the targets are gone, as DigitalOcean does.
    assert answer["load_balancer"].get("target_load_balancer_ids") in (None, [])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"glb_settings": {"region_priorities": {"atl9": 1}}},
            "glb_settings.region_priorities: unknown region 'atl9'",
        ),
        (
            {"glb_settings": {"region_priorities": {EAST_SLUG: 0}}},
            f"glb_settings.region_priorities.{EAST_SLUG}: priority must be 1 or more, got 0",
        ),
        (
            {"glb_settings": {"failover_threshold": 101}},
            "glb_settings.failover_threshold: must be a percentage from 0 to 100, got 101",
        ),
        (
            {"target_load_balancer_ids": ["00000000-0000-4000-8000-000000000000"]},
            "target_load_balancer_ids: no such load balancer 00000000-0000-4000-8000-000000000000",
        ),
        (
            {"target_load_balancer_ids": [GLB_ID]},
            "target_load_balancer_ids: a load balancer cannot target itself",
        ),
        ({"type": None}, "type cannot be changed (load balancer is GLOBAL)"),
    ],
)
def test_global_load_balancer_rules_are_422(
    server: Server, changes: dict[str, Any], message: str
) -> None:
    glb = get_lb(server, GLB_ID)
    before = server.control("GET", "state")
    status, error = put_lb(server, GLB_ID, put_body(glb, **changes))
    assert (status, error["id"], error["message"]) == (422, "unprocessable_entity", message)
    assert server.control("GET", "state") == before


def test_global_settings_on_a_regional_load_balancer_are_422(server: Server) -> None:
    lb = get_lb(server, LB_ID)
    for changes in (
        {"glb_settings": {"region_priorities": {EAST_SLUG: 1}}},
        {"target_load_balancer_ids": [OBJECTS["load_balancer_ids"][SECONDARY]]},
    ):
        status, error = put_lb(server, LB_ID, put_body(lb, **changes))
        assert (status, error["message"]) == (
            422,
            "glb_settings and target_load_balancer_ids apply to GLOBAL load balancers only",
        )


def test_a_priority_that_is_not_an_integer_fails_the_description(server: Server) -> None:
    glb = get_lb(server, GLB_ID)
    settings = {"region_priorities": {EAST_SLUG: "first"}}
    status, error = put_lb(server, GLB_ID, put_body(glb, glb_settings=settings))
    assert status == 422
    assert "region_priorities" in error["message"]
