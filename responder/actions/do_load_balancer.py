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
outage, not a failover.
"""

from __future__ import annotations

from ddb_failover.config import LoadBalancerAction, LoadBalancerTarget
from responder.actions import _load_balancers as lbs
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.errors import PermanentError


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

    def desired(self, region: str) -> Json:
        """The region's target."""
        return target_state(self.config.values[region])

    def apply(self, desired: Json, transition: Transition) -> None:
        """Check the region and the tag's droplets, then PUT the load balancer's new target."""
        load_balancer = lbs.get(self.client, self.name, self.config.load_balancer_id)
        region = lbs.region_slug(load_balancer)
        if self.config.region is not None and region != self.config.region:
            raise PermanentError(
                f"{self.name}: load balancer {self.config.load_balancer_id} is in {region}, "
                f"not in {self.config.region} as configured"
            )
        if "tag" in desired:
            self._require_tagged_droplets(desired["tag"], region)
        body = lbs.update_body(load_balancer, desired)
        lbs.put(self.client, self.name, self.config.load_balancer_id, body)

    def _require_tagged_droplets(self, tag: str, region: str | None) -> None:
        droplets = self.client.paginate(
            f"{self.name}: list droplets tagged {tag}",
            self.client.pydo.droplets.list,
            "droplets",
            tag_name=tag,
        )
        slugs = [(d.get("region") or {}).get("slug") for d in droplets]
        if not slugs:
            raise PermanentError(f"{self.name}: no droplet has tag {tag!r}; not moving traffic")
        if region is not None and region not in slugs:
            elsewhere = ", ".join(sorted({str(s) for s in slugs}))
            raise PermanentError(
                f"{self.name}: the droplets tagged {tag!r} are in {elsewhere}, none in the "
                f"load balancer's region {region}; not moving traffic"
            )
