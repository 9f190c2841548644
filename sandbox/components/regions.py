"""Component "regions": one moto process per region plus the replicator."""

from __future__ import annotations

from typing import Any

from sandbox.regions import Region
from sandbox.replicator import Replicator
from sandbox.stack import Running, Stack, component

DEFAULT_REGIONS = ("us-east-1", "eu-west-1")
DEFAULT_TABLES = ("wordpress_posts",)
CANARY = {"key": "health_check_id", "value": "ping"}


def region_names(stack: Stack) -> tuple[str, ...]:
    """The sandbox's regions in priority order."""
    return tuple(stack.options.get("regions") or DEFAULT_REGIONS)


@component("regions")
def start_regions(stack: Stack) -> None:
    """Start every region, seed its tables, and replicate between them."""
    tables = tuple(stack.options.get("tables") or DEFAULT_TABLES)
    regions: dict[str, Region] = {}
    for name in region_names(stack):
        region = Region(name, tables, CANARY["key"], CANARY["value"], stack.logs_dir)
        stack.on_close(region.close)
        region.start()
        regions[name] = region
        stack.register(Running(f"region:{name}", region.pid, region.url))
    delay = float(stack.options.get("replication_delay_ms", 500)) / 1000
    replicator = Replicator({n: r.url for n, r in regions.items()}, tables, delay)
    replicator.start()
    stack.on_close(replicator.stop)
    stack.extras["regions"] = regions
    stack.config_data.update(
        tables=list(tables),
        canary=dict(CANARY),
        regions=[{"name": n, "endpoint_url": r.url} for n, r in regions.items()],
    )


def chaos(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    """Apply one chaos operation to a region of a running stack."""
    regions: dict[str, Region] = stack.extras.get("regions", {})
    name = request.get("region")
    if name not in regions:
        raise ValueError(f"unknown region {name!r}; known: {', '.join(regions)}")
    region = regions[name]
    op = request.get("op")
    if op == "slow":
        delay = request.get("delay_ms")
        if not isinstance(delay, int) or delay < 0:
            raise ValueError("slow needs delay_ms, a non-negative integer")
        region.slow(delay)
    elif op in ("pause", "resume", "stop", "start", "fast"):
        getattr(region, op)()
    else:
        raise ValueError(f"unknown operation {op!r}; use pause|resume|stop|start|slow|fast")
    stack.register(Running(f"region:{name}", region.pid, region.url))
    return {"region": name, "op": op, "pid": region.pid}
