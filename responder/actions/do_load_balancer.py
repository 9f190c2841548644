"""Action do_load_balancer: a regional load balancer's backends to the region's, in its region.

This is blue/green within one DigitalOcean region. A regional load balancer balances only
droplets of its own region: DigitalOcean refuses others by id (422) and, by tag, picks up
only the tagged droplets of its region. So one load balancer cannot move traffic to another
region; fail regions over with do_dns_record between per-region load balancers, or with
do_global_load_balancer.

A load balancer targets either a list of droplet ids or a droplet tag, never both, and the
region's target says which. current() describes the target exactly as it is set:
{"tag": T} when it targets a tag (new droplets with the tag join by themselves), else
{"droplet_ids": [sorted ids]}. The change is one PUT of the load balancer's own settings
with the new target, so traffic moves in a single step. Before it: with `region`
configured, the load balancer must be in that region; and a tag must name at least one
droplet in the load balancer's region, since a load balancer with no backends is an
outage, not a failover. The plan's inspection checks the same, and that every droplet id
exists in the load balancer's region.
"""

from __future__ import annotations

from typing import Any

from ddb_failover.config import LoadBalancerAction, LoadBalancerTarget
from responder.actions import _load_balancers as lbs
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.actions.inspection import INVALID_TARGET, MISSING, Limits, Problem
from responder.model.errors import PermanentError


def target_state(target: LoadBalancerTarget) -> Json:
    """A configured target in the shape current() reports."""
    if target.tag is not None:
        return {"tag": target.tag}
    return {"droplet_ids": sorted(target.droplet_ids or ())}


class LoadBalancer(Action):
    """Drives one load balancer's target (droplet ids or tag) to the region's."""

    type = "do_load_balancer"

    def __init__(self, config: LoadBalancerAction, client: DOClient) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client

    def current(self) -> Json:
        """{"tag": T} or {"droplet_ids": [...]}, as the load balancer is set now."""
        return lbs.target(lbs.get(self.client, self.name, self.config.load_balancer_id))

    def digitalocean_calls(self) -> int:
        """Read, read again (and list the tag's droplets: one page) and PUT, read back."""
        tagged = any(target.tag is not None for target in self.config.values.values())
        return 5 if tagged else 4

    def desired(self, region: str) -> Json:
        """The region's target."""
        return target_state(self.config.values[region])

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the load balancer's region, and droplets of the target in that region."""
        load_balancer = lbs.get(self.client, self.name, self.config.load_balancer_id)
        where = lbs.region_slug(load_balancer)
        misplaced = self._region_problem(where)
        if misplaced is not None:
            problems.append(Problem(INVALID_TARGET, misplaced))
        if "tag" in desired:
            problem = self._tag_problem(desired["tag"], where)
        else:
            problem = self._droplet_ids_problem(desired["droplet_ids"], where)
        if problem is not None:
            problems.append(Problem(INVALID_TARGET, problem))
        return lbs.target(load_balancer)

    def apply(self, desired: Json, transition: Transition) -> None:
        """Check the region and the tag's droplets, then PUT the load balancer's new target."""
        load_balancer = lbs.get(self.client, self.name, self.config.load_balancer_id)
        region = lbs.region_slug(load_balancer)
        misplaced = self._region_problem(region)
        if misplaced is not None:
            raise PermanentError(misplaced)
        if "tag" in desired:
            problem = self._tag_problem(desired["tag"], region)
            if problem is not None:
                raise PermanentError(f"{problem}; not moving traffic")
        body = lbs.update_body(load_balancer, desired)
        lbs.put(self.client, self.name, self.config.load_balancer_id, body)

    def _region_problem(self, region: str | None) -> str | None:
        """Why the load balancer is not where the config says it is; None when it is."""
        if self.config.region is None or region == self.config.region:
            return None
        return (
            f"{self.name}: load balancer {self.config.load_balancer_id} is in {region}, "
            f"not in {self.config.region} as configured"
        )

    def _tag_problem(self, tag: str, region: str | None) -> str | None:
        """Why the tag cannot be the load balancer's backends; None when it can."""
        droplets = self.client.paginate(
            f"{self.name}: list droplets tagged {tag}",
            self.client.pydo.droplets.list,
            "droplets",
            tag_name=tag,
        )
        slugs = {lbs.region_slug(d) for d in droplets}
        if not slugs:
            return f"{self.name}: no droplet has tag {tag!r}"
        if region is not None and region not in slugs:
            elsewhere = ", ".join(sorted(str(s) for s in slugs))
            return (
                f"{self.name}: the droplets tagged {tag!r} are in {elsewhere}, none in the "
                f"load balancer's region {region}"
            )
        return None

    def _droplet_ids_problem(self, droplet_ids: list[int], region: str | None) -> str | None:
        """Which droplets do not exist, or are not in the load balancer's region (read-only)."""
        missing, elsewhere = [], []
        for droplet_id in droplet_ids:
            droplet = self._droplet(droplet_id)
            if droplet is None:
                missing.append(str(droplet_id))
            elif region is not None and lbs.region_slug(droplet) != region:
                elsewhere.append(f"{droplet_id} ({lbs.region_slug(droplet)})")
        reasons = []
        if missing:
            reasons.append(f"droplet(s) {', '.join(missing)} do not exist")
        if elsewhere:
            reasons.append(
                f"droplet(s) {', '.join(elsewhere)} are not in the load balancer's region {region}"
            )
        return f"{self.name}: {'; '.join(reasons)}" if reasons else None

    def _droplet(self, droplet_id: int) -> dict[str, Any] | None:
        """The droplet, or None when DigitalOcean says it does not exist."""
        try:
            body = self.client.call(
                f"{self.name}: get droplet {droplet_id}",
                self.client.pydo.droplets.get,
                droplet_id,
            )
        except PermanentError as exc:
            if exc.kind != MISSING:
                raise
            return None
        droplet = (body or {}).get("droplet")
        if not isinstance(droplet, dict):
            raise PermanentError(f"{self.name}: response has no droplet {droplet_id}")
        return droplet
