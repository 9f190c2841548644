"""The audit chain: every change to the history as an event hashed over the previous one.

Each write that records a decision, a transition, a step, attempts, an operator's
command, a finish, a freeze or a prune also appends one Event, in the same
write (a SQLite transaction; the same conditional UpdateItem on DynamoDB's current
item). An event holds the record's content as canonical JSON, and

    hash = HMAC-SHA256(key, canonical {seq, at, type, subject, body, prev, key_id})

under the key kept outside the store (responder.state.keys), where prev is the previous
event's hash and key_id the key's fingerprint: one chain per store, gapless by seq. Events
written before keys existed have no key_id and hash = sha256(canonical {seq, ..., prev}). Records
that change (a transition begins, gains steps, finishes) are covered because every
change is an event; responder.records.audit replays the events and compares every record with
what they say. A decision's repeat count and last_at are tallies kept outside the
chain, so a repeated notification costs one small write and no append (records.repeat_key).
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import Any

from responder.model.alerts import format_time
from responder.state.keys import AuditKey
from responder.state.records import (
    Approval,
    Attempts,
    DecisionRecord,
    Freeze,
    Json,
    Operation,
    StepRecord,
    TransitionRecord,
)

VERSION = 1
GENESIS_PREV = "0" * 64
# Event types; issue-14-style additions (approvals) add their own.
GENESIS, DECIDED = "genesis", "decision"
BEGUN, JOURNALED, ATTEMPTED = "transition_begun", "step_journaled", "attempts_recorded"
OPERATED, FINISHED = "operator_command", "transition_finished"
FROZEN, UNFROZEN, PRUNED = "frozen", "unfrozen", "pruned"
KEY_ROTATED = "key_rotated"


def canonical(value: Any) -> bytes:
    """The one byte form hashed: sorted keys, no spaces, UTF-8, no NaN."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def digest(
    seq: int,
    at: float,
    type: str,
    subject: str,
    body: Json,
    prev: str,
    key: AuditKey | None = None,
) -> str:
    """The hash of one event: under key, or plain sha256 (events from before keys)."""
    content = {"seq": seq, "at": float(at), "type": type, "subject": subject, "body": body}
    if key is None:
        return hashlib.sha256(canonical({**content, "prev": prev})).hexdigest()
    return key.mac(canonical({**content, "prev": prev, "key_id": key.id}))


@dataclass(frozen=True)
class Pending:
    """An event to append, before its place in the chain is known."""

    type: str
    subject: str
    body: Json


@dataclass(frozen=True)
class Head:
    """The newest event's place: its seq and hash (0 and GENESIS_PREV before any)."""

    seq: int = 0
    hash: str = GENESIS_PREV


@dataclass(frozen=True)
class Event:
    """One sealed event of the chain."""

    seq: int
    at: float
    type: str
    subject: str
    body: Json
    prev: str
    hash: str
    key_id: str | None = None  # the key it is sealed with; None: plain sha256, from before keys

    def intact(self, key: AuditKey | None, seq: int | None = None) -> bool:
        """True when the hash matches the content under key (as if at seq, when given)."""
        place = self.seq if seq is None else seq
        hashed = digest(place, self.at, self.type, self.subject, self.body, self.prev, key)
        return hmac.compare_digest(hashed, self.hash)

    @property
    def head(self) -> Head:
        """This event as the chain's head."""
        return Head(self.seq, self.hash)

    def to_json(self) -> Json:
        """The stored and exported form (time both as Unix seconds and RFC 3339)."""
        return {
            "seq": self.seq,
            "at": float(self.at),
            "time": format_time(self.at),
            "type": self.type,
            "subject": self.subject,
            "body": self.body,
            "prev": self.prev,
            "hash": self.hash,
            **({} if self.key_id is None else {"key_id": self.key_id}),
        }

    @classmethod
    def from_json(cls, data: Json) -> Event:
        """Rebuild from to_json() output."""
        key_id = data.get("key_id")
        return cls(
            int(data["seq"]),
            float(data["at"]),
            str(data["type"]),
            str(data["subject"]),
            data["body"],
            str(data["prev"]),
            str(data["hash"]),
            None if key_id is None else str(key_id),
        )


def seal(head: Head, at: float, pending: Pending, key: AuditKey | None = None) -> Event:
    """pending as the event after head, sealed with key (None: plain sha256, for tests)."""
    seq = head.seq + 1
    body = pending.body
    hashed = digest(seq, at, pending.type, pending.subject, body, head.hash, key)
    key_id = None if key is None else key.id
    return Event(seq, float(at), pending.type, pending.subject, body, head.hash, hashed, key_id)


@dataclass(frozen=True)
class Anchor:
    """Where the chain starts: nothing before genesis, or the last event a prune removed."""

    seq: int
    hash: str
    pruned_before: float | None  # the last prune's cutoff; None before any
    genesis_at: float  # when the chain began (records older than it predate it)
    fresh: bool  # the store held no history when the chain began

    @property
    def head(self) -> Head:
        """The anchor as the head the first remaining event follows."""
        return Head(self.seq, self.hash)

    def to_json(self) -> Json:
        """The stored form."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "pruned_before": _f(self.pruned_before),
            "genesis_at": float(self.genesis_at),
            "fresh": self.fresh,
        }

    @classmethod
    def from_json(cls, data: Json) -> Anchor:
        """Rebuild from to_json() output."""
        return cls(
            int(data["seq"]),
            str(data["hash"]),
            _f(data.get("pruned_before")),
            float(data["genesis_at"]),
            bool(data["fresh"]),
        )


@dataclass(frozen=True)
class AuditLog:
    """What `audit verify` checks: the chain as stored and every record it covers."""

    head: Head  # the head as the store records it
    anchor: Anchor
    events: tuple[Event, ...]  # after the anchor, by seq
    decisions: tuple[DecisionRecord, ...]
    transitions: tuple[TransitionRecord, ...]  # every stored copy (DynamoDB keeps two)
    live: Live | None = None  # the state outside the records, as stored


@dataclass(frozen=True)
class Live:
    """The live state a store holds beside its records: what `status` shows."""

    active_region: str
    freeze: Freeze | None
    in_progress: str | None  # the id of the transition in progress


def _f(value: float | None) -> float | None:
    return None if value is None else float(value)


def decision_content(record: DecisionRecord) -> Json:
    """A decision's content as recorded (its repeat tally, count and last_at, apart)."""
    return {
        "id": record.id,
        "at": float(record.at),
        "kind": record.kind,
        "reason": record.reason,
        "cause": record.cause.to_json(),
        "region": record.region,
        "to_region": record.to_region,
        "transition_kind": record.transition_kind,
    }


def step_content(step: StepRecord) -> Json:
    """A journaled step's content, as stored."""
    return {
        "action": step.action,
        "result": step.result,
        "before": step.before,
        "after": step.after,
        "error": step.error,
        "at": float(step.at),
        "attempts": int(step.attempts),
        "fencing_token": step.fencing_token,
        "rollback": bool(step.rollback),
        "started_at": _f(step.started_at),
        "failures": [f.to_store() for f in step.failures],
    }


def transition_content(record: TransitionRecord) -> Json:
    """What a transition is from its start: never changes afterwards."""
    return {
        "id": record.id,
        "kind": record.kind,
        "from_region": record.from_region,
        "to_region": record.to_region,
        "started_at": float(record.started_at),
        "cause": record.cause.to_json(),
        "data_at_risk_seconds": _f(record.data_at_risk_seconds),
        "dry_run": bool(record.dry_run),
        "deadline_at": _f(record.deadline_at),
        "evidence": record.evidence,
    }


def transition_state(record: TransitionRecord) -> Json:
    """What changes while a transition runs (steps apart)."""
    return {
        "result": record.result,
        "finished_at": _f(record.finished_at),
        "error": record.error,
        "attempts": attempts_content(record.attempts),
        "operations": [o.to_store() for o in record.operations],
        "approval": None if record.approval is None else record.approval.to_store(),
    }


def attempts_content(attempts: Attempts | None) -> Json:
    """The attempts of the step in trouble, as stored."""
    return None if attempts is None else attempts.to_store()


def live(active_region: str, freeze: Freeze | None) -> Json:
    """What the store holds outside its records, as a checkpoint event states it."""
    return {"active_region": active_region, "frozen": None if freeze is None else freeze.to_json()}


def genesis(fresh: bool, state: Json | None = None) -> Pending:
    """The first event of a store's chain; fresh when it held no history yet."""
    body: Json = {"version": VERSION, "fresh": fresh}
    if state is not None:
        body["live"] = state
    return Pending(GENESIS, "", body)


def key_rotated(previous: str | None, key: AuditKey, state: Json) -> Pending:
    """New events are sealed with key from here on (previous: None, a chain from before keys)."""
    return Pending(KEY_ROTATED, "", {"from": previous, "to": key.id, "live": state})


def decided(record: DecisionRecord) -> Pending:
    """A new decision (a freeze it caused is an event of its own)."""
    return Pending(DECIDED, record.id, {"decision": decision_content(record)})


def begun(record: TransitionRecord) -> Pending:
    """A transition recorded, before anything outside changes (waiting for approval, maybe)."""
    body: Json = {"transition": transition_content(record)}
    if record.approval is not None:
        body["approval"] = record.approval.to_store()
    return Pending(BEGUN, record.id, body)


def journaled(transition_id: str, step: StepRecord) -> Pending:
    """A step's outcome (which also clears the attempts)."""
    return Pending(JOURNALED, transition_id, {"step": step_content(step)})


def attempted(transition_id: str, attempts: Attempts) -> Pending:
    """How the step in trouble is going."""
    return Pending(ATTEMPTED, transition_id, {"attempts": attempts_content(attempts)})


def operated(
    transition_id: str,
    operation: Operation | None,
    attempts: Attempts | None,
    step: StepRecord | None,
    approval: Approval | None = None,
) -> Pending:
    """An operator's command (or an approval's change), with what it set and journaled."""
    body = {
        "operation": None if operation is None else operation.to_store(),
        "attempts": attempts_content(attempts),
        "step": None if step is None else step_content(step),
        "approval": None if approval is None else approval.to_store(),
    }
    return Pending(OPERATED, transition_id, body)


def finished(record: TransitionRecord) -> Pending:
    """A transition's end."""
    body = {"result": record.result, "finished_at": _f(record.finished_at), "error": record.error}
    return Pending(FINISHED, record.id, body)


def frozen(freeze: Freeze) -> Pending:
    """Automatic transitions stopped."""
    return Pending(FROZEN, "", {"freeze": freeze.to_json()})


def unfrozen(by: str, reason: str, at: float) -> Pending:
    """Automatic transitions resumed."""
    return Pending(UNFROZEN, "", {"by": by, "reason": reason, "at": float(at)})


def pruned(records: int, anchor: Anchor, state: Json | None = None) -> Pending:
    """History older than anchor.pruned_before forgotten; the chain now starts after anchor."""
    body: Json = {"records": records, "anchor": anchor.to_json()}
    if state is not None:
        body["live"] = state
    return Pending(PRUNED, "", body)


def start(at: float, fresh: bool) -> Anchor:
    """The anchor of a new chain: nothing before it."""
    return Anchor(0, GENESIS_PREV, None, float(at), fresh)


def prune_anchor(events: Iterable[Event], anchor: Anchor, before: float, kept: Set[str]) -> Anchor:
    """The anchor after pruning before: the end of the longest run of events older than
    before that no kept record needs (the same place when none can go).

    events are those after the current anchor, by seq; kept holds the ids of the
    decisions and transitions that stay.
    """
    last: Event | None = None
    for event in events:
        if event.at >= before or (event.subject and event.subject in kept):
            break
        last = event
    place = last.head if last is not None else anchor.head
    return Anchor(place.seq, place.hash, float(before), anchor.genesis_at, anchor.fresh)
