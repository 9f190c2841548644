"""The notification outbox's records: a notice is written in the same write as the change it
reports, then delivered to each of its receivers, with retries, by whoever claims it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
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

    @classmethod
    def from_store(cls, data: Json) -> Delivery:
        """Rebuild from the stored form (asdict)."""
        return cls(**data)


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
        return asdict(self)

    @classmethod
    def from_store(cls, data: Json) -> Notice:
        """Rebuild from to_store() output."""
        deliveries = {k: Delivery.from_store(v) for k, v in data["deliveries"].items()}
        return cls(**{**data, "deliveries": deliveries})


# What a store write reports, made from the record it writes (a new transition has its id
# only inside the write).
Announce = Callable[[Any], Sequence[Notice]]


def announced(announce: Announce | None, record: Any) -> Sequence[Notice]:
    """The notices announce makes of record; none without an announce."""
    return announce(record) if announce is not None else ()
