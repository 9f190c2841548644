"""DynamoDB attribute values for the state store's records, both ways (pure, no I/O).

Numbers are DynamoDB N strings; JSON payloads (causes, a step's before and
after) are kept as S strings so any JSON survives, floats and empty strings included.
"""

from __future__ import annotations

import json
import re
from typing import Any

from responder.state import chain
from responder.state.outbox import Notice
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    DecisionRecord,
    Freeze,
    InFlight,
    Json,
    Lease,
    NewTransition,
    Operation,
    StepRecord,
    TransitionRecord,
    failures_from_store,
)

Item = dict[str, Any]
_NAME = re.compile(r"#(\w+)")


def s(value: str) -> dict[str, str]:
    """A string value."""
    return {"S": value}


def n(value: float) -> dict[str, str]:
    """A number value."""
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def j(value: Json) -> dict[str, str]:
    """A JSON document kept as a string."""
    return {"S": json.dumps(value)}


def opt_s(item: Item, name: str) -> str | None:
    """A string attribute, or None when absent."""
    value = item.get(name)
    return value["S"] if value is not None and "S" in value else None


def opt_n(item: Item, name: str) -> float | None:
    """A number attribute, or None when absent."""
    value = item.get(name)
    return float(value["N"]) if value is not None and "N" in value else None


def integer(item: Item, name: str) -> int:
    """An integer attribute, 0 when absent."""
    return int(item[name]["N"]) if name in item else 0


def names(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for every #name: many attribute names are reserved words."""
    return {f"#{m}": m for e in expressions for m in _NAME.findall(e)}


def step_value(step: StepRecord, token: int, at: float) -> Item:
    """A journaled step as a map value."""
    out: Item = {
        "action": s(step.action),
        "result": s(step.result),
        "before": j(step.before),
        "after": j(step.after),
        "at": n(at),
        "attempts": n(step.attempts),
        "fencing_token": n(token),
    }
    if step.rollback:
        out["rollback"] = {"BOOL": True}
    if step.error is not None:
        out["error"] = s(step.error)
    if step.started_at is not None:
        out["started_at"] = n(float(step.started_at))
    if step.failures:
        out["failures"] = j([f.to_store() for f in step.failures])
    return {"M": out}


def step(value: Item) -> StepRecord:
    """A journaled step from its map value."""
    m = value["M"]
    return StepRecord(
        action=m["action"]["S"],
        result=m["result"]["S"],
        before=json.loads(m["before"]["S"]),
        after=json.loads(m["after"]["S"]),
        error=opt_s(m, "error"),
        at=float(m["at"]["N"]),
        attempts=integer(m, "attempts"),
        fencing_token=integer(m, "fencing_token"),
        rollback=m.get("rollback", {}).get("BOOL", False),
        started_at=opt_n(m, "started_at"),
        failures=failures_from_store(json.loads(m["failures"]["S"]) if "failures" in m else None),
    )


def attempts_value(attempts: Attempts | None) -> Item:
    """The attempts of the step in trouble, as a JSON string (NULL when none)."""
    return {"NULL": True} if attempts is None else j(attempts.to_store())


def in_flight_value(in_flight: InFlight | None) -> Item:
    """The attempt in flight, as a JSON string (NULL when none)."""
    return {"NULL": True} if in_flight is None else j(in_flight.to_store())


def operation_value(operation: Operation) -> Item:
    """An operator's command, as a list element."""
    return j(operation.to_store())


def new_transition(transition_id: str, new: NewTransition, now: float) -> Item:
    """The attributes of a transition just begun (in progress, no steps)."""
    out: Item = {
        "id": s(transition_id),
        "kind": s(new.kind),
        "to_region": s(new.to_region),
        "result": s("in_progress"),
        "started_at": n(now),
        "cause": j(new.cause.to_json()),
        "dry_run": {"BOOL": new.dry_run},
        "steps": {"L": []},
        "operations": {"L": []},
        "revision": n(0),
    }
    if new.deadline_at is not None:
        out["deadline_at"] = n(float(new.deadline_at))
    if new.approval is not None:
        out["approval"] = j(new.approval.to_store())
    if new.from_region is not None:
        out["from_region"] = s(new.from_region)
    if new.data_at_risk_seconds is not None:
        out["data_at_risk"] = n(float(new.data_at_risk_seconds))
    if new.evidence is not None:
        out["evidence"] = j(new.evidence)
    return out


def transition(m: Item) -> TransitionRecord:
    """A transition from its attributes (the current item's map, or an archived item)."""
    return TransitionRecord(
        id=m["id"]["S"],
        kind=m["kind"]["S"],
        from_region=opt_s(m, "from_region"),
        to_region=m["to_region"]["S"],
        result=m["result"]["S"],
        started_at=float(m["started_at"]["N"]),
        finished_at=opt_n(m, "finished_at"),
        cause=Cause.from_json(json.loads(m["cause"]["S"])),
        data_at_risk_seconds=opt_n(m, "data_at_risk"),
        dry_run=m["dry_run"]["BOOL"],
        error=opt_s(m, "error"),
        steps=tuple(step(v) for v in m.get("steps", {}).get("L", [])),
        deadline_at=opt_n(m, "deadline_at"),
        attempts=Attempts.from_store(
            json.loads(m["attempts"]["S"]) if "S" in m.get("attempts", {}) else None
        ),
        operations=tuple(
            Operation.from_store(json.loads(v["S"])) for v in m.get("operations", {}).get("L", [])
        ),
        revision=integer(m, "revision"),
        approval=Approval.from_store(json.loads(m["approval"]["S"]) if "approval" in m else None),
        evidence=json.loads(m["evidence"]["S"]) if "evidence" in m else None,
        in_flight=InFlight.from_store(
            json.loads(m["in_flight"]["S"]) if "S" in m.get("in_flight", {}) else None
        ),
    )


def decision_item(record: DecisionRecord) -> Item:
    """A decision's attributes (without its key)."""
    out: Item = {
        "id": s(record.id),
        "at": n(record.at),
        "kind": s(record.kind),
        "reason": s(record.reason),
        "cause": j(record.cause.to_json()),
    }
    for name in ("region", "to_region", "transition_kind"):
        value = getattr(record, name)
        if value is not None:
            out[name] = s(value)
    out["count"] = n(record.count)
    if record.last_at is not None:
        out["last_at"] = n(float(record.last_at))
    return out


def decision(item: Item) -> DecisionRecord:
    """A decision from its item."""
    return DecisionRecord(
        id=item["id"]["S"],
        at=float(item["at"]["N"]),
        kind=item["kind"]["S"],
        reason=item["reason"]["S"],
        cause=Cause.from_json(json.loads(item["cause"]["S"])),
        region=opt_s(item, "region"),
        to_region=opt_s(item, "to_region"),
        transition_kind=opt_s(item, "transition_kind"),  # type: ignore[arg-type]
        count=integer(item, "count") or 1,
        last_at=opt_n(item, "last_at"),
    )


def freeze(item: Item) -> Freeze | None:
    """The freeze recorded on the current item, if any."""
    by = opt_s(item, "frozen_by")
    if by is None:
        return None
    return Freeze(
        by,
        opt_s(item, "frozen_reason") or "",
        opt_n(item, "frozen_at") or 0.0,
        item.get("frozen_auto", {}).get("BOOL", False),
    )


def lease(item: Item, now: float) -> Lease | None:
    """The live lease recorded on the current item; None when free or expired."""
    holder = opt_s(item, "lease_holder")
    expires = opt_n(item, "lease_expires") or 0.0
    if holder is None or expires <= now:
        return None
    return Lease(holder, integer(item, "lease_token"), expires)


def action_summary(transition_id: str, record: StepRecord, at: float, region: str | None) -> Item:
    """An action's last result, and the region of its last verified state, on the current item."""
    out: Item = {"result": s(record.result), "at": n(at), "transition_id": s(transition_id)}
    if record.error is not None:
        out["error"] = s(record.error)
    if region is not None:
        out["region"] = s(region)
    return {"M": out}


def notice_item(notice: Notice) -> Item:
    """A queued notice as its outbox item; the claim lives in its own attributes."""
    return {
        "pk": s("outbox"),
        "sk": s(notice.id),
        "at": n(notice.at),
        "notice": j({**notice.to_store(), "claimed_by": None, "claim_until": 0.0}),
        "pending": {"BOOL": any(d.state == "pending" for d in notice.deliveries.values())},
        "claim_until": n(0),
    }


def notice(item: Item) -> Notice:
    """A notice from its outbox item, with its claim."""
    stored = json.loads(item["notice"]["S"])
    stored["claimed_by"] = opt_s(item, "claimed_by")
    stored["claim_until"] = opt_n(item, "claim_until") or 0.0
    return Notice.from_store(stored)


def head(item: Item) -> chain.Head | None:
    """The chain's head recorded on the current item; None before the chain began."""
    if "chain_seq" not in item:
        return None
    return chain.Head(integer(item, "chain_seq"), item["chain_hash"]["S"])


def anchor(item: Item) -> chain.Anchor | None:
    """Where the chain starts, from the current item."""
    value = opt_s(item, "chain_anchor")
    return None if value is None else chain.Anchor.from_json(json.loads(value))


def last_event(item: Item) -> chain.Event | None:
    """The newest event, kept whole on the current item until the next one replaces it."""
    value = opt_s(item, "chain_last")
    return None if value is None else chain.Event.from_json(json.loads(value))


def chain_notices(item: Item) -> tuple[Notice, ...]:
    """The notices the newest event queued, listed on the current item."""
    value = opt_s(item, "chain_notices")
    return tuple(Notice.from_store(x) for x in json.loads(value)) if value else ()


def chain_values(event: chain.Event) -> Item:
    """The current item's chain attributes after event."""
    return {
        ":chain_seq_next": n(event.seq),
        ":chain_hash_next": s(event.hash),
        ":chain_last": s(chain.canonical(event.to_json()).decode("utf-8")),
    }


def event_item(event: chain.Event) -> Item:
    """An event as its own item (without its key)."""
    return {
        "seq": n(event.seq),
        "at": n(float(event.at)),
        "type": s(event.type),
        "subject": s(event.subject),
        "body": s(chain.canonical(event.body).decode("utf-8")),
        "prev": s(event.prev),
        "hash": s(event.hash),
        **({} if event.key_id is None else {"key_id": s(event.key_id)}),
    }


def event(item: Item) -> chain.Event:
    """An event from its item."""
    return chain.Event(
        integer(item, "seq"),
        float(item["at"]["N"]),
        item["type"]["S"],
        item["subject"]["S"],
        json.loads(item["body"]["S"]),
        item["prev"]["S"],
        item["hash"]["S"],
        opt_s(item, "key_id"),
    )


def live(item: Item) -> Json:
    """The live state on the current item, as a checkpoint event states it."""
    return chain.live(item["active_region"]["S"], freeze(item))


def live_state(item: Item) -> chain.Live:
    """The live state on the current item, as audit verify compares it."""
    running = item.get("t", {}).get("M")
    in_progress = None
    if running is not None and running["result"]["S"] == "in_progress":
        in_progress = running["id"]["S"]
    return chain.Live(item["active_region"]["S"], freeze(item), in_progress)


def with_sets(update: str, sets: str) -> str:
    """update with more SET actions (it may have a SET clause of its own, or none)."""
    if not update:
        return f"SET {sets}"
    if "SET " in update:
        return update.replace("SET ", f"SET {sets}, ", 1)
    return f"SET {sets} {update}"
