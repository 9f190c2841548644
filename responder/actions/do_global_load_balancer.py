"""Action do_global_load_balancer: a Global Load Balancer's preferred region to the region's.

A DigitalOcean Global Load Balancer (type GLOBAL) sends traffic to its targets (regional
load balancers or droplets) in the region with the lowest glb_settings.region_priorities
number that is healthy enough (failover_threshold), with no DNS change and so no TTL to
wait out. The action makes the configured DigitalOcean region for the target region the
first: priority 1, the others keeping their order behind it (2, 3, ...). current() is
{"first_region": slug}: the region with the strictly lowest priority, None when there is
none (no priorities, or a tie). failover_threshold and everything else are kept as they
are. A region missing from the priorities is a PermanentError: the configuration and the
load balancer disagree, and guessing where traffic should go needs a person.
"""

from __future__ import annotations

from typing import Any

from ddb_failover.config import GlobalLoadBalancerAction
from responder.actions import _load_balancers as lbs
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.actions.inspection import INVALID_TARGET, Limits, Problem
from responder.model.errors import PermanentError


def first_region(priorities: dict[str, int]) -> str | None:
    """The region with the strictly lowest priority number, or None."""
    if not priorities:
        return None
    lowest = min(priorities.values())
    firsts = [slug for slug, priority in priorities.items() if priority == lowest]
    return firsts[0] if len(firsts) == 1 else None


def put_first(priorities: dict[str, int], slug: str) -> dict[str, int]:
    """slug at priority 1, the others behind it in their present order (ties by name)."""
    others = sorted((p, s) for s, p in priorities.items() if s != slug)
    return {slug: 1, **{s: n for n, (_, s) in enumerate(others, start=2)}}


class GlobalLoadBalancer(Action):
    """Drives one Global Load Balancer's first region to the configured one for the region."""

    type = "do_global_load_balancer"

    def __init__(self, config: GlobalLoadBalancerAction, client: DOClient) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client

    def _get(self) -> tuple[dict[str, Any], dict[str, int]]:
        """The load balancer and its region priorities; PermanentError unless it is GLOBAL."""
        load_balancer = lbs.get(self.client, self.name, self.config.load_balancer_id)
        if load_balancer.get("type") != "GLOBAL":
            raise PermanentError(
                f"{self.name}: load balancer {self.config.load_balancer_id} is "
                f"{load_balancer.get('type') or 'REGIONAL'}, not GLOBAL; "
                "use do_load_balancer for a regional one",
                INVALID_TARGET,
            )
        settings = load_balancer.get("glb_settings") or {}
        return load_balancer, dict(settings.get("region_priorities") or {})

    def current(self) -> Json:
        """{"first_region": slug or None}, as the priorities are now."""
        return {"first_region": first_region(self._get()[1])}

    def digitalocean_calls(self) -> int:
        """Read, read again and PUT, read back."""
        return 4

    def desired(self, region: str) -> Json:
        """The DigitalOcean region configured for region, first."""
        return {"first_region": self.config.values[region]}

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: it is GLOBAL, and the region's DigitalOcean region has a priority on it."""
        _, priorities = self._get()
        unknown = self._unknown_region(desired["first_region"], priorities)
        if unknown is not None:
            problems.append(Problem(INVALID_TARGET, unknown))
        return {"first_region": first_region(priorities)}

    def apply(self, desired: Json, transition: Transition) -> None:
        """PUT the load balancer back with the desired region first in its priorities."""
        load_balancer, priorities = self._get()
        slug = desired["first_region"]
        unknown = self._unknown_region(slug, priorities)
        if unknown is not None:
            raise PermanentError(f"{unknown}; not moving traffic")
        settings = {
            **(load_balancer.get("glb_settings") or {}),
            "region_priorities": put_first(priorities, slug),
        }
        body = lbs.update_body(load_balancer, {"glb_settings": settings})
        lbs.put(self.client, self.name, self.config.load_balancer_id, body)

    def _unknown_region(self, slug: str, priorities: dict[str, int]) -> str | None:
        """Why slug cannot be put first (it has no priority); None when it can."""
        if slug in priorities:
            return None
        known = ", ".join(sorted(priorities)) or "none"
        return (
            f"{self.name}: {slug} has no priority on load balancer "
            f"{self.config.load_balancer_id} (its regions: {known})"
        )
