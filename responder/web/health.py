"""The region cards at the top of the status page: role, DynamoDB health, readiness, alerts.

Pure: the regions, the status, the plan and what Prometheus answered (or why it did
not) in; one card per region out. The exporter's series give read and write per
vantage point, the last success and the replication lag; ALERTS gives the region's
firing alerts; dynamodb_table_info names a witness region, which gets a card too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.web.promql import Sample

Json = Any
SUCCESS = "dynamodb_probe_success"
LAST_SUCCESS = "dynamodb_probe_last_success_timestamp_seconds"
LAG = "dynamodb_replication_lag_seconds"
TABLE_INFO = "dynamodb_table_info"
ALERTS = "ALERTS"
# One query for all the cards: one round trip per page.
EXPR = (
    '{__name__=~"' + "|".join((SUCCESS, LAST_SUCCESS, LAG, TABLE_INFO)) + '"}'
    ' or ALERTS{alertstate="firing"}'
)
NOT_CONFIGURED = "responder.prometheus_url is not set"


@dataclass
class Probe:
    """Read and write, as one vantage point sees a region: True, False or None (no series)."""

    vantage: str
    read: bool | None = None
    write: bool | None = None


@dataclass
class Card:
    """One region's card."""

    region: str
    role: str  # active, standby or witness
    primary: bool
    ready: bool | None  # the plan's verdict for moving there; None: not planned
    plan_problems: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    last_success: float | None = None  # Unix seconds
    lag_seconds: float | None = None
    alerts: list[str] = field(default_factory=list)
    no_data: str | None = None  # why there is no health to show

    @property
    def healthy(self) -> bool | None:
        """Every probe of every vantage succeeded; None when none was seen."""
        seen = [v for p in self.probes for v in (p.read, p.write) if v is not None]
        return all(seen) if seen else None


def witness(samples: Iterable[Sample]) -> str | None:
    """The witness region dynamodb_table_info names, if any."""
    for s in samples:
        name = s.labels.get("witness_region")
        if s.labels.get("__name__") == TABLE_INFO and name:
            return name
    return None


def _plan_verdict(plan: Json, region: str) -> tuple[bool | None, list[str]]:
    planned = (plan.get("regions") or {}).get(region)
    if not planned:
        return None, []
    problems = [
        f"{a.get('action')}: {p.get('message')}"
        for a in planned.get("actions", ())
        for p in a.get("problems", ())
        if p.get("severity") != "warning"
    ]
    return planned.get("ready"), problems


def _health(card: Card, samples: Sequence[Sample]) -> None:
    probes: dict[str, Probe] = {}
    for s in samples:
        labels = s.labels
        name = labels.get("__name__")
        if name == ALERTS:
            if labels.get("region") == card.region:
                card.alerts.append(labels.get("alertname", "?"))
            continue
        if labels.get("region") != card.region:
            continue
        if name == SUCCESS and labels.get("operation") in ("read", "write"):
            probe = probes.setdefault(labels.get("vantage", "?"), Probe(labels.get("vantage", "?")))
            ok = s.value == 1
            old = getattr(probe, labels["operation"])
            setattr(probe, labels["operation"], ok if old is None else old and ok)
        elif name == LAST_SUCCESS:
            card.last_success = max(card.last_success or 0.0, s.value)
        elif name == LAG:
            card.lag_seconds = max(card.lag_seconds or 0.0, s.value)
    card.probes = [probes[v] for v in sorted(probes)]
    card.alerts = sorted(set(card.alerts))
    if not card.probes and card.role != "witness":
        card.no_data = f"no data: no exporter series for {card.region} in Prometheus"


def cards(
    regions: Sequence[str],
    primary: str,
    active: str,
    plan: Json,
    samples: Sequence[Sample] | None,
    unavailable: str | None = None,
    witnesses: Sequence[str] = (),
) -> list[Card]:
    """One card per region (and one per witness region), in priority order.

    samples None: Prometheus gave nothing, for the reason unavailable. Witnesses are the
    config's (the plan's consistency block) and any dynamodb_table_info names.
    """
    names = list(regions)
    extra = set(witnesses)
    seen = witness(samples or ())
    if seen is not None:
        extra.add(seen)
    names += sorted(w for w in extra if w not in names)
    out = []
    for name in names:
        role = "active" if name == active else "witness" if name in extra else "standby"
        ready, problems = _plan_verdict(plan, name)
        card = Card(name, role, name == primary, ready, problems)
        if samples is None:
            card.no_data = f"no data: {unavailable or NOT_CONFIGURED}"
        else:
            _health(card, samples)
        out.append(card)
    return out
