"""One prober per probe kind, all with one signature: prober(target) -> heartbeat times.

A prober makes its calls and raises on failure; the scheduler owns timing,
the deadline and success. Only the replication prober returns anything: the
written_at of each source region's heartbeat it found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddb_failover import heartbeat
from exporter.reasons import NOT_FOUND, THROTTLED, ProbeError


@dataclass(frozen=True)
class Target:
    """What a prober probes: one table in one region, through that region's client."""

    client: Any
    region: str
    table: str
    canary_key: str
    canary_value: str
    vantage: str
    peers: tuple[str, ...] = ()  # the other regions, whose heartbeats replicate here
    clock: Callable[[], float] = field(default=time.time)


Prober = Callable[[Target], Mapping[str, float]]


def probe_read(target: Target) -> Mapping[str, float]:
    """Strongly consistent read of the canary item; a missing item is not_found."""
    response = target.client.get_item(
        TableName=target.table,
        Key={target.canary_key: {"S": target.canary_value}},
        ConsistentRead=True,
    )
    if "Item" not in response:
        raise ProbeError(
            NOT_FOUND,
            f"canary item {target.canary_key}={target.canary_value} missing from "
            f"table {target.table} in {target.region}",
        )
    return {}


def probe_write(target: Target) -> Mapping[str, float]:
    """Write this region's heartbeat item."""
    item = heartbeat.item(target.canary_key, target.region, target.clock(), target.vantage)
    target.client.put_item(TableName=target.table, Item=item)
    return {}


def probe_replication(target: Target) -> Mapping[str, float]:
    """Read every peer's heartbeat here in one consistent batch; return source -> written_at."""
    if not target.peers:
        return {}
    keys = [{target.canary_key: {"S": heartbeat.key_value(peer)}} for peer in target.peers]
    response = target.client.batch_get_item(
        RequestItems={target.table: {"Keys": keys, "ConsistentRead": True}}
    )
    if response.get("UnprocessedKeys"):
        # DynamoDB leaves keys unprocessed when it is over capacity.
        raise ProbeError(THROTTLED, f"heartbeat batch read throttled in {target.region}")
    found: dict[str, float] = {}
    for raw in response.get("Responses", {}).get(target.table, []):
        source = raw.get(heartbeat.SOURCE, {}).get("S")
        at = heartbeat.written_at(raw)
        if source in target.peers and at is not None:
            found[source] = at
    return found


PROBERS: dict[str, Prober] = {
    "read": probe_read,
    "write": probe_write,
    "replication": probe_replication,
}
