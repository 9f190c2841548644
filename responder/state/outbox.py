"""The notification outbox's records: a notice is written in the same write as the change it
reports, then delivered to each of its receivers, with retries, by whoever claims it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Json = Any
DeliveryState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Delivery:
    """How one notice is going at one receiver."""

    state: DeliveryState = "pending"
    attempts: int = 0
    next_at: float = 0.0
    error: str | None = None
    done_at: float | None = None

    def to_store(self) -> Json:
        """The stored form."""
        return {
            "state": self.state,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "error": self.error,
            "done_at": self.done_at,
        }

    @classmethod
    def from_store(cls, data: Json) -> Delivery:
        """Rebuild from to_store() output."""
        return cls(
            state=data["state"],
            attempts=int(data["attempts"]),
            next_at=float(data["next_at"]),
            error=data.get("error"),
            done_at=data.get("done_at"),
        )


@dataclass(frozen=True)
class Notice:
    """One event to tell people about, once: its id is the receivers' idempotency key."""

    id: str
    event: str  # started, awaiting_approval, completed, stalled, aborted, blocked
    at: float
    subject: str  # the transition's or decision's id
    data: Json  # what the message says (kind, regions, reason, links)
    deliveries: dict[str, Delivery]  # by receiver name
    claimed_by: str | None = None
    claim_until: float = 0.0

    def due(self, now: float) -> list[str]:
        """Receivers still to be tried now."""
        return [
            name for name, d in self.deliveries.items() if d.state == "pending" and d.next_at <= now
        ]

    def with_delivery(self, receiver: str, delivery: Delivery) -> Notice:
        """This notice with one receiver's delivery replaced."""
        return replace(self, deliveries={**self.deliveries, receiver: delivery})

    def to_store(self) -> Json:
        """The stored form (deliveries and claim included)."""
        return {
            "id": self.id,
            "event": self.event,
            "at": self.at,
            "subject": self.subject,
            "data": self.data,
            "deliveries": {k: v.to_store() for k, v in self.deliveries.items()},
            "claimed_by": self.claimed_by,
            "claim_until": self.claim_until,
        }

    @classmethod
    def from_store(cls, data: Json) -> Notice:
        """Rebuild from to_store() output."""
        return cls(
            id=data["id"],
            event=data["event"],
            at=float(data["at"]),
            subject=data["subject"],
            data=data["data"],
            deliveries={k: Delivery.from_store(v) for k, v in data["deliveries"].items()},
            claimed_by=data.get("claimed_by"),
            claim_until=float(data.get("claim_until") or 0.0),
        )


# What a store write reports, made from the record it writes (a new transition has its id
# only inside the write).
Announce = Callable[[Any], Sequence[Notice]]


def announced(announce: Announce | None, record: Any) -> Sequence[Notice]:
    """The notices announce makes of record; none without an announce."""
    return announce(record) if announce is not None else ()
