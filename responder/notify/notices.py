"""What to tell people, and under which identity: the notices a change queues (pure, no I/O).

A notice's id is its event's identity, so the outbox keeps one per event however
often the write that reports it is repeated: a transition starts, completes or is
aborted once; it stalls once until an operator retries it; a blocked decision is
told once per set of alerts it answers, not at every Alertmanager repeat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlencode

from ddb_failover.config import Notify
from responder.state.outbox import Delivery, Notice
from responder.state.records import DecisionRecord, TransitionRecord

RUNBOOK = "https://github.com/ddb-failover/ddb-failover/blob/main/docs/runbook.md"
DASHBOARD = "d/ddb-failover-overview"
# Which runbook section says what to do after each event.
SECTIONS = {
    "started": "dynamodbregiondown",
    "awaiting_approval": "failoverawaitingapproval",
    "completed": "dynamodbregiondown",
    "stalled": "failoverstalled",
    "aborted": "failoversplitstate",
    "blocked": "failoverblocked",
}
# The event a finished transition reports, by its result.
FINISHED = {
    "completed": "completed",
    "aborted": "aborted",
    "declined": "aborted",
    "failed": "aborted",
    "blocked": "blocked",
}
WORDS = {
    "started": "started",
    "awaiting_approval": "is waiting for approval",
    "completed": "completed",
    "stalled": "is stalled",
    "aborted": "was aborted",
    "blocked": "was blocked",
}


class Announcer:
    """Makes the notices for a change, for the receivers that subscribed to its event."""

    def __init__(self, notify: Notify) -> None:
        self.notify = notify

    def _receivers(self, event: str) -> dict[str, Delivery]:
        return {r.name: Delivery() for r in self.notify.receivers if event in r.events}

    def transition(
        self, record: TransitionRecord, event: str, now: float, detail: str | None = None
    ) -> list[Notice]:
        """The notice of one event of a transition (none when no receiver wants it)."""
        receivers = self._receivers(event)
        if not receivers:
            return []
        identity = f"{record.id}:{event}"
        if event == "stalled":  # each stall once: its step, which way, and the retries so far
            retries = sum(1 for o in record.operations if o.op == "retry")
            step = record.attempts
            where = f"{step.action}:{int(step.rollback)}" if step is not None else "-"
            identity += f":{where}:{retries}"
        detail = detail or _practice(record, event)
        what = "dry run " if record.dry_run else ""
        summary = (
            f"ddb-failover: {what}{record.kind} {record.from_region} -> {record.to_region} "
            f"{WORDS[event]}"
        )
        data = {
            "event": event,
            "summary": summary + (f": {detail}" if detail else ""),
            "transition_id": record.id,
            "kind": record.kind,
            "from_region": record.from_region,
            "to_region": record.to_region,
            "result": record.result,
            "detail": detail,
            "links": self._links(event, record.started_at, now, record.id),
        }
        return [Notice(identity, event, now, record.id, data, receivers)]

    def started(self, record: TransitionRecord, now: float) -> list[Notice]:
        """started, or awaiting_approval while a person has to say yes first."""
        approval = record.approval
        if approval is not None and approval.waiting:
            detail = f"approve: ddb-responder approve {record.id}"
            return self.transition(record, "awaiting_approval", now, detail)
        return self.transition(record, "started", now)

    def finished(self, record: TransitionRecord, now: float) -> list[Notice]:
        """completed, aborted (declined and timed-out approvals too) or blocked."""
        return self.transition(record, FINISHED[record.result], now, record.error)

    def blocked(self, record: DecisionRecord, now: float) -> list[Notice]:
        """A blocked decision, once per set of alerts it answers (repeats are the same event)."""
        receivers = self._receivers("blocked")
        if record.kind != "blocked" or not receivers:
            return []
        keys = sorted(record.cause.keys)
        basis = "|".join([*keys, record.transition_kind or "", record.to_region or ""])
        identity = (
            f"blocked:{hashlib.sha256(basis.encode()).hexdigest()[:24]}" if keys else record.id
        )
        data = {
            "event": "blocked",
            "summary": f"ddb-failover: {record.transition_kind or 'a transition'} "
            f"{'from ' + record.region + ' ' if record.region else ''}was blocked: "
            f"{record.reason}",
            "decision_id": record.id,
            "kind": record.transition_kind,
            "from_region": record.region,
            "to_region": record.to_region,
            "detail": record.reason,
            "links": self._links("blocked", record.at, now, None),
        }
        return [Notice(identity, "blocked", now, record.id, data, receivers)]

    def _links(
        self, event: str, since: float, now: float, transition_id: str | None
    ) -> dict[str, str]:
        links = {"runbook": f"{RUNBOOK}#{SECTIONS[event]}"}
        base = self.notify.responder_url
        if base:
            links["status"] = f"{base.rstrip('/')}/"
            if transition_id:
                links["report"] = f"{base.rstrip('/')}/transitions/{transition_id}"
        if self.notify.grafana_url:
            window = urlencode({"from": int((since - 600) * 1000), "to": int((now + 600) * 1000)})
            links["grafana"] = f"{self.notify.grafana_url.rstrip('/')}/{DASHBOARD}?{window}"
        return links


def _practice(record: TransitionRecord, event: str) -> str | None:
    """A practice run's leg says which leg, and the way home how the run went."""
    found = record.evidence.get("practice") if isinstance(record.evidence, dict) else None
    if record.kind != "practice" or not isinstance(found, dict):
        return None
    leg = f"practice run {found.get('run')}, leg {found.get('leg')} of 2"
    if found.get("leg") == 2 and event == "completed":
        return f"{leg}: {found.get('outcome')} ({found.get('why')})"
    return leg


def events_of(notices: Sequence[Notice]) -> list[str]:
    """The events of notices, in order (for logs and tests)."""
    return [n.event for n in notices]
