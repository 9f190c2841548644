"""DigitalOcean's JSON shapes for sandbox objects: regions, droplets, load balancers, pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

# DigitalOcean's region slugs (the spec's region_slug enum) and their display names.
REGION_NAMES: dict[str, str] = {
    "ams1": "Amsterdam 1",
    "ams2": "Amsterdam 2",
    "ams3": "Amsterdam 3",
    "blr1": "Bangalore 1",
    "fra1": "Frankfurt 1",
    "lon1": "London 1",
    "nyc1": "New York 1",
    "nyc2": "New York 2",
    "nyc3": "New York 3",
    "sfo1": "San Francisco 1",
    "sfo2": "San Francisco 2",
    "sfo3": "San Francisco 3",
    "sgp1": "Singapore 1",
    "tor1": "Toronto 1",
    "syd1": "Sydney 1",
}
SIZE_SLUGS = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"]
REGION_FEATURES = ["private_networking", "backups", "ipv6", "metadata", "install_agent"]

# Settings a load balancer PUT resets to these defaults when the request leaves them out
# (DigitalOcean: "any attribute that is not provided will be reset to its default value").
LB_DEFAULTS: dict[str, Any] = {
    "size_unit": 1,
    "health_check": {
        "protocol": "http",
        "port": 80,
        "path": "/",
        "check_interval_seconds": 10,
        "response_timeout_seconds": 5,
        "healthy_threshold": 3,
        "unhealthy_threshold": 5,
    },
    "sticky_sessions": {"type": "none"},
    "redirect_http_to_https": False,
    "enable_proxy_protocol": False,
    "enable_backend_keepalive": False,
    "http_idle_timeout_seconds": 60,
    "disable_lets_encrypt_dns_records": False,
    "firewall": {"deny": [], "allow": []},
    "network": "EXTERNAL",
    "network_stack": "IPV4",
    "tls_cipher_policy": "DEFAULT",
}
# Writable settings kept as they are when a PUT leaves them out (they have no default).
LB_KEPT = ("name", "project_id", "vpc_uuid", "domains", "glb_settings")
LB_WRITABLE = (*LB_DEFAULTS, *LB_KEPT, "type", "forwarding_rules", "target_load_balancer_ids")


def region(slug: str) -> dict[str, Any]:
    """A region object as droplets and load balancers embed it."""
    return {
        "name": REGION_NAMES.get(slug, slug),
        "slug": slug,
        "features": list(REGION_FEATURES),
        "available": True,
        "sizes": list(SIZE_SLUGS),
    }


def droplet(stored: dict[str, Any]) -> dict[str, Any]:
    """The full droplet object for a stored droplet (id, name, region, tags, ips...)."""
    slug = stored["region"]
    return {
        "id": stored["id"],
        "name": stored["name"],
        "memory": 1024,
        "vcpus": 1,
        "disk": 25,
        "disk_info": [{"type": "local", "size": {"amount": 25, "unit": "gib"}}],
        "locked": False,
        "status": stored["status"],
        "kernel": None,
        "created_at": stored["created_at"],
        "features": ["private_networking"],
        "backup_ids": [],
        "next_backup_window": None,
        "snapshot_ids": [],
        "image": {
            "id": 63663980,
            "name": "22.04 (LTS) x64",
            "distribution": "Ubuntu",
            "slug": "ubuntu-22-04-x64",
            "public": True,
            "regions": sorted(REGION_NAMES),
            "created_at": "2022-04-21T00:00:00Z",
            "type": "base",
            "min_disk_size": 7,
            "size_gigabytes": 2.36,
            "description": "Ubuntu 22.04 x64",
            "tags": [],
            "status": "available",
            "error_message": "",
        },
        "volume_ids": [],
        "size": {
            "slug": stored["size_slug"],
            "memory": 1024,
            "vcpus": 1,
            "disk": 25,
            "transfer": 1.0,
            "price_monthly": 6.0,
            "price_hourly": 0.00893,
            "regions": sorted(REGION_NAMES),
            "available": True,
            "description": "Basic",
        },
        "size_slug": stored["size_slug"],
        "networks": {
            "v4": [
                {
                    "ip_address": stored["private_ip"],
                    "netmask": "255.255.0.0",
                    "gateway": "nil",
                    "type": "private",
                },
                {
                    "ip_address": stored["ip"],
                    "netmask": "255.255.255.0",
                    "gateway": stored["ip"].rsplit(".", 1)[0] + ".1",
                    "type": "public",
                },
            ],
            "v6": [],
        },
        "region": region(slug),
        "tags": list(stored["tags"]),
        "vpc_uuid": stored["vpc_uuid"],
    }


def load_balancer(stored: dict[str, Any], droplet_ids: list[int]) -> dict[str, Any]:
    """The full load balancer object; droplet_ids resolved by the caller (tag or list)."""
    body = {key: stored[key] for key in LB_WRITABLE if key in stored}
    body.update(
        {
            "id": stored["id"],
            "ip": stored["ip"],
            "status": stored["status"],
            "created_at": stored["created_at"],
            "region": region(stored["region"]),
            "tag": stored.get("tag") or "",
            "droplet_ids": droplet_ids,
            "size": "lb-small",
            "algorithm": "round_robin",
        }
    )
    return body


def record(stored: dict[str, Any]) -> dict[str, Any]:
    """A domain record with every field DigitalOcean returns (null where unused)."""
    keys = ("id", "type", "name", "data", "priority", "port", "ttl", "weight", "flags", "tag")
    return {key: stored.get(key) for key in keys}


def page(
    key: str,
    items: list[dict[str, Any]],
    page_number: int,
    per_page: int,
    url: str,
    query: dict[str, str],
) -> dict[str, Any]:
    """One page of items with DigitalOcean's links and meta; url is the list's absolute URL."""
    total = len(items)
    last = max(1, -(-total // per_page))
    start = (page_number - 1) * per_page
    pages: dict[str, str] = {}

    def link(number: int) -> str:
        return url + "?" + urlencode({**query, "page": number, "per_page": per_page})

    if page_number > 1:
        pages.update(first=link(1), prev=link(min(page_number - 1, last)))
    if page_number < last:
        pages.update(next=link(page_number + 1), last=link(last))
    return {
        key: items[start : start + per_page],
        "links": {"pages": pages} if pages else {},
        "meta": {"total": total},
    }
