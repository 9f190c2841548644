"""What a decision saw, kept with the transition it begins: the report's evidence.

When the notification came, the alerts behind the decision (labels, annotations and
generator URL as Alertmanager sent them), and the readiness readings the decision used.
Bounded, so a transition record stays small whatever a notification carries: at most
MAX_ALERTS alerts, MAX_PAIRS labels and annotations each, values cut to MAX_CHARS.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ddb_failover.consistency import EVENTUAL, RPO_ZERO, STRONG
from responder.decide.decision import Decision
from responder.model.alerts import LAST_WRITE_SUCCESS, Alert, format_time
from responder.state.records import Json

MAX_ALERTS = 5
MAX_PAIRS = 24
MAX_CHARS = 512
# The annotation listing the vantage points that see the region down (comma separated),
# computed by the alert rule's template; the report shows it as the evidence.
VANTAGES_DOWN = "vantages_down"
# Annotations kept first when an alert has more than MAX_PAIRS.
FIRST = (VANTAGES_DOWN, LAST_WRITE_SUCCESS, "runbook_url", "summary", "description")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _pairs(values: Mapping[str, str], first: Sequence[str] = ()) -> dict[str, str]:
    """At most MAX_PAIRS of values, the names in first before the others (sorted)."""
    names = [n for n in first if n in values] + sorted(n for n in values if n not in first)
    return {_cut(n): _cut(values[n]) for n in names[:MAX_PAIRS]}


def alert(found: Alert) -> Json:
    """One alert as the evidence keeps it."""
    return {
        "alertname": found.alertname,
        "fingerprint": found.fingerprint,
        "status": found.status,
        "starts_at": format_time(found.starts_at),
        "generator_url": _cut(found.generator_url),
        "labels": _pairs(found.labels),
        "annotations": _pairs(found.annotations, FIRST),
    }


@dataclass(frozen=True)
class Seen:
    """A request as it arrived: when, and the alerts of a notification (none for an operator)."""

    received_at: float
    alerts: tuple[Alert, ...] = ()
    alertmanager_url: str = ""
    practice: Json = None  # a practice run's leg: run, leg, home, target, hold (decide/practice)

    def evidence(self, decision: Decision, rpo_seconds: float) -> Json:
        """The evidence of the transition decision begins."""
        wanted = set(decision.cause.fingerprints)
        chosen = [r for r in decision.readiness if r.region == decision.to_region]
        strong = bool(chosen) and chosen[-1].strong
        behind = [a for a in self.alerts if a.fingerprint in wanted]
        return {
            "received_at": float(self.received_at),
            "alertmanager_url": _cut(self.alertmanager_url),
            "alerts": [alert(a) for a in behind[:MAX_ALERTS]],
            "alerts_total": len(behind),
            "reason": decision.reason,
            "dwell_overridden": decision.dwell_overridden,
            "rpo_seconds": float(rpo_seconds),
            "consistency": STRONG if strong else EVENTUAL,
            "rpo": RPO_ZERO if strong else None,  # the words the report shows for it
            "readiness": [r.to_json() for r in decision.readiness],
            **({"practice": self.practice} if self.practice is not None else {}),
        }
