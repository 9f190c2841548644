"""The embedded state store: one SQLite file, safe across threads, workers and processes.

Every write is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
lock up front, so a compare-and-set reads and writes without interleaving.
A connection is opened per call: nothing is shared across gunicorn's fork.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from responder.state import chain
from responder.state.keys import AuditKeys
from responder.state.phases import PhaseInputs, desired_region, phase
from responder.state.records import Freeze, Json, State, TransitionRecord
from responder.state.repeats import RepeatTally, anew
from responder.state.sqlite import mapping
from responder.state.sqlite.audit import SqliteAudit
from responder.state.sqlite.decisions import SqliteDecisions
from responder.state.sqlite.lease import SqliteLease
from responder.state.sqlite.outbox import SqliteOutbox
from responder.state.sqlite.schema import INDEXES, SCHEMA, add_missing_columns
from responder.state.sqlite.transitions import SqliteTransitions
from responder.state.store import StateStore, StoreUnavailable
from responder.state.writelock import WriterLock

# Enough starts to evaluate any sane hourly cap.
RECENT_LIMIT = 100
RECENT_WINDOW = 2 * 3600.0


@dataclass(frozen=True)
class _StoredState:
    """What the state is made of, as read: the same until the file changes."""

    meta: dict[str, Any]
    last: TransitionRecord | None
    completed_at: float | None
    starts: tuple[float, ...]  # the newest RECENT_LIMIT, newest first


class SqliteStore(
    SqliteTransitions, SqliteDecisions, SqliteLease, SqliteOutbox, SqliteAudit, StateStore
):
    """StateStore on one SQLite file; primary is the active region of a new store."""

    def __init__(
        self,
        path: str | Path,
        primary: str,
        clock: Callable[[], float] = time.time,
        busy_timeout_seconds: float = 5.0,
        keys: AuditKeys | None = None,
    ) -> None:
        self.path = Path(path)
        self._keys = keys
        self._primary = primary
        self._clock = clock
        self._busy = busy_timeout_seconds
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Owner only: SQLite gives the WAL and shared-memory files the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.path}: {exc.strerror}") from None
        self._writer = WriterLock(self.path.with_name(self.path.name + ".write.lock"))
        try:
            # WAL (persistent in the file) lets readers proceed while one process writes.
            # Under the writer lock: workers booting together would race to switch it.
            with self._writer.held():
                db = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                finally:
                    db.close()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"state store {self.path}: {exc}") from None
        self._local = threading.local()
        self._tally = RepeatTally(self._write_repeats, anew(self.record_decision))
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            add_missing_columns(db)
            for statement in INDEXES:
                db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (id, active_region, version) VALUES (1, ?, 0)",
                (primary,),
            )
            db.execute(
                "INSERT OR IGNORE INTO lease (id, holder, token, expires_at) VALUES (1, NULL, 0, 0)"
            )
            self._start_chain(db)

    def _state(self, db: sqlite3.Connection) -> State:
        return self._state_at(self._stored_state(db), self._clock())

    def _stored_state(self, db: sqlite3.Connection) -> _StoredState:
        meta = db.execute("SELECT * FROM meta WHERE id = 1").fetchone()
        rows = db.execute("SELECT * FROM transitions ORDER BY seq DESC LIMIT 1").fetchall()
        completed = db.execute(
            "SELECT MAX(finished_at) FROM transitions WHERE result = 'completed'"
        ).fetchone()[0]
        starts = db.execute(
            "SELECT started_at FROM transitions ORDER BY seq DESC LIMIT ?", (RECENT_LIMIT,)
        ).fetchall()
        return _StoredState(
            dict(meta),
            mapping.transition(db, rows[0]) if rows else None,
            completed,
            tuple(r[0] for r in starts),
        )

    @staticmethod
    def _state_at(stored: _StoredState, now: float) -> State:
        """The state as of now: the phase and the recent starts depend on the time."""
        meta, last = stored.meta, stored.last
        running = last if last is not None and last.in_progress else None
        frozen = mapping.freeze(meta)
        active = meta["active_region"]
        return State(
            active_region=active,
            desired_region=desired_region(active, last),
            phase=phase(
                PhaseInputs(
                    frozen=frozen,
                    in_progress=running,
                    last_transition=last,
                    last_blocked_at=meta["last_blocked_at"],
                    last_unfrozen_at=meta["unfrozen_at"],
                    now=now,
                )
            ),
            frozen=frozen,
            in_progress=running,
            last_transition=last,
            last_completed_at=stored.completed_at,
            recent_starts=tuple(s for s in stored.starts if s > now - RECENT_WINDOW),
            version=meta["version"],
        )

    def state(self) -> State:
        """Read again only when the file changed since this thread's connection last read it.

        Every webhook reads the state; in a burst of repeats it has not changed. SQLite's
        data_version tells another connection's commits; this connection's own writes
        forget what it read (_transaction).
        """
        with self._read() as db:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            known = getattr(self._local, "stored", None)
            if known is None or known[0] is not db or known[1] != version:
                known = (db, version, self._stored_state(db))
                self._local.stored = known
            return self._state_at(known[2], self._clock())

    def freeze(self, by: str, reason: str, automatic: bool = False) -> State:
        with self._write() as db:
            self._freeze(db, Freeze(by, reason, self._clock(), automatic))
            return self._state(db)

    def unfreeze(self, by: str, reason: str) -> State:
        with self._write() as db:
            now = self._clock()
            changed = db.execute(
                "UPDATE meta SET frozen_by = NULL, frozen_reason = NULL, frozen_at = NULL,"
                " frozen_auto = NULL, unfrozen_at = ?, version = version + 1"
                " WHERE id = 1 AND frozen_by IS NOT NULL",
                (now,),
            ).rowcount
            if changed:
                self._append(db, chain.unfrozen(by, reason, now), now)
            return self._state(db)

    def history(self, limit: int = 50) -> Json:
        self._tally.flush()
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM transitions ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
            transitions = [mapping.transition(db, r).to_json() for r in rows]
            decisions = db.execute(
                "SELECT * FROM decisions ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return {
            "transitions": transitions,
            "decisions": [mapping.decision(d).to_json() for d in decisions],
        }

    def close(self) -> None:
        self._tally.flush()

    def ping(self) -> None:
        with self._read() as db:
            db.execute("SELECT version FROM meta WHERE id = 1").fetchone()
