"""Repeats on the DynamoDB control table: a tally on the decision, found through an index item.

("repeat", KEY) names the decision a repeat of KEY (records.repeat_key) counts on. The first
notification claims the key with a conditional put before recording its decision, so a
burst of the same notification (Alertmanager replicas, every responder replica) records
one decision and counts the rest: each repeat is one small UpdateItem on the decision,
outside the audit chain, never touching the current item the reconciler writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from responder.state.dynamodb import items
from responder.state.dynamodb.chained_table import DECISION, REPEAT, ConditionFailed
from responder.state.dynamodb.items import n, s
from responder.state.records import DecisionRecord

Call = Callable[..., Any]
# A claim whose decision has not appeared after this long was left by a writer that died.
STALE_CLAIM_SECONDS = 5.0
# How long a repeat waits for the claimer's decision to appear before recording its own.
WAIT_SECONDS = 1.0
PAUSE_SECONDS = 0.02


def count_or_claim(
    call: Call, table: str, key: str, decision_id: str, now: Callable[[], float]
) -> DecisionRecord | None:
    """Count a repeat of key's decision and return it; None when decision_id is to be recorded.

    None also when the wait for a claimer's decision runs out: a second row then, never a
    lost notification. A repeat costs a read and one write.
    """
    waited_until = time.monotonic() + WAIT_SECONDS
    while True:
        at = now()
        index = call(
            "get_item",
            TableName=table,
            Key={"pk": s(REPEAT), "sk": s(key)},
            ConsistentRead=True,
        ).get("Item")
        if index is None:
            if _claim(call, table, key, decision_id, at, "attribute_not_exists(pk)"):
                return None
            continue  # another request claimed it first: count on its decision
        counted = add_repeats(call, table, index["decision_id"]["S"], at)
        if counted is not None:
            return counted
        claimed = items.opt_n(index, "at") or 0.0
        # A claim whose decision never came (its writer died, or a prune removed it), or
        # one we waited on long enough: this decision is the one repeats count on now.
        if at - claimed > STALE_CLAIM_SECONDS or time.monotonic() > waited_until:
            _claim(call, table, key, decision_id, at, None)
            return None
        time.sleep(random.uniform(0, PAUSE_SECONDS))  # the claimer is writing its decision


def _claim(
    call: Call, table: str, key: str, decision_id: str, at: float, condition: str | None
) -> bool:
    item = {"pk": s(REPEAT), "sk": s(key), "decision_id": s(decision_id), "at": n(at)}
    kwargs: dict[str, Any] = {"TableName": table, "Item": item}
    if condition:
        kwargs["ConditionExpression"] = condition
    try:
        call("put_item", **kwargs)
    except ConditionFailed:
        return False
    return True


def add_repeats(
    call: Call, table: str, decision_id: str, at: float, times: int = 1
) -> DecisionRecord | None:
    """times more notifications of the decision, in one write however many (a burst is
    counted at once: responder.state.repeats); None when it does not exist (yet, or any
    more)."""
    try:
        answer = call(
            "update_item",
            TableName=table,
            Key={"pk": s(DECISION), "sk": s(decision_id)},
            UpdateExpression="ADD #count :one SET #last_at = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#count": "count", "#last_at": "last_at"},
            ExpressionAttributeValues={":one": n(times), ":at": n(at)},
            ReturnValues="ALL_NEW",
        )
    except ConditionFailed:
        return None
    return items.decision(answer["Attributes"])
