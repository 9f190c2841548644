"""The embedded state store: one SQLite file, safe across threads, workers and processes.

Every write is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
lock up front, so a compare-and-set reads and writes without interleaving.
A connection is opened per call: nothing is shared across gunicorn's fork.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from responder.state import chain
from responder.state.base import (
    VERIFIED_RESULTS,
    Approval,
    Attempts,
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    Json,
    Lease,
    LeaseLost,
    NewTransition,
    Operation,
    PhaseInputs,
    State,
    StateStore,
    StepRecord,
    StoreUnavailable,
    TransitionKind,
    TransitionRecord,
    UnknownTransition,
    blocks_phase,
    clears_block,
    desired_region,
    failures_from_store,
    phase,
    repeat_key,
)
from responder.state.outbox import Announce, Notice, announced
from responder.state.repeats import Handle, RepeatTally, anew
from responder.state.writelock import WriterLock

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    active_region TEXT NOT NULL,
    version INTEGER NOT NULL,
    frozen_by TEXT, frozen_reason TEXT, frozen_at REAL, frozen_auto INTEGER,
    unfrozen_at REAL,
    last_blocked_at REAL
);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL, from_region TEXT, to_region TEXT NOT NULL,
    result TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    cause TEXT NOT NULL, data_at_risk REAL, dry_run INTEGER NOT NULL, error TEXT,
    deadline_at REAL, attempts TEXT, operations TEXT NOT NULL DEFAULT '[]',
    revision INTEGER NOT NULL DEFAULT 0, approval TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transition_id TEXT NOT NULL REFERENCES transitions(id),
    action TEXT NOT NULL, result TEXT NOT NULL,
    before TEXT, after TEXT, error TEXT, at REAL NOT NULL,
    attempts INTEGER NOT NULL, fencing_token INTEGER, rollback INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS steps_by_transition ON steps(transition_id);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, at REAL NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,
    region TEXT, to_region TEXT, transition_kind TEXT, cause TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, at REAL NOT NULL, notice TEXT NOT NULL, pending INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(pending);
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT, token INTEGER NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
    body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
);
"""
# Columns added since the first release: (table, column, declaration), for files made before.
ADDED_COLUMNS = (
    ("transitions", "deadline_at", "REAL"),
    ("transitions", "attempts", "TEXT"),
    ("transitions", "operations", "TEXT NOT NULL DEFAULT '[]'"),
    ("transitions", "revision", "INTEGER NOT NULL DEFAULT 0"),
    ("steps", "rollback", "INTEGER NOT NULL DEFAULT 0"),
    ("transitions", "approval", "TEXT"),
    ("steps", "started_at", "REAL"),
    ("steps", "failures", "TEXT"),
    ("transitions", "evidence", "TEXT"),
    ("decisions", "count", "INTEGER NOT NULL DEFAULT 1"),
    ("decisions", "last_at", "REAL"),
    ("decisions", "repeat_key", "TEXT"),
    ("meta", "chain_seq", "INTEGER NOT NULL DEFAULT 0"),
    ("meta", "chain_hash", "TEXT"),
    ("meta", "chain_anchor", "TEXT"),
)
# Indexes on added columns: created once the columns exist.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_by_repeat ON decisions(repeat_key)",
    "CREATE INDEX IF NOT EXISTS audit_by_at ON audit(at)",
)
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


class SqliteStore(StateStore):
    """StateStore on one SQLite file; primary is the active region of a new store."""

    def __init__(
        self,
        path: str | Path,
        primary: str,
        clock: Callable[[], float] = time.time,
        busy_timeout_seconds: float = 5.0,
    ) -> None:
        self.path = Path(path)
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
            _add_missing_columns(db)
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

    # -- connections -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, reopened after a fork or when the file was replaced.

        Connections are kept, not opened per call: closing the last connection to a
        WAL database checkpoints it, an fsync on every call.
        """
        local = self._local
        try:
            inode = os.stat(self.path).st_ino
        except OSError as exc:
            raise StoreUnavailable(f"state store {self.path}: {exc.strerror}") from None
        db = getattr(local, "db", None)
        if db is not None and (local.pid, local.inode) == (os.getpid(), inode):
            return db
        if db is not None and local.pid == os.getpid():
            db.close()
        local.db = None  # a connection from before a fork is abandoned, never used
        try:
            db = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA schema_version").fetchone()  # fails now if the file is unusable
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"state store {self.path}: {exc}") from None
        local.db, local.pid, local.inode = db, os.getpid(), inode
        return db

    def _drop(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            db.execute("BEGIN")  # one snapshot for all reads of the call
            try:
                yield db
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._drop()
            raise StoreUnavailable(f"state store {self.path}: {exc}") from None

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._writer.held():
            yield from self._transaction(durable)

    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            # FULL syncs every commit (transitions, steps, lease, freeze survive power loss).
            # NORMAL, for decisions that changed nothing, survives a process crash and
            # skips the fsync, so a burst of duplicate webhooks does not queue on the disk.
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._local.stored = None
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._drop()
            raise StoreUnavailable(f"state store {self.path}: {exc}") from None

    # -- row mapping -------------------------------------------------------

    @staticmethod
    def _step(row: sqlite3.Row) -> StepRecord:
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
            failures=failures_from_store(_loads(row["failures"])),
        )

    @staticmethod
    def _decision(row: sqlite3.Row) -> DecisionRecord:
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

    def _transition(self, db: sqlite3.Connection, row: sqlite3.Row) -> TransitionRecord:
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
            steps=tuple(self._step(s) for s in steps),
            deadline_at=row["deadline_at"],
            attempts=Attempts.from_store(_loads(row["attempts"])),
            operations=tuple(Operation.from_store(o) for o in json.loads(row["operations"])),
            revision=row["revision"],
            approval=Approval.from_store(_loads(row["approval"])),
            evidence=_loads(row["evidence"]),
        )

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
            self._transition(db, rows[0]) if rows else None,
            completed,
            tuple(r[0] for r in starts),
        )

    @staticmethod
    def _state_at(stored: _StoredState, now: float) -> State:
        """The state as of now: the phase and the recent starts depend on the time."""
        meta, last = stored.meta, stored.last
        running = last if last is not None and last.in_progress else None
        frozen = None
        if meta["frozen_by"] is not None:
            frozen = Freeze(
                meta["frozen_by"],
                meta["frozen_reason"],
                meta["frozen_at"],
                bool(meta["frozen_auto"]),
            )
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

    # -- StateStore --------------------------------------------------------

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
                    _dumps(new.evidence),
                ),
            )
            db.execute("UPDATE meta SET version = version + 1 WHERE id = 1")
            record = self._reread(db, transition_id)
            self._append(db, chain.begun(record), record.started_at)
            self._enqueue(db, announced(announce, record))
            return record

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
        return self._decision(row)

    def _check_token(self, db: sqlite3.Connection, token: int) -> None:
        lease = db.execute("SELECT token, expires_at FROM lease WHERE id = 1").fetchone()
        if lease["token"] != token or lease["expires_at"] <= self._clock():
            raise LeaseLost(f"fencing token {token} is stale (current {lease['token']})")

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
            # Steps run one at a time: once one is journaled, nothing is in trouble.
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
    ) -> None:
        with self._write() as db:
            self._check_token(db, fencing_token)
            self._running(db, transition_id)
            self._set_attempts(db, transition_id, attempts)
            self._append(db, chain.attempted(transition_id, attempts))
            self._enqueue(db, notices)

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
        return self._transition(db, row)

    @staticmethod
    def _enqueue(db: sqlite3.Connection, notices: Sequence[Notice]) -> None:
        for notice in notices:
            # OR IGNORE: a notice's id is its event's identity; the same event is told once.
            db.execute(
                "INSERT OR IGNORE INTO outbox (id, at, notice, pending) VALUES (?, ?, ?, 1)",
                (notice.id, notice.at, json.dumps(notice.to_store())),
            )

    def notices(self, now: float, limit: int = 50) -> list[Notice]:
        with self._read() as db:
            rows = db.execute(
                "SELECT notice FROM outbox WHERE pending = 1 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Notice.from_store(json.loads(r["notice"])) for r in rows]

    def claim_notice(self, notice_id: str, holder: str, until: float, now: float) -> Notice | None:
        with self._write(durable=False) as db:
            row = db.execute("SELECT notice FROM outbox WHERE id = ?", (notice_id,)).fetchone()
            if row is None:
                return None
            notice = Notice.from_store(json.loads(row["notice"]))
            if notice.claim_until > now or not notice.due(now):
                return None
            claimed = replace(notice, claimed_by=holder, claim_until=until)
            self._save_notice(db, claimed)
            return claimed

    def update_notice(self, notice: Notice, holder: str) -> None:
        with self._write() as db:
            row = db.execute("SELECT notice FROM outbox WHERE id = ?", (notice.id,)).fetchone()
            if row is None or json.loads(row["notice"]).get("claimed_by") != holder:
                raise LeaseLost(f"notice {notice.id} is not claimed by {holder}")
            self._save_notice(db, replace(notice, claimed_by=None, claim_until=0.0))

    @staticmethod
    def _save_notice(db: sqlite3.Connection, notice: Notice) -> None:
        pending = any(d.state == "pending" for d in notice.deliveries.values())
        db.execute(
            "UPDATE outbox SET notice = ?, pending = ? WHERE id = ?",
            (json.dumps(notice.to_store()), int(pending), notice.id),
        )

    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        with self._read() as db:
            row = db.execute("SELECT * FROM transitions WHERE id = ?", (transition_id,)).fetchone()
            if row is None:
                return {}
            return self._transition(db, row).done_steps()

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
                "UPDATE transitions SET result = ?, finished_at = ?, error = ?,"
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
            return self._transition(db, row)

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
            transitions = [self._transition(db, r).to_json() for r in rows]
            decisions = db.execute(
                "SELECT * FROM decisions ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return {
            "transitions": transitions,
            "decisions": [self._decision(d).to_json() for d in decisions],
        }

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
            step = self._step(row)
            out[step.action] = {
                "result": step.result,
                "at": step.to_json()["at"],
                "transition_id": row["transition_id"],
                "error": step.error,
                "region": regions.get(step.action),
            }
        return out

    def acquire_lease(self, holder: str, ttl_seconds: float) -> Lease | None:
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM lease WHERE id = 1").fetchone()
            mine = row["holder"] == holder and row["expires_at"] > now
            if row["holder"] is not None and row["expires_at"] > now and not mine:
                return None
            token = row["token"] if mine else row["token"] + 1
            db.execute(
                "UPDATE lease SET holder = ?, token = ?, expires_at = ? WHERE id = 1",
                (holder, token, now + ttl_seconds),
            )
            return Lease(holder, token, now + ttl_seconds)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM lease WHERE id = 1").fetchone()
            if (
                row["holder"] != lease.holder
                or row["token"] != lease.token
                or row["expires_at"] <= now
            ):
                raise LeaseLost(f"lease of {lease.holder} (token {lease.token}) is lost")
            db.execute("UPDATE lease SET expires_at = ? WHERE id = 1", (now + ttl_seconds,))
        return Lease(lease.holder, lease.token, now + ttl_seconds)

    def release_lease(self, lease: Lease) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE lease SET holder = NULL, expires_at = 0 WHERE id = 1 AND holder = ?"
                " AND token = ?",
                (lease.holder, lease.token),
            )

    def close(self) -> None:
        self._tally.flush()

    def prune(self, before: float) -> int:
        self._tally.flush()
        old_decisions = "SELECT id FROM decisions WHERE at < ?"
        old = (
            "SELECT id FROM transitions WHERE result != 'in_progress' AND started_at < ?"
            " AND seq < (SELECT MAX(seq) FROM transitions)"
        )
        with self._write(durable=False) as db:
            kept = {
                r[0]
                for r in db.execute(
                    f"SELECT id FROM decisions WHERE id NOT IN ({old_decisions})"
                    f" UNION SELECT id FROM transitions WHERE id NOT IN ({old})",
                    (before, before),
                )
            }
            anchor = self._anchor(db)
            events = (
                self._event(r)
                for r in db.execute("SELECT * FROM audit WHERE seq > ? ORDER BY seq", (anchor.seq,))
            )
            moved = chain.prune_anchor(events, anchor, before, kept)
            gone = db.execute(f"DELETE FROM decisions WHERE id IN ({old_decisions})", (before,))
            records = gone.rowcount
            db.execute(f"DELETE FROM steps WHERE transition_id IN ({old})", (before,))
            records += db.execute(
                f"DELETE FROM transitions WHERE id IN ({old})", (before,)
            ).rowcount
            db.execute("DELETE FROM outbox WHERE pending = 0 AND at < ?", (before,))
            dropped = db.execute("DELETE FROM audit WHERE seq <= ?", (moved.seq,)).rowcount
            if records or dropped:
                db.execute(
                    "UPDATE meta SET chain_anchor = ? WHERE id = 1", (_dumps(moved.to_json()),)
                )
                self._append(db, chain.pruned(records, moved))
        return int(records)

    # -- the audit chain -------------------------------------------------------

    def _start_chain(self, db: sqlite3.Connection) -> None:
        """Begin the chain of a new file, or of one written before the chain existed."""
        if db.execute("SELECT chain_anchor FROM meta WHERE id = 1").fetchone()[0] is not None:
            return
        held = db.execute(
            "SELECT (SELECT COUNT(*) FROM decisions) + (SELECT COUNT(*) FROM transitions)"
        ).fetchone()[0]
        now = self._clock()
        anchor = chain.start(now, fresh=held == 0)
        db.execute("UPDATE meta SET chain_anchor = ? WHERE id = 1", (_dumps(anchor.to_json()),))
        self._append(db, chain.genesis(anchor.fresh), now)

    @staticmethod
    def _anchor(db: sqlite3.Connection) -> chain.Anchor:
        text = db.execute("SELECT chain_anchor FROM meta WHERE id = 1").fetchone()[0]
        return chain.Anchor.from_json(json.loads(text))

    def _append(
        self, db: sqlite3.Connection, pending: chain.Pending, at: float | None = None
    ) -> chain.Event:
        """Seal pending after the head and store it, in the caller's transaction."""
        meta = db.execute("SELECT chain_seq, chain_hash FROM meta WHERE id = 1").fetchone()
        head = chain.Head(meta["chain_seq"], meta["chain_hash"] or chain.GENESIS_PREV)
        event = chain.seal(head, self._clock() if at is None else at, pending)
        db.execute(
            "INSERT INTO audit (seq, at, type, subject, body, prev, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.seq,
                event.at,
                event.type,
                event.subject,
                chain.canonical(event.body).decode("utf-8"),
                event.prev,
                event.hash,
            ),
        )
        db.execute(
            "UPDATE meta SET chain_seq = ?, chain_hash = ? WHERE id = 1", (event.seq, event.hash)
        )
        return event

    @staticmethod
    def _event(row: sqlite3.Row) -> chain.Event:
        return chain.Event(
            row["seq"],
            row["at"],
            row["type"],
            row["subject"],
            json.loads(row["body"]),
            row["prev"],
            row["hash"],
        )

    def audit_log(self) -> chain.AuditLog:
        self._tally.flush()
        with self._read() as db:
            meta = db.execute("SELECT chain_seq, chain_hash FROM meta WHERE id = 1").fetchone()
            anchor = self._anchor(db)
            events = db.execute(
                "SELECT * FROM audit WHERE seq > ? ORDER BY seq", (anchor.seq,)
            ).fetchall()
            decisions = db.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            transitions = db.execute("SELECT * FROM transitions ORDER BY seq").fetchall()
            return chain.AuditLog(
                head=chain.Head(meta["chain_seq"], meta["chain_hash"] or chain.GENESIS_PREV),
                anchor=anchor,
                events=tuple(self._event(r) for r in events),
                decisions=tuple(self._decision(r) for r in decisions),
                transitions=tuple(self._transition(db, r) for r in transitions),
            )

    def audit_events(self, since: float = 0.0) -> Iterator[chain.Event]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM audit WHERE at >= ? ORDER BY seq", (since,)).fetchall()
        return iter([self._event(r) for r in rows])

    def ping(self) -> None:
        with self._read() as db:
            db.execute("SELECT version FROM meta WHERE id = 1").fetchone()


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a state file written by an earlier release up to the current schema."""
    for table, column, declaration in ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
