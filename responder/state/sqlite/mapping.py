"""Rows read back as records: the one mapping every part of the SQLite store uses."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from responder.state import chain
from responder.state.records import (
    Approval,
    Attempts,
    Cause,
    DecisionRecord,
    Freeze,
    InFlight,
    Json,
    Operation,
    StepRecord,
    TransitionRecord,
    failures_from_store,
)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def step(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        action=row["action"],
        result=row["result"],
        before=json.loads(row["before"]) if row["before"] is not None else None,
        after=json.loads(row["after"]) if row["after"] is not None else None,
        error=row["error"],
        at=row["at"],
        attempts=row["attempts"],
        fencing_token=row["fencing_token"],
        rollback=bool(row["rollback"]),
        started_at=row["started_at"],
        failures=failures_from_store(loads(row["failures"])),
    )


def decision(row: sqlite3.Row) -> DecisionRecord:
    return DecisionRecord(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        reason=row["reason"],
        cause=Cause.from_json(json.loads(row["cause"])),
        region=row["region"],
        to_region=row["to_region"],
        transition_kind=row["transition_kind"],
        count=row["count"],
        last_at=row["last_at"],
    )


def transition(db: sqlite3.Connection, row: sqlite3.Row) -> TransitionRecord:
    steps = db.execute(
        "SELECT * FROM steps WHERE transition_id = ? ORDER BY seq", (row["id"],)
    ).fetchall()
    return TransitionRecord(
        id=row["id"],
        kind=row["kind"],
        from_region=row["from_region"],
        to_region=row["to_region"],
        result=row["result"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        cause=Cause.from_json(json.loads(row["cause"])),
        data_at_risk_seconds=row["data_at_risk"],
        dry_run=bool(row["dry_run"]),
        error=row["error"],
        steps=tuple(step(s) for s in steps),
        deadline_at=row["deadline_at"],
        attempts=Attempts.from_store(loads(row["attempts"])),
        operations=tuple(Operation.from_store(o) for o in json.loads(row["operations"])),
        revision=row["revision"],
        approval=Approval.from_store(loads(row["approval"])),
        evidence=loads(row["evidence"]),
        in_flight=InFlight.from_store(loads(row["in_flight"])),
    )


def event(row: sqlite3.Row) -> chain.Event:
    return chain.Event(
        row["seq"],
        row["at"],
        row["type"],
        row["subject"],
        json.loads(row["body"]),
        row["prev"],
        row["hash"],
        row["key_id"],
    )


def freeze(meta: sqlite3.Row | dict[str, Any]) -> Freeze | None:
    """The freeze recorded in the meta row, if any."""
    if meta["frozen_by"] is None:
        return None
    return Freeze(
        meta["frozen_by"], meta["frozen_reason"], meta["frozen_at"], bool(meta["frozen_auto"])
    )


def live(meta: sqlite3.Row) -> Json:
    """The live state in the meta row, as a checkpoint event states it."""
    return chain.live(meta["active_region"], freeze(meta))
