"""Random fault schedules for `bench chaos`: a seed in, a list of events out (pure, no I/O).

A schedule is what one seed does to the shared stack: how many responder replicas run
and on which store, the approval policy, and a couple of dozen events with the pause
before each. The same seed always makes the same schedule, so a failing seed replays
with BENCH_CHAOS_SEEDS=SEED. Live details the generator cannot know (the id of the
transition waiting for approval, the time a region went down) are filled in when the
event is applied.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

REGION_DOWN = "DynamoDBRegionDown"
FAILBACK_READY = "DynamoDBFailbackReady"
# How a notification reaches the webhook (issue 22: duplicate, concurrent, out of order).
DELIVERIES = ("once", "duplicate", "concurrent", "out_of_order")
DO_STATUSES = (500, 503, 429, 401)
APPLY = ("before", "after", "never")
SINKS = ("pagerduty", "chat")
OPERATOR_OPS = (
    "freeze",
    "unfreeze",
    "retry",
    "skip",
    "abort",
    "abort_rollback",
    "approve",
    "approve",
    "decline",
    "failover",
    "repair",
)
# One in REPLICA_SHARE schedules runs two replicas on the DynamoDB control table.
REPLICA_SHARE = 4
EVENTS = (14, 22)  # events per schedule, inclusive range
# The pause before each event: long enough for a transition to move between faults, short
# enough that 300 schedules fit in an hour (half of a schedule's time went into these).
GAP_SECONDS = (0.02, 0.4)


@dataclass(frozen=True)
class Event:
    """One thing the schedule does, and how long it waits before doing it."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    gap: float = 0.0

    def describe(self) -> str:
        """A short line for replay output: kind and arguments."""
        inner = " ".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.kind}({inner})" if inner else self.kind


@dataclass(frozen=True)
class Schedule:
    """One seed's setup and events."""

    seed: int
    replicas: int  # 1: SQLite store; 2: two replicas on the DynamoDB control table
    approval: str  # responder.policy.approval
    events: tuple[Event, ...]

    @property
    def backend(self) -> str:
        """The state store the schedule's responders use."""
        return "dynamodb" if self.replicas > 1 else "sqlite"

    def describe(self) -> str:
        """Setup and events, one line."""
        head = f"seed {self.seed}: {self.replicas} replica(s) on {self.backend}, "
        head += f"approval {self.approval}"
        return head + "; " + ", ".join(e.describe() for e in self.events)


# Regions named by role, resolved when the event is applied (the generator cannot know
# which region is active by then): the active one, one the schedule broke, or the primary.
ACTIVE, BROKEN = "@active", "@down"


class _World:
    """What the generator believes it has broken so far, to pick sensible next events."""

    def __init__(self, regions: Sequence[str], replicas: int) -> None:
        self.regions = tuple(regions)
        self.down = 0  # regions broken and not mended yet
        self.dead: set[int] = set()  # replicas killed and not restarted yet
        self.replicas = replicas


def _region_event(rng: random.Random, world: _World) -> Event:
    if world.down and (world.down >= len(world.regions) - 1 or rng.random() < 0.4):
        world.down -= 1
        return Event("region", {"op": "mend"})
    world.down += 1
    region = ACTIVE if rng.random() < 0.6 else rng.choice(world.regions)
    return Event("region", {"region": region, "op": "stop" if rng.random() < 0.15 else "pause"})


def _alert_event(rng: random.Random, world: _World) -> Event:
    if rng.random() < 0.75:
        name = REGION_DOWN
        roll = rng.random()
        region = ACTIVE if roll < 0.5 else BROKEN if roll < 0.8 else rng.choice(world.regions)
    else:
        name, region = FAILBACK_READY, world.regions[0]
    status = "resolved" if rng.random() < 0.2 else "firing"
    delivery = rng.choice(DELIVERIES)
    return Event("alert", {"name": name, "region": region, "status": status, "delivery": delivery})


def _do_fault_event(rng: random.Random) -> Event:
    if rng.random() < 0.3:
        # Past the client's timeout (the harness sets the responder's DigitalOcean timeout).
        args: dict[str, Any] = {"delay": True, "apply": rng.choice(APPLY), "count": 1}
    else:
        args = {"status": rng.choice(DO_STATUSES)}
        if rng.random() < 0.5:
            args["count"] = rng.randint(1, 3)
        else:
            args["seconds"] = round(rng.uniform(0.5, 3.0), 2)
    args["method"] = rng.choice((None, "GET", "PUT", "PATCH"))
    return Event("do_fault", {k: v for k, v in args.items() if v is not None})


def _process_event(rng: random.Random, world: _World) -> Event:
    replica = rng.randrange(world.replicas)
    if replica in world.dead:
        world.dead.discard(replica)
        return Event("restart_replica", {"replica": replica})
    if rng.random() < 0.6:
        return Event("kill_worker", {"replica": replica})
    world.dead.add(replica)
    return Event("kill_replica", {"replica": replica})


def _operator_event(rng: random.Random, world: _World, actions: Sequence[str]) -> Event:
    op = rng.choice(OPERATOR_OPS)
    args: dict[str, Any] = {"op": op}
    if op == "skip" or (op == "repair" and rng.random() < 0.5):
        args["action"] = rng.choice(tuple(actions))  # a repair of one action, or of all
    if op == "failover":
        args["region"] = rng.choice(world.regions)  # the active one too: a forced re-run
    return Event("operator", args)


def _one(rng: random.Random, world: _World, actions: Sequence[str]) -> Event:
    roll = rng.random()
    if roll < 0.16:
        return _region_event(rng, world)
    if roll < 0.50:
        return _alert_event(rng, world)
    if roll < 0.63:
        return _do_fault_event(rng)
    if roll < 0.71:
        return _process_event(rng, world)
    if roll < 0.76:
        return Event("store_outage", {"seconds": round(rng.uniform(0.5, 3.0), 2)})
    if roll < 0.79:
        sink = rng.choice(SINKS)
        return Event("sink_fault", {"sink": sink, "status": rng.choice((429, 500)), "count": 2})
    return _operator_event(rng, world, actions)


def make(seed: int, regions: Sequence[str], actions: Sequence[str]) -> Schedule:
    """The schedule of seed over these regions (primary first) and configured actions."""
    rng = random.Random(seed)
    replicas = 2 if seed % REPLICA_SHARE == 0 else 1
    approval = rng.choice(("none", "none", "failover", "all"))
    world = _World(regions, replicas)
    events: list[Event] = []
    for _ in range(rng.randint(*EVENTS)):
        event = _one(rng, world, actions)
        gap = round(rng.uniform(*GAP_SECONDS), 3)
        events.append(Event(event.kind, event.args, gap))
    return Schedule(seed, replicas, approval, tuple(events))
