"""Action do_load_balancer: a DigitalOcean load balancer's backends to the region's.

A load balancer targets either a list of droplet ids or a droplet tag, never
both, and the region's target says which. current() describes the load
balancer's target exactly as it is set: {"tag": T} when it targets a tag (new
droplets with the tag join by themselves), else {"droplet_ids": [sorted ids]}.
The change is one PUT of the load balancer's own settings with the new target,
so traffic moves in a single step. Before moving to a tag, the tag must name at
least one droplet: a load balancer with no backends is an outage, not a failover.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ddb_failover.config import LoadBalancerAction, LoadBalancerTarget
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.actions.inspection import INVALID_TARGET, MISSING, Limits, Problem
from responder.errors import PermanentError

# The load balancer's settings a PUT may carry back (the API's writable fields);
# read-only ones (id, ip, status, created_at...) and the target are left out.
WRITABLE_FIELDS = (
    "name",
    "project_id",
    "size_unit",
    "algorithm",
    "forwarding_rules",
    "health_check",
    "sticky_sessions",
    "redirect_http_to_https",
    "enable_proxy_protocol",
    "enable_backend_keepalive",
    "http_idle_timeout_seconds",
    "vpc_uuid",
    "disable_lets_encrypt_dns_records",
    "firewall",
    "network",
    "network_stack",
    "type",
    "domains",
    "glb_settings",
    "target_load_balancer_ids",
    "tls_cipher_policy",
)


def target_state(target: LoadBalancerTarget) -> Json:
    """A configured target in the shape current() reports."""
    if target.tag is not None:
        return {"tag": target.tag}
    return {"droplet_ids": sorted(target.droplet_ids or ())}


def describe(load_balancer: dict[str, Any]) -> Json:
    """What a load balancer targets: its tag when it has one, else its droplet ids."""
    tag = load_balancer.get("tag")
    if tag:
        return {"tag": tag}
    return {"droplet_ids": sorted(int(i) for i in load_balancer.get("droplet_ids") or ())}


def region_slug(resource: dict[str, Any]) -> str | None:
    """A load balancer's or droplet's region slug (the API nests it in a region object)."""
    region = resource.get("region")
    if isinstance(region, dict) and region.get("slug"):
        return str(region["slug"])
    return region if isinstance(region, str) and region else None


def update_body(load_balancer: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The PUT body: the load balancer's settings as they are, with the desired target."""
    body = {k: load_balancer[k] for k in WRITABLE_FIELDS if load_balancer.get(k) is not None}
    if "size_unit" not in body and load_balancer.get("size"):
        # size is the legacy spelling of size_unit; the API takes one or the other.
        body["size"] = load_balancer["size"]
    region = load_balancer.get("region")
    if isinstance(region, dict) and region.get("slug"):
        body["region"] = region["slug"]
    elif isinstance(region, str):
        body["region"] = region
    body.update(desired)
    return body


class LoadBalancer(Action):
    """Drives one load balancer's target (droplet ids or tag) to the region's."""

    type = "do_load_balancer"

    def __init__(self, config: LoadBalancerAction, client: DOClient) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client

    def _get(self) -> dict[str, Any]:
        body = self.client.call(
            f"{self.name}: get load balancer {self.config.load_balancer_id}",
            self.client.pydo.load_balancers.get,
            self.config.load_balancer_id,
        )
        load_balancer = (body or {}).get("load_balancer")
        if not isinstance(load_balancer, dict):
            raise PermanentError(f"{self.name}: response has no load_balancer")
        return load_balancer

    def current(self) -> Json:
        """{"tag": T} or {"droplet_ids": [...]}, as the load balancer is set now."""
        return describe(self._get())

    def desired(self, region: str) -> Json:
        """The region's target."""
        return target_state(self.config.values[region])

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the region's target names droplets that exist, in the load balancer's region."""
        load_balancer = self._get()
        if "tag" in desired:
            problems.extend(self._tag_problems(desired["tag"], region_slug(load_balancer)))
        else:
            problems.extend(self._droplet_problems(desired["droplet_ids"]))
        return describe(load_balancer)

    def _tag_problems(self, tag: str, where: str | None) -> list[Problem]:
        slugs = {region_slug(d) for d in self._tagged_droplets(tag)}
        if not slugs:
            return [Problem(INVALID_TARGET, f"{self.name}: no droplet has tag {tag!r}")]
        if where is not None and where not in slugs:
            elsewhere = ", ".join(sorted(str(s) for s in slugs))
            return [
                Problem(
                    INVALID_TARGET,
                    f"{self.name}: the droplets tagged {tag!r} are in {elsewhere}, none in the "
                    f"load balancer's region {where}",
                )
            ]
        return []

    def _droplet_problems(self, droplet_ids: list[int]) -> list[Problem]:
        missing = []
        for droplet_id in droplet_ids:
            try:
                self.client.call(
                    f"{self.name}: get droplet {droplet_id}",
                    self.client.pydo.droplets.get,
                    droplet_id,
                )
            except PermanentError as exc:
                if exc.kind != MISSING:
                    raise
                missing.append(str(droplet_id))
        if not missing:
            return []
        listed = ", ".join(missing)
        return [Problem(INVALID_TARGET, f"{self.name}: droplet(s) {listed} do not exist")]

    def apply(self, desired: Json, transition: Transition) -> None:
        """Check the tag names droplets, then PUT the load balancer with the new target."""
        if "tag" in desired:
            self._require_tagged_droplets(desired["tag"])
        load_balancer = self._get()
        self.client.call(
            f"{self.name}: update load balancer {self.config.load_balancer_id}",
            self.client.pydo.load_balancers.update,
            self.config.load_balancer_id,
            update_body(load_balancer, desired),
        )

    def _require_tagged_droplets(self, tag: str) -> None:
        if next(iter(self._tagged_droplets(tag)), None) is None:
            raise PermanentError(f"{self.name}: no droplet has tag {tag!r}; not moving traffic")

    def _tagged_droplets(self, tag: str) -> Iterator[dict[str, Any]]:
        return self.client.paginate(
            f"{self.name}: list droplets tagged {tag}",
            self.client.pydo.droplets.list,
            "droplets",
            tag_name=tag,
        )
