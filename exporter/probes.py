"""One prober per probe kind, all with one signature: prober(target) -> heartbeat times.

A prober makes its calls and raises on failure; the scheduler owns timing,
the deadline and success. Only the replication prober returns anything: the
written_at of each source region's heartbeat it found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ddb_failover import heartbeat
from ddb_failover.logs import kv
from exporter.reasons import NOT_FOUND, THROTTLED, WRITE_CONFLICT, ProbeError, error_code

log = logging.getLogger("exporter.probes")


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
    """Write this region's heartbeat item.

    ReplicatedWriteConflictException (a multi-Region strongly consistent table: another
    region was writing the same item) is no failure: the region answered, after
    consulting its peers. It is safe to retry, and retried once so the heartbeat
    usually lands; a second conflict still counts as success.
    """
    for attempt in range(2):
        item = heartbeat.item(target.canary_key, target.region, target.clock(), target.vantage)
        try:
            target.client.put_item(TableName=target.table, Item=item)
            return {}
        except ClientError as exc:
            if error_code(exc) != WRITE_CONFLICT:
                raise
            log.debug(kv(msg="write conflict", region=target.region, attempt=attempt + 1))
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
