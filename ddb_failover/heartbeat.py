"""Where heartbeats live in a protected table, shared by exporter, sandbox and responder."""

from __future__ import annotations

from typing import Any

PREFIX = "__ddb_failover_heartbeat__#"
WRITTEN_AT = "written_at"
SOURCE = "source_region"


def key_value(source_region: str) -> str:
    """The canary-key value of the heartbeat item written in source_region."""
    return PREFIX + source_region


def item(key_name: str, source_region: str, written_at: float, vantage: str) -> dict[str, Any]:
    """A heartbeat item in DynamoDB's low-level attribute-value form."""
    return {
        key_name: {"S": key_value(source_region)},
        WRITTEN_AT: {"N": f"{written_at:.6f}"},
        SOURCE: {"S": source_region},
        "vantage": {"S": vantage},
    }


def written_at(raw_item: dict[str, Any] | None) -> float | None:
    """The Unix time a heartbeat item was written at, or None when absent or malformed."""
    if not raw_item:
        return None
    try:
        return float(raw_item[WRITTEN_AT]["N"])
    except (KeyError, TypeError, ValueError):
        return None
