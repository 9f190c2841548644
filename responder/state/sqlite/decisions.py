"""The SQLite store's decisions: recorded, repeats counted, and the freeze a decision may set."""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import replace

from responder.state import chain
from responder.state.outbox import Announce, announced
from responder.state.phases import blocks_phase, clears_block
from responder.state.records import (
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    TransitionKind,
    repeat_key,
)
from responder.state.repeats import Handle
from responder.state.sqlite import mapping
from responder.state.sqlite.file import SqliteFile


class SqliteDecisions(SqliteFile):
    """Decisions, their repeat counts, and the freeze."""

    def record_decision(
        self,
        kind: DecisionKind,
        reason: str,
        cause: Cause,
        *,
        region: str | None = None,
        to_region: str | None = None,
        transition_kind: TransitionKind | None = None,
        freeze: Freeze | None = None,
        announce: Announce | None = None,
    ) -> DecisionRecord:
        at = self._clock()
        key = repeat_key(kind, reason, cause)
        if key is not None and freeze is None:
            counted = self._tally.count(key, at)
            if counted is not None:
                return counted
        # A blocked decision is told (its notice in the same write): that write is durable.
        with self._write(durable=freeze is not None or kind == "blocked") as db:
            repeats = None
            if key is not None:
                repeats = db.execute(
                    "SELECT seq FROM decisions WHERE repeat_key = ? ORDER BY seq DESC LIMIT 1",
                    (key,),
                ).fetchone()
            if repeats is not None:
                seq = repeats["seq"]
                record = self._repeat(db, seq, at)
            else:
                record = DecisionRecord(
                    id=f"d-{int(at)}-{secrets.token_hex(4)}",
                    at=at,
                    kind=kind,
                    reason=reason,
                    cause=cause,
                    region=region,
                    to_region=to_region,
                    transition_kind=transition_kind,
                )
                db.execute(
                    "INSERT INTO decisions (id, at, kind, reason, region, to_region,"
                    " transition_kind, cause, repeat_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        at,
                        kind,
                        reason,
                        region,
                        to_region,
                        transition_kind,
                        json.dumps(cause.to_json()),
                        key,
                    ),
                )
                seq = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._append(db, chain.decided(record), at)
            self._enqueue(db, announced(announce, record))
            if blocks_phase(record):
                db.execute("UPDATE meta SET last_blocked_at = ? WHERE id = 1", (at,))
            elif clears_block(record):
                db.execute("UPDATE meta SET last_blocked_at = NULL WHERE id = 1")
            if freeze is not None:
                self._freeze(db, freeze)
        if key is not None:
            self._tally.remember(key, seq, record)
        return record

    def _write_repeats(self, key: str, seq: Handle, times: int, at: float) -> DecisionRecord | None:
        """The tally's write: times more repeats of key's decision at seq (None: not there)."""
        assert isinstance(seq, int)
        with self._write(durable=False) as db:
            known = db.execute(
                "SELECT 1 FROM decisions WHERE seq = ? AND repeat_key = ?", (seq, key)
            ).fetchone()
            return None if known is None else self._repeat(db, seq, at, times)

    def _repeat(
        self, db: sqlite3.Connection, seq: int, at: float, times: int = 1
    ) -> DecisionRecord:
        """Count times more notifications of the decision at seq: one UPDATE, no chain event.

        The seam for batching repeats (issue 16): times > 1 costs the same one write.
        """
        db.execute(
            # Workers' tallies write out of order: the last seen stays the latest.
            "UPDATE decisions SET count = count + ?, last_at = MAX(COALESCE(last_at, at), ?)"
            " WHERE seq = ?",
            (times, at, seq),
        )
        row = db.execute("SELECT * FROM decisions WHERE seq = ?", (seq,)).fetchone()
        return mapping.decision(row)

    def _freeze(self, db: sqlite3.Connection, freeze: Freeze) -> None:
        # Keep the first freeze's who/why: it explains why transitions stopped.
        freeze = replace(freeze, at=freeze.at or self._clock())
        changed = db.execute(
            "UPDATE meta SET frozen_by = ?, frozen_reason = ?, frozen_at = ?, frozen_auto = ?,"
            " version = version + 1 WHERE id = 1 AND frozen_by IS NULL",
            (freeze.by, freeze.reason, freeze.at, int(freeze.automatic)),
        ).rowcount
        if changed:
            self._append(db, chain.frozen(freeze))
