"""The rules the audit key adds to `audit verify`. Pure: events and keys in, problems out.

- An event names its key by key_id; its hash must be the HMAC under that key, which
  verify holds (responder.audit.key_file, or one of previous_key_files).
- Events without a key_id (plain sha256) come from a chain begun before keys, and only
  before its first keyed event, which pins them (it covers the hash of the one before).
  Plain events after a keyed one, or a head that is not keyed: re-chained without the key.
- The key changes only at a key_rotated event that names the key before and after.
- A prune keeps retain_days: its cutoff is at least that long before the prune.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from responder.model.alerts import format_time
from responder.records.problem import Problem, at_event
from responder.state import chain
from responder.state.chain import Event
from responder.state.keys import AuditKeys

DAY = 86400.0


@dataclass(frozen=True)
class Seals:
    """Checks an event's hash under the key it names."""

    keys: AuditKeys

    def intact(self, event: Event, seq: int | None = None) -> bool:
        """True when event's hash is right for its content (as if at seq) under its key."""
        if event.key_id is None:
            return event.intact(None, seq)
        key = self.keys.find(event.key_id)
        return key is not None and event.intact(key, seq)

    def why(self, event: Event) -> str:
        """Why an event whose hash does not check is broken."""
        if event.key_id is not None and self.keys.find(event.key_id) is None:
            return (
                f"it is sealed with key {event.key_id}, neither key_file nor a previous_key_file"
                " (re-chained under another key?)"
            )
        return "its hash does not match its content"


def key_problems(events: Sequence[Event]) -> tuple[list[Problem], list[str]]:
    """Where the keyed chain starts, and plain events where keyed ones must be."""
    problems: list[Problem] = []
    notes: list[str] = []
    first = next((e for e in events if e.key_id is not None), None)
    if first is None:
        if events:
            detail = _UNKEYED + ", nor is any event after it"
            problems.append(at_event(events[0].seq, "edited", detail))
        return problems, notes
    if first.seq > events[0].seq:
        notes.append(
            f"events #{events[0].seq}..#{first.seq - 1} predate the audit key (plain sha256);"
            f" the keyed chain starts at #{first.seq} ({format_time(first.at)}), which pins them"
        )
    previous: Event | None = None
    for event in events:
        if previous is not None and previous.key_id is not None and event.key_id is None:
            problems.append(at_event(event.seq, "edited", _UNKEYED + " after a keyed event"))
        elif previous is not None and event.key_id != previous.key_id:
            problems.extend(_rotation(previous, event))
        previous = event
    return problems, notes


_UNKEYED = "it is not sealed with the audit key (plain sha256: re-chained without the key?)"


def _rotation(previous: Event, event: Event) -> list[Problem]:
    """A key change must be a key_rotated event naming both keys."""
    body = event.body if event.type == chain.KEY_ROTATED else {}
    if body.get("from") == previous.key_id and body.get("to") == event.key_id:
        return []
    detail = (
        f"it is sealed with key {event.key_id} after #{previous.seq} with {previous.key_id},"
        " and is no key_rotated event naming both"
    )
    return [at_event(event.seq, "edited", detail)]


def retention_problems(events: Sequence[Event], retain_days: float) -> list[Problem]:
    """Every prune in the chain must keep retain_days of history."""
    problems = []
    for event in events:
        if event.type != chain.PRUNED:
            continue
        cutoff = event.body["anchor"].get("pruned_before")
        if cutoff is None or float(cutoff) <= event.at - retain_days * DAY:
            continue
        kept = (event.at - float(cutoff)) / DAY
        detail = (
            f"its cutoff {format_time(float(cutoff))} reaches into the retention period:"
            f" {kept:.2f} day(s) before the prune, retain_days is {retain_days:g}"
        )
        problems.append(
            Problem("removed", f"the prune at audit event #{event.seq}", detail, event.seq)
        )
    return problems
