"""DigitalOcean's rules the OpenAPI description cannot express, shared by the store and seeds.

Each check raises RuleBroken with the message the API answers (as a 422); the seed loader
turns the same error into an invalid seed, so a seed cannot hold what the API would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.do_api.shapes import REGION_NAMES

GLOBAL = "GLOBAL"
COMPONENT_KINDS = ("services", "workers", "jobs", "static_sites", "functions")


class RuleBroken(ValueError):
    """A request (or seed) breaks one of DigitalOcean's rules; the message says which."""


def is_global(lb: Mapping[str, Any]) -> bool:
    return lb.get("type") == GLOBAL


def check_droplets(
    lb: Mapping[str, Any], droplet_ids: Iterable[int], droplets: Mapping[int, Mapping[str, Any]]
) -> None:
    """Droplets by id must exist and, for a regional load balancer, be in its region."""
    ids = list(droplet_ids)
    missing = [d for d in ids if d not in droplets]
    if missing:
        raise RuleBroken(f"droplet_ids: no such droplet(s) {missing}")
    if is_global(lb):
        return
    elsewhere = sorted(d for d in ids if droplets[d]["region"] != lb["region"])
    if elsewhere:
        regions = ", ".join(sorted({droplets[d]["region"] for d in elsewhere}))
        raise RuleBroken(
            f"droplet_ids: droplet(s) {elsewhere} are in {regions}, not in {lb['region']}; "
            "a regional load balancer only balances droplets of its own region"
        )


def backends(lb: Mapping[str, Any], droplets: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """The droplets a load balancer balances: its ids, or those with its tag in its region.

    A tag may name droplets anywhere; a regional load balancer picks up only those of its
    own region, so a tag with none there leaves it with no backends.
    """
    tag = lb.get("tag")
    if not tag:
        return list(lb.get("droplet_ids") or ())
    return [
        d["id"]
        for d in droplets.values()
        if tag in d["tags"] and (is_global(lb) or d["region"] == lb["region"])
    ]


def check_global_settings(
    lb_id: str, lb: Mapping[str, Any], balancers: Mapping[str, Mapping[str, Any]]
) -> None:
    """glb_settings and target_load_balancer_ids: only on a GLOBAL one, and well formed."""
    settings = lb.get("glb_settings")
    targets = list(lb.get("target_load_balancer_ids") or ())
    if not is_global(lb):
        if settings or targets:
            raise RuleBroken(
                "glb_settings and target_load_balancer_ids apply to GLOBAL load balancers only"
            )
        return
    for target in targets:
        if target == lb_id:
            raise RuleBroken("target_load_balancer_ids: a load balancer cannot target itself")
        if target not in balancers:
            raise RuleBroken(f"target_load_balancer_ids: no such load balancer {target}")
        if is_global(balancers[target]):
            raise RuleBroken(
                f"target_load_balancer_ids: {target} is GLOBAL; "
                "a global load balancer targets regional ones"
            )
    priorities = (settings or {}).get("region_priorities") or {}
    for slug, priority in priorities.items():
        if slug not in REGION_NAMES:
            raise RuleBroken(f"glb_settings.region_priorities: unknown region {slug!r}")
        if priority < 1:
            raise RuleBroken(
                f"glb_settings.region_priorities.{slug}: priority must be 1 or more, got {priority}"
            )
    threshold = (settings or {}).get("failover_threshold")
    if threshold is not None and not 0 <= threshold <= 100:
        raise RuleBroken(
            f"glb_settings.failover_threshold: must be a percentage from 0 to 100, got {threshold}"
        )


def components(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every component of an app spec: services, workers, jobs, static sites, functions."""
    return [c for kind in COMPONENT_KINDS for c in spec.get(kind) or ()]


def check_app_spec(spec: Mapping[str, Any]) -> None:
    """Component names unique across kinds; env keys unique in each envs list."""
    names = [c["name"] for c in components(spec)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuleBroken(f"spec: component name(s) {twice} used more than once")
    for where, envs in [("spec.envs", spec.get("envs"))] + [
        (f"spec component {c['name']!r} envs", c.get("envs")) for c in components(spec)
    ]:
        keys = [e["key"] for e in envs or ()]
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        if doubled:
            raise RuleBroken(f"{where}: key(s) {doubled} set more than once")
