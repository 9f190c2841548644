"""The SQLite store's transitions: begun, journaled step by step, operated on, finished, read."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from responder.state import chain
from responder.state.outbox import Announce, Notice, announced
from responder.state.records import (
    VERIFIED_RESULTS,
    Approval,
    Attempts,
    InFlight,
    Json,
    NewTransition,
    Operation,
    StepRecord,
    TransitionRecord,
)
from responder.state.sqlite import mapping
from responder.state.sqlite.file import SqliteFile
from responder.state.store import UnknownTransition


class SqliteTransitions(SqliteFile):
    """Transitions and their steps, each change one fenced write that also extends the chain."""

    def begin_transition(
        self, new: NewTransition, expected_version: int, announce: Announce | None = None
    ) -> TransitionRecord | None:
        with self._write() as db:
            meta = db.execute("SELECT version FROM meta WHERE id = 1").fetchone()
            busy = db.execute(
                "SELECT 1 FROM transitions WHERE result = 'in_progress' LIMIT 1"
            ).fetchone()
            if meta["version"] != expected_version or busy is not None:
                return None
            transition_id = f"t-{int(self._clock())}-{secrets.token_hex(4)}"
            db.execute(
                "INSERT INTO transitions (id, kind, from_region, to_region, result, started_at,"
                " cause, data_at_risk, dry_run, deadline_at, approval, evidence)"
                " VALUES (?, ?, ?, ?, 'in_progress', ?, ?, ?, ?, ?, ?, ?)",
                (
                    transition_id,
                    new.kind,
                    new.from_region,
                    new.to_region,
                    self._clock(),
                    json.dumps(new.cause.to_json()),
                    new.data_at_risk_seconds,
                    int(new.dry_run),
                    new.deadline_at,
                    json.dumps(new.approval.to_store()) if new.approval else None,
                    mapping.dumps(new.evidence),
                ),
            )
            db.execute("UPDATE meta SET version = version + 1 WHERE id = 1")
            record = self._reread(db, transition_id)
            self._append(db, chain.begun(record), record.started_at)
            self._enqueue(db, announced(announce, record))
            return record

    def _running(self, db: sqlite3.Connection, transition_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM transitions WHERE id = ?", (transition_id,)).fetchone()
        if row is None or row["result"] != "in_progress":
            raise UnknownTransition(f"no transition {transition_id} in progress")
        return row

    def journal_step(self, transition_id: str, step: StepRecord, fencing_token: int) -> None:
        with self._write() as db:
            self._check_token(db, fencing_token)
            self._running(db, transition_id)
            stored = replace(step, at=step.at or self._clock(), fencing_token=fencing_token)
            self._insert_step(db, transition_id, stored)
            # Steps run one at a time: once one is journaled, nothing is in trouble or running.
            self._set_in_flight(db, transition_id, None)
            self._set_attempts(db, transition_id, None)
            self._append(db, chain.journaled(transition_id, stored))

    @staticmethod
    def _insert_step(db: sqlite3.Connection, transition_id: str, step: StepRecord) -> None:
        db.execute(
            "INSERT INTO steps (transition_id, action, result, before, after, error, at,"
            " attempts, fencing_token, rollback, started_at, failures)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                transition_id,
                step.action,
                step.result,
                json.dumps(step.before),
                json.dumps(step.after),
                step.error,
                step.at,
                step.attempts,
                step.fencing_token,
                int(step.rollback),
                step.started_at,
                json.dumps([f.to_store() for f in step.failures]),
            ),
        )

    def record_attempts(
        self,
        transition_id: str,
        attempts: Attempts,
        fencing_token: int,
        notices: Sequence[Notice] = (),
        in_flight: InFlight | None = None,
    ) -> None:
        with self._write() as db:
            self._check_token(db, fencing_token)
            self._running(db, transition_id)
            self._set_in_flight(db, transition_id, in_flight)
            self._set_attempts(db, transition_id, attempts)
            self._append(db, chain.attempted(transition_id, attempts))
            self._enqueue(db, notices)

    def mark_in_flight(
        self, transition_id: str, in_flight: InFlight | None, fencing_token: int
    ) -> None:
        with self._write() as db:
            self._check_token(db, fencing_token)
            self._running(db, transition_id)
            self._set_in_flight(db, transition_id, in_flight)
            db.execute(
                "UPDATE transitions SET revision = revision + 1 WHERE id = ?", (transition_id,)
            )

    @staticmethod
    def _set_in_flight(
        db: sqlite3.Connection, transition_id: str, in_flight: InFlight | None
    ) -> None:
        db.execute(
            "UPDATE transitions SET in_flight = ? WHERE id = ?",
            (mapping.dumps(in_flight.to_store() if in_flight else None), transition_id),
        )

    @staticmethod
    def _set_attempts(
        db: sqlite3.Connection, transition_id: str, attempts: Attempts | None
    ) -> None:
        db.execute(
            "UPDATE transitions SET attempts = ?, revision = revision + 1 WHERE id = ?",
            (json.dumps(attempts.to_store()) if attempts else None, transition_id),
        )

    def operate(
        self,
        transition_id: str,
        expected_revision: int,
        operation: Operation | None,
        attempts: Attempts | None,
        step: StepRecord | None = None,
        approval: Approval | None = None,
        notices: Sequence[Notice] = (),
    ) -> TransitionRecord | None:
        with self._write() as db:
            row = self._running(db, transition_id)
            if row["revision"] != expected_revision:
                return None
            if approval is not None:
                db.execute(
                    "UPDATE transitions SET approval = ? WHERE id = ?",
                    (json.dumps(approval.to_store()), transition_id),
                )
            if operation is not None:
                operations = [*json.loads(row["operations"]), operation.to_store()]
                db.execute(
                    "UPDATE transitions SET operations = ? WHERE id = ?",
                    (json.dumps(operations), transition_id),
                )
            stored = None
            if step is not None:
                stored = replace(step, at=step.at or self._clock(), fencing_token=None)
                self._insert_step(db, transition_id, stored)
            self._set_attempts(db, transition_id, attempts)
            self._append(db, chain.operated(transition_id, operation, attempts, stored, approval))
            self._enqueue(db, notices)
            return self._reread(db, transition_id)

    def _reread(self, db: sqlite3.Connection, transition_id: str) -> TransitionRecord:
        """The transition as just written."""
        row = db.execute("SELECT * FROM transitions WHERE id = ?", (transition_id,)).fetchone()
        return mapping.transition(db, row)

    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        with self._read() as db:
            row = db.execute("SELECT * FROM transitions WHERE id = ?", (transition_id,)).fetchone()
            if row is None:
                return {}
            return mapping.transition(db, row).done_steps()

    def finish_transition(
        self,
        transition_id: str,
        result: Literal["completed", "failed", "aborted", "declined", "blocked"],
        fencing_token: int,
        error: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> TransitionRecord:
        with self._write() as db:
            self._check_token(db, fencing_token)
            row = self._running(db, transition_id)
            db.execute(
                "UPDATE transitions SET result = ?, finished_at = ?, error = ?, in_flight = NULL,"
                " revision = revision + 1 WHERE id = ?",
                (result, self._clock(), error, transition_id),
            )
            if result == "completed" and not row["dry_run"]:
                db.execute("UPDATE meta SET active_region = ? WHERE id = 1", (row["to_region"],))
            db.execute("UPDATE meta SET version = version + 1 WHERE id = 1")
            record = self._reread(db, transition_id)
            self._append(db, chain.finished(record), record.finished_at)
            self._enqueue(db, notices)
            return record

    def transition(self, transition_id: str) -> TransitionRecord:
        with self._read() as db:
            row = db.execute("SELECT * FROM transitions WHERE id = ?", (transition_id,)).fetchone()
            if row is None:
                raise UnknownTransition(f"no transition {transition_id}")
            return mapping.transition(db, row)

    def action_results(self) -> dict[str, Json]:
        with self._read() as db:
            rows = db.execute(
                "SELECT s.* FROM steps s JOIN (SELECT action, MAX(seq) AS seq FROM steps"
                " GROUP BY action) last ON s.seq = last.seq ORDER BY s.action"
            ).fetchall()
            verified = db.execute(
                "SELECT s.action, s.rollback, t.from_region, t.to_region FROM steps s"
                " JOIN transitions t ON t.id = s.transition_id"
                " JOIN (SELECT action, MAX(seq) AS seq FROM steps"
                f" WHERE result IN ({', '.join('?' * len(VERIFIED_RESULTS))}) GROUP BY action)"
                " last ON s.seq = last.seq",
                tuple(sorted(VERIFIED_RESULTS)),
            ).fetchall()
        regions = {
            v["action"]: v["from_region"] if v["rollback"] else v["to_region"] for v in verified
        }
        out: dict[str, Any] = {}
        for row in rows:
            step = mapping.step(row)
            out[step.action] = {
                "result": step.result,
                "at": step.to_json()["at"],
                "transition_id": row["transition_id"],
                "error": step.error,
                "region": regions.get(step.action),
            }
        return out
