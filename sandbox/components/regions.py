"""Component "regions": one moto process per region plus the replicator.

With the stack option consistency "strong" the tables are multi-Region strongly
consistent (sandbox/quorum.py): three members, the regions and the option
witness, written synchronously. stack.json names the witness's process
"witness:<region>"; it is no region of the generated config, as a witness serves
no reads or writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.control import REGION_CHAOS, REGION_OPS, REPLICATION_OPS
from sandbox.quorum import StrongMembers, check_members, start_members
from sandbox.regions import Region
from sandbox.replicator import Replicator
from sandbox.stack import Running, Stack, component

DEFAULT_REGIONS = ("us-east-1", "eu-west-1")
DEFAULT_TABLES = ("wordpress_posts",)
CANARY = {"key": "health_check_id", "value": "ping"}
CONSISTENCIES = ("eventual", "strong")


def region_names(stack: Stack) -> tuple[str, ...]:
    """The sandbox's regions in priority order."""
    return tuple(stack.options.get("regions") or DEFAULT_REGIONS)


def strong(options: Mapping[str, Any]) -> bool:
    """True when the stack's tables are multi-Region strongly consistent."""
    return options.get("consistency") == "strong"


def check_options(options: Mapping[str, Any]) -> None:
    """ValueError naming the problem when the regions' options do not fit together."""
    consistency = options.get("consistency", "eventual")
    if consistency not in CONSISTENCIES:
        raise ValueError(f"unknown consistency {consistency!r}; use eventual or strong")
    witness = options.get("witness")
    if not strong(options):
        if witness is not None:
            raise ValueError("--witness needs --consistency strong")
        return
    check_members(options.get("regions") or DEFAULT_REGIONS, witness)


def _register(stack: Stack, region: Region) -> None:
    kind = "witness" if region.witness else "region"
    stack.register(Running(f"{kind}:{region.name}", region.pid, region.url))


@component("regions")
def start_regions(stack: Stack) -> None:
    """Start every region, seed its tables, and replicate between them."""
    tables = tuple(stack.options.get("tables") or DEFAULT_TABLES)
    names = region_names(stack)
    if strong(stack.options):
        members = start_members(names, stack.options.get("witness"), tables, CANARY, stack.logs_dir)
        stack.on_close(members.close)
        stack.extras["strong"] = members
        regions = members.regions
        replicator = members.replicator
        for region in members.all.values():
            _register(stack, region)
    else:
        regions = {}
        for name in names:
            region = Region(name, tables, CANARY["key"], CANARY["value"], stack.logs_dir)
            stack.on_close(region.close)
            region.start()
            regions[name] = region
            _register(stack, region)
        delay = float(stack.options.get("replication_delay_ms", 500)) / 1000
        replicator = Replicator({n: r.url for n, r in regions.items()}, tables, delay)
        replicator.start()
        stack.on_close(replicator.stop)
    stack.extras["regions"] = regions
    stack.extras["replicator"] = replicator
    stack.config_data.update(
        tables=list(tables),
        canary=dict(CANARY),
        regions=[{"name": n, "endpoint_url": r.url} for n, r in regions.items()],
    )
    if strong(stack.options):
        # The responder's view of the tables: RPO 0, and a witness that is never a target.
        mrsc = {"consistency": "strong", "witness": stack.options.get("witness")}
        stack.config_data.setdefault("responder", {}).update(
            {k: v for k, v in mrsc.items() if v is not None}
        )


def chaos(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    """Apply one chaos operation to a region (or the witness) of a running stack."""
    members: StrongMembers | None = stack.extras.get("strong")
    regions: dict[str, Region] = members.all if members else stack.extras.get("regions", {})
    name = request.get("region")
    if name not in regions:
        raise ValueError(f"unknown region {name!r}; known: {', '.join(regions)}")
    region = regions[name]
    op = request.get("op")
    result: dict[str, Any] = {}
    if op in REGION_OPS:
        _region_op(region, op, request)
        if op == "start" and members is not None and not region.witness:
            members.coordinator.rejoin(name)  # it restarted empty: it catches up first
        _register(stack, region)
    elif op in REPLICATION_OPS:
        result = _replication_op(stack.extras["replicator"], name, op, request)
    elif op == "replica-status":
        if members is None:
            raise ValueError("replica-status needs a stack started with --consistency strong")
        status = request.get("status")
        if not isinstance(status, str):
            raise ValueError("replica-status needs a STATUS, e.g. REGION_DISABLED")
        members.coordinator.set_status(name, status)
        result = {"status": status}
    else:
        raise ValueError(f"unknown operation {op!r}; use {'|'.join(REGION_CHAOS)}")
    return {"region": name, "op": op, "pid": region.pid, **result}


def _region_op(region: Region, op: str, request: dict[str, Any]) -> None:
    if op == "slow":
        delay = request.get("delay_ms")
        if not isinstance(delay, int) or delay < 0:
            raise ValueError("slow needs delay_ms, a non-negative integer")
        region.slow(delay)
    else:
        getattr(region, op)()


def _replication_op(
    replicator: Replicator, name: str, op: str, request: dict[str, Any]
) -> dict[str, Any]:
    if op == "replication-pause":
        replicator.pause_into(name)
    elif op == "replication-resume":
        replicator.resume_into(name)
    else:
        delay = request.get("delay_ms")
        if not isinstance(delay, int) or delay < 0:
            raise ValueError("replication-delay needs delay_ms, a non-negative integer")
        replicator.set_delay(delay / 1000, name)
    return {"replication_paused": replicator.paused(name)}
