"""Reading a DigitalOcean load balancer and writing it back whole, for the two LB actions.

DigitalOcean's PUT takes a full representation and resets what it leaves out, so every
change is: read the load balancer, send its writable settings back with the change.
"""

from __future__ import annotations

from typing import Any

from responder.actions.do_client import DOClient
from responder.model.errors import PermanentError

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


def region_slug(load_balancer: dict[str, Any]) -> str | None:
    """A load balancer's or droplet's region slug (the API nests it in a region object)."""
    region = load_balancer.get("region")
    if isinstance(region, dict) and region.get("slug"):
        return str(region["slug"])
    return region if isinstance(region, str) and region else None


def target(load_balancer: dict[str, Any]) -> dict[str, Any]:
    """What a load balancer targets: its tag when it has one, else its droplet ids."""
    tag = load_balancer.get("tag")
    if tag:
        return {"tag": tag}
    return {"droplet_ids": sorted(int(i) for i in load_balancer.get("droplet_ids") or ())}


def update_body(load_balancer: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The PUT body: the load balancer's settings and target as they are, with changes."""
    body = {k: load_balancer[k] for k in WRITABLE_FIELDS if load_balancer.get(k) is not None}
    if "size_unit" not in body and load_balancer.get("size"):
        # size is the legacy spelling of size_unit; the API takes one or the other.
        body["size"] = load_balancer["size"]
    slug = region_slug(load_balancer)
    if slug is not None:
        # The description requires a region in every PUT, a global load balancer's too.
        body["region"] = slug
    if "tag" not in changes and "droplet_ids" not in changes:
        body.update(target(load_balancer))
    body.update(changes)
    return body


def get(client: DOClient, action: str, load_balancer_id: str) -> dict[str, Any]:
    """The load balancer as the API has it now; PermanentError when the answer lacks it."""
    body = client.call(
        f"{action}: get load balancer {load_balancer_id}",
        client.pydo.load_balancers.get,
        load_balancer_id,
    )
    load_balancer = (body or {}).get("load_balancer")
    if not isinstance(load_balancer, dict):
        raise PermanentError(f"{action}: response has no load_balancer")
    return load_balancer


def put(client: DOClient, action: str, load_balancer_id: str, body: dict[str, Any]) -> None:
    """PUT the whole load balancer."""
    client.call(
        f"{action}: update load balancer {load_balancer_id}",
        client.pydo.load_balancers.update,
        load_balancer_id,
        body,
    )
