"""The shared state store: one DynamoDB control table, so several responder replicas can run.

Everything a guard needs lives in one item, ("state", "current"): the active
region and version, the freeze, the reconciler lease (holder, fencing token,
expiry) and the last transition with its journaled steps. Every change is one
conditional UpdateItem on it, so DynamoDB itself settles races:

- begin_transition() requires the version the decision was made on;
- journal_step() and finish_transition() require the caller's fencing token to
  be the live lease's, in the same write that appends the step;
- the lease changes hands only when the condition sees it free or expired,
  and its token only grows.

No transactions are used. Finished transitions are archived as ("transition",
ID) items (IDs sort by sequence number), decisions as ("decision", ID), and
notification notices as ("outbox", ID). Every change to the history also appends
to the audit chain in the same write (responder.state.dynamodb.chained_table); the notices
a change queues travel in that write too, and are copied to their own items before
the chain moves on, as its events are.

The client makes one attempt with short timeouts: a black-holed control table
turns into StoreUnavailable (webhook 503, Alertmanager retries) within seconds.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from ddb_failover.config import DynamoDBState
from responder.model.alerts import format_time
from responder.state import chain
from responder.state.dynamodb import chained_table, items
from responder.state.dynamodb.chained_table import (
    AUDIT,
    CURRENT_KEY,
    DECISION,
    OUTBOX,
    REPEAT,
    TRANSITION,
    ConditionFailed,
    Write,
)
from responder.state.dynamodb.client import client_for
from responder.state.dynamodb.decisions import DynamoDBDecisions
from responder.state.dynamodb.items import Item, n, s
from responder.state.dynamodb.lease import DynamoDBLease
from responder.state.dynamodb.outbox import DynamoDBOutbox
from responder.state.dynamodb.table import RECENT_WINDOW
from responder.state.dynamodb.transitions import DynamoDBTransitions
from responder.state.keys import AuditKeys
from responder.state.phases import PhaseInputs, desired_region, phase
from responder.state.records import Freeze, Json, State
from responder.state.repeats import RepeatTally, anew
from responder.state.store import StateStore

BATCH = 25  # BatchWriteItem's limit


class DynamoDBStore(
    DynamoDBTransitions, DynamoDBDecisions, DynamoDBLease, DynamoDBOutbox, StateStore
):
    """StateStore on a DynamoDB control table; primary is the active region of a new store.

    Construction does no I/O: a replica starts (and answers 503) while the table is unreachable.
    """

    def __init__(
        self,
        state: DynamoDBState,
        primary: str,
        clock: Callable[[], float] = time.time,
        client: Any = None,
        keys: AuditKeys | None = None,
    ) -> None:
        self.table = state.table
        self._keys = keys
        self.where = f"{state.table} in {state.region}" + (
            f" at {state.endpoint_url}" if state.endpoint_url else ""
        )
        self._primary = primary
        self._clock = clock
        self._client = client if client is not None else client_for(state)
        self._tally = RepeatTally(self._write_repeats, anew(self.record_decision))

    def _state(self, item: Item) -> State:
        last = items.transition(item["t"]["M"]) if "t" in item else None
        running = last if last is not None and last.in_progress else None
        active = item["active_region"]["S"]
        now = self._clock()
        starts = [float(v["N"]) for v in item.get("recent_starts", {}).get("L", [])]
        frozen = items.freeze(item)
        return State(
            active_region=active,
            desired_region=desired_region(active, last),
            phase=phase(
                PhaseInputs(
                    frozen=frozen,
                    in_progress=running,
                    last_transition=last,
                    last_blocked_at=items.opt_n(item, "last_blocked_at"),
                    last_unfrozen_at=items.opt_n(item, "unfrozen_at"),
                    now=now,
                )
            ),
            frozen=frozen,
            in_progress=running,
            last_transition=last,
            last_completed_at=items.opt_n(item, "last_completed_at"),
            recent_starts=tuple(reversed([x for x in starts if x > now - RECENT_WINDOW])),
            version=items.integer(item, "version"),
        )

    def state(self) -> State:
        return self._state(self._current())

    def freeze(self, by: str, reason: str, automatic: bool = False) -> State:
        self._current()
        self._freeze(Freeze(by, reason, self._clock(), automatic))
        return self.state()

    def unfreeze(self, by: str, reason: str) -> State:
        now = self._clock()
        write = Write(
            "SET #unfrozen_at = :now, #version = #version + :one"
            " REMOVE #frozen_by, #frozen_reason, #frozen_at, #frozen_auto",
            {":now": n(now), ":one": n(1)},
            "attribute_exists(#frozen_by)",
            chain.unfrozen(by, reason, now),
            at=now,
        )
        # A false condition means not frozen: nothing to do.
        with contextlib.suppress(ConditionFailed):
            self._chained(lambda _: write)
        return self.state()

    def _newest(self, partition: str, limit: int) -> Iterator[Item]:
        """Up to limit items of a partition, newest (largest sort key) first."""
        left = limit
        start: Item | None = None
        while left > 0:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": s(partition)},
                "ScanIndexForward": False,
                "ConsistentRead": True,
                "Limit": left,
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._call("query", **kwargs)
            found = answer.get("Items", [])
            yield from found
            left -= len(found)
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return

    def history(self, limit: int = 50) -> Json:
        self._tally.flush()
        current = self._current().get("t", {}).get("M")
        transitions = []
        if current is not None:  # the authoritative copy, archived or not yet
            transitions.append(items.transition(current))
        for item in self._newest(TRANSITION, limit + 1):
            if current is None or item["id"]["S"] != current["id"]["S"]:
                transitions.append(items.transition(item))
        return {
            "transitions": [t.to_json() for t in transitions[:limit]],
            "decisions": [items.decision(i).to_json() for i in self._newest(DECISION, limit)],
        }

    def action_results(self) -> dict[str, Json]:
        actions = self._current().get("actions", {}).get("M", {})
        out: dict[str, Json] = {}
        for name in sorted(actions):
            m = actions[name]["M"]
            out[name] = {
                "result": m["result"]["S"],
                "at": format_time(float(m["at"]["N"])),
                "transition_id": m["transition_id"]["S"],
                "error": items.opt_s(m, "error"),
                "region": items.opt_s(m, "region"),
            }
        return out

    def audit_log(self) -> chain.AuditLog:
        self._tally.flush()
        return super().audit_log()

    def close(self) -> None:
        self._tally.flush()

    def prune(self, before: float) -> int:
        self._tally.flush()
        current = self._current().get("t", {}).get("M")
        keep = current["id"]["S"] if current is not None else None
        listed = [i for p in (DECISION, TRANSITION) for i in self._partition(p)]
        delivered = [i for i in self._partition(OUTBOX) if _older(i, before)]
        doomed = [i for i in listed if _older(i, before) and i["sk"]["S"] != keep]
        gone = {i["sk"]["S"] for i in doomed}
        kept = {i["sk"]["S"] for i in listed} - gone
        events: list[int] = []

        def build(item: Item) -> Write | None:
            anchor = items.anchor(item)
            assert anchor is not None
            after = self._query(AUDIT, chained_table.sort_key(anchor.seq))
            moved = chain.prune_anchor(map(items.event, after), anchor, before, kept)
            events[:] = range(anchor.seq + 1, moved.seq + 1)
            if not doomed and not events:
                return None
            return Write(
                "SET #chain_anchor = :anchor",
                {":anchor": s(json.dumps(moved.to_json()))},
                None,
                chain.pruned(len(doomed), moved, items.live(item)),
            )

        if self._chained(build) is None and not delivered:
            return 0
        audit = [{"pk": s(AUDIT), "sk": s(chained_table.sort_key(q))} for q in events]
        indexes = [
            {"pk": i["pk"], "sk": i["sk"]}
            for i in self._partition(REPEAT)
            if i.get("decision_id", {}).get("S") in gone
        ]
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in doomed + delivered] + indexes + audit
        for start in range(0, len(keys), BATCH):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + BATCH]]
            unprocessed: Any = {self.table: requests}
            while unprocessed:
                answer = self._call("batch_write_item", RequestItems=unprocessed)
                unprocessed = answer.get("UnprocessedItems") or {}
        return len(doomed)

    def _partition(self, partition: str) -> Iterator[Item]:
        """Every item of a partition, keys and times only."""
        return self._query(
            partition, project="pk, sk, #at, started_at, #result, decision_id, #pending"
        )

    def ping(self) -> None:
        self._get(CURRENT_KEY)


def _older(item: Item, before: float) -> bool:
    """A decision made, a delivered notice, or a finished transition started, before the cutoff."""
    if item["pk"]["S"] == DECISION:
        return float(item["at"]["N"]) < before
    if item["pk"]["S"] == OUTBOX:
        return not item["pending"]["BOOL"] and float(item["at"]["N"]) < before
    finished = item.get("result", {}).get("S") != "in_progress"
    return finished and float(item["started_at"]["N"]) < before
