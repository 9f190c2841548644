"""The audit chain on the DynamoDB control table, with single-item conditional writes only.

The chain's head lives on the current item: `chain_seq`, `chain_hash`, and the newest
event whole (`chain_last`). A chained write is the change's own UpdateItem on the current
item plus those three attributes, conditioned on `chain_seq` still being the one read:
two replicas appending at once cannot both win, and the loser reads the head again and
retries. The event is stored in that same write; afterwards it is copied to its own item
("audit", seq) and, for a decision, to the decision's item. Those copies are idempotent,
and before the head moves past an event whose copy is missing (its writer died between
the two writes), the next writer makes the copy: nothing the chain says is ever lost.
The notices a change queues travel the same way: listed on the current item with the
event (`chain_notices`), then put in the outbox before the event's copy, so a writer
that dies in between leaves them for the next one.
No transactions: multi-region strongly consistent tables do not have them.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from responder.state import chain
from responder.state.dynamodb import items
from responder.state.dynamodb.items import Item, n, s
from responder.state.keys import AuditKey, AuditKeys
from responder.state.outbox import Notice
from responder.state.records import Cause, DecisionRecord, Json
from responder.state.store import StoreUnavailable

AUDIT, DECISION, TRANSITION, REPEAT, OUTBOX = (
    "audit",
    "decision",
    "transition",
    "repeat",
    "outbox",
)
CURRENT_KEY = {"pk": {"S": "state"}, "sk": {"S": "current"}}
CHAIN_SET = (
    "#chain_seq = :chain_seq_next, #chain_hash = :chain_hash_next, #chain_last = :chain_last,"
    " #chain_notices = :chain_notices"
)
CHAIN_HELD = "#chain_seq = :chain_seq"
# Writers racing for the head: each round one wins, so this bounds the busiest burst.
CHAIN_ATTEMPTS = 32
RETRY_PAUSE_SECONDS = 0.01
# Reading a moving chain for verify: each try re-reads when the head moved meanwhile.
READ_ATTEMPTS = 5


class ConditionFailed(Exception):
    """A conditional write found its condition false."""


@dataclass(frozen=True)
class Write:
    """One chained write: the change to the current item and the event it appends."""

    update: str
    values: Mapping[str, Any]
    condition: str | None
    event: chain.Pending
    names: Mapping[str, str] | None = None
    at: float | None = None
    notices: tuple[Notice, ...] = ()


def seed(at: float, key: AuditKey | None, primary: str) -> Item:
    """The chain attributes of a new current item: genesis of a fresh store."""
    return _started(at, True, key, chain.live(primary, None))


def _started(at: float, fresh: bool, key: AuditKey | None, state: Json) -> Item:
    anchor = chain.start(at, fresh)
    first = chain.seal(anchor.head, at, chain.genesis(fresh, state), key)
    return {
        "chain_seq": n(first.seq),
        "chain_hash": s(first.hash),
        "chain_last": items.chain_values(first)[":chain_last"],
        "chain_anchor": s(json.dumps(anchor.to_json())),
    }


def decision_from(content: Mapping[str, Any]) -> DecisionRecord:
    """A decision from its content in a `decision` event."""
    return DecisionRecord(
        id=content["id"],
        at=float(content["at"]),
        kind=content["kind"],
        reason=content["reason"],
        cause=Cause.from_json(content["cause"]),
        region=content.get("region"),
        to_region=content.get("to_region"),
        transition_kind=content.get("transition_kind"),
    )


class ChainedTable(ABC):
    """Chained writes and the audit reads, for the DynamoDB store (which supplies the calls)."""

    table: str
    where: str
    _clock: Callable[[], float]
    _keys: AuditKeys | None  # None: events sealed with plain sha256 (tests of other things)
    _stored = 0  # the newest event this process knows is copied to its own item

    @property
    def _key(self) -> AuditKey | None:
        return None if self._keys is None else self._keys.current

    @abstractmethod
    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One API call; ConditionFailed for a false condition, else StoreUnavailable."""

    @abstractmethod
    def _current(self) -> Item:
        """The current item (written first when the table is new)."""

    def _update(
        self,
        update: str,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
        extra_names: Mapping[str, str] | None = None,
    ) -> None:
        """One conditional UpdateItem on the current item; ConditionFailed when refused."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": CURRENT_KEY,
            "UpdateExpression": update,
            "ExpressionAttributeNames": {
                **items.names(update, condition or ""),
                **(extra_names or {}),
            },
        }
        if values:
            kwargs["ExpressionAttributeValues"] = dict(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        self._call("update_item", **kwargs)

    def _chained(
        self, build: Callable[[Item], Write | None], item: Item | None = None
    ) -> chain.Event | None:
        """Apply build(current item)'s write with its event appended to the chain.

        build is called again on the fresh item when another writer moved the head first
        (None: nothing to write); ConditionFailed when the write's own condition is false.
        """
        for _ in range(CHAIN_ATTEMPTS):
            item = self._chain_ready(item if item is not None else self._current())
            head = items.head(item)
            assert head is not None
            rotation = self._rotation(item)
            write = rotation or build(item)
            if write is None:
                return None
            at = self._clock() if write.at is None else write.at
            event = chain.seal(head, at, write.event, self._key)
            condition = f"({write.condition}) AND {CHAIN_HELD}" if write.condition else CHAIN_HELD
            try:
                self._update(
                    items.with_sets(write.update, CHAIN_SET),
                    {
                        **write.values,
                        ":chain_seq": n(head.seq),
                        **items.chain_values(event),
                        ":chain_notices": s(json.dumps([x.to_store() for x in write.notices])),
                    },
                    condition,
                    write.names,
                )
            except ConditionFailed:
                item = self._current()
                if items.head(item) != head:
                    # Another writer appended first: a moment's jitter keeps a burst of
                    # writers from retrying in lockstep.
                    time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS))
                    continue
                raise
            self._enqueue(write.notices)
            self._copy(event)
            if rotation is not None:
                item = None  # now the change itself, after the new head
                continue
            return event
        raise StoreUnavailable(f"control table {self.where}: the audit chain is too busy")

    def _rotation(self, item: Item) -> Write | None:
        """A key_rotated event first, when the head is not sealed with the current key."""
        last = items.last_event(item)
        key = self._key
        if key is None or last is None or last.key_id == key.id:
            return None
        return Write("", {}, None, chain.key_rotated(last.key_id, key, items.live(item)))

    def _chain_ready(self, item: Item) -> Item:
        """item, once its chain has begun and its newest event has its own item."""
        if items.head(item) is None:  # a table written before the chain existed
            with contextlib.suppress(ConditionFailed):
                started = _started(self._clock(), False, self._key, items.live(item))
                self._update(
                    "SET " + ", ".join(f"#{k} = :{k}" for k in started),
                    {f":{k}": v for k, v in started.items()},
                    "attribute_not_exists(#chain_seq)",
                )
            item = self._current()
        last = items.last_event(item)
        if last is not None and last.seq > self._stored:
            key = {"pk": s(AUDIT), "sk": s(sort_key(last.seq))}
            answer = self._call(
                "get_item",
                TableName=self.table,
                Key=key,
                ConsistentRead=True,
                ProjectionExpression="pk",
            )
            if "Item" not in answer:
                self._enqueue(items.chain_notices(item))
                self._copy(last)
            self._stored = max(self._stored, last.seq)
        return item

    def _enqueue(self, notices: tuple[Notice, ...]) -> None:
        """Put notices in the outbox; one already there (delivered, maybe) stays as it is."""
        for notice in notices:
            with contextlib.suppress(ConditionFailed):
                self._call(
                    "put_item",
                    TableName=self.table,
                    Item=items.notice_item(notice),
                    ConditionExpression="attribute_not_exists(sk)",
                )

    def _copy(self, event: chain.Event) -> None:
        """Store event as its own item, its decision first: idempotent."""
        if event.type == chain.DECIDED:
            record = decision_from(event.body["decision"])
            with contextlib.suppress(ConditionFailed):
                self._call(
                    "put_item",
                    TableName=self.table,
                    Item={"pk": s(DECISION), "sk": s(record.id), **items.decision_item(record)},
                    ConditionExpression="attribute_not_exists(pk)",
                )
        item = {"pk": s(AUDIT), "sk": s(sort_key(event.seq)), **items.event_item(event)}
        self._call("put_item", TableName=self.table, Item=item)
        self._stored = max(self._stored, event.seq)

    def _query(
        self, partition: str, after: str | None = None, project: str | None = None
    ) -> Iterator[Item]:
        """Every item of a partition in sort-key order: after a sort key, and only the
        attributes in project (#name for a reserved word), when given."""
        start: Item | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk" + (" AND sk > :after" if after else ""),
                "ExpressionAttributeValues": {
                    ":pk": s(partition),
                    **({":after": s(after)} if after else {}),
                },
                "ConsistentRead": True,
            }
            if project is not None:
                kwargs["ProjectionExpression"] = project
                kwargs["ExpressionAttributeNames"] = items.names(project)
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._call("query", **kwargs)
            yield from answer.get("Items", [])
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return

    def _events(self, item: Item, after: int) -> tuple[list[chain.Event], chain.Event | None]:
        """The chain after seq `after`: the event items, and the newest from the current item;
        and that newest event when it has no item yet (else None)."""
        events = [items.event(i) for i in self._query(AUDIT, sort_key(after))]
        last = items.last_event(item)
        if last is not None and (not events or events[-1].seq < last.seq):
            events.append(last)  # its writer has not copied it yet, or died before it did
            return events, last
        return events, None

    def audit_log(self) -> chain.AuditLog:
        """The chain and the records, read only; read again while the head moves meanwhile."""
        for _ in range(READ_ATTEMPTS):
            item = self._current()
            head = items.head(item) or chain.Head()
            anchor = items.anchor(item) or chain.start(self._clock(), fresh=False)
            events, uncopied = self._events(item, anchor.seq)
            decisions = {d.id: d for d in map(items.decision, self._query(DECISION))}
            _overlay(decisions, uncopied)
            transitions = [items.transition(t) for t in self._query(TRANSITION)]
            if "t" in item:
                transitions.append(items.transition(item["t"]["M"]))
            if (items.head(self._current()) or chain.Head()) == head:
                return chain.AuditLog(
                    head,
                    anchor,
                    tuple(events),
                    tuple(decisions.values()),
                    tuple(transitions),
                    items.live_state(item),
                )
        raise StoreUnavailable(f"control table {self.where}: the audit chain kept moving")

    def audit_events(self, since: float = 0.0) -> Iterator[chain.Event]:
        item = self._current()
        anchor = items.anchor(item)
        events, _ = self._events(item, anchor.seq if anchor is not None else 0)
        return iter([e for e in events if e.at >= since])


def _overlay(decisions: dict[str, DecisionRecord], last: chain.Event | None) -> None:
    """The newest event's decision as its copy will be, when its writer has not copied the
    event yet (it copies the decision first): the current item holds it already."""
    if last is not None and last.type == chain.DECIDED and last.subject not in decisions:
        decisions[last.subject] = decision_from(last.body["decision"])


def sort_key(seq: int) -> str:
    """Events sort by seq as strings."""
    return f"{seq:016d}"
