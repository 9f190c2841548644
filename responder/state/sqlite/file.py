"""The SQLite store's file: per-thread connections and the transactions every part writes in."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from responder.state import chain
from responder.state.keys import AuditKeys
from responder.state.outbox import Notice
from responder.state.repeats import RepeatTally
from responder.state.sqlite import mapping
from responder.state.store import LeaseLost, StoreUnavailable
from responder.state.writelock import WriterLock


class SqliteFile:
    """One SQLite file: connections, snapshot reads, serialized writes, and what every write shares.

    Inside its transaction a write checks the fencing token, appends to the audit chain
    and queues its notices; the other parts of the store build on these.
    """

    path: Path
    _primary: str
    _clock: Callable[[], float]
    _busy: float
    _writer: WriterLock
    _local: threading.local
    _tally: RepeatTally
    _keys: AuditKeys | None  # None: events sealed with plain sha256 (tests of other things)

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

    def _check_token(self, db: sqlite3.Connection, token: int) -> None:
        lease = db.execute("SELECT token, expires_at FROM lease WHERE id = 1").fetchone()
        if lease["token"] != token or lease["expires_at"] <= self._clock():
            raise LeaseLost(f"fencing token {token} is stale (current {lease['token']})")

    @staticmethod
    def _enqueue(db: sqlite3.Connection, notices: Sequence[Notice]) -> None:
        for notice in notices:
            # OR IGNORE: a notice's id is its event's identity; the same event is told once.
            db.execute(
                "INSERT OR IGNORE INTO outbox (id, at, notice, pending) VALUES (?, ?, ?, 1)",
                (notice.id, notice.at, json.dumps(notice.to_store())),
            )

    def _append(
        self, db: sqlite3.Connection, pending: chain.Pending, at: float | None = None
    ) -> chain.Event:
        """Seal pending after the head and store it, in the caller's transaction.

        The first event sealed with a key the head was not sealed with follows a
        key_rotated event, which states the live state the chain vouches for from there.
        """
        meta = db.execute("SELECT * FROM meta WHERE id = 1").fetchone()
        head = chain.Head(meta["chain_seq"], meta["chain_hash"] or chain.GENESIS_PREV)
        key = None if self._keys is None else self._keys.current
        at = self._clock() if at is None else at
        if key is not None and head.seq > 0 and pending.type != chain.KEY_ROTATED:
            row = db.execute("SELECT key_id FROM audit WHERE seq = ?", (head.seq,)).fetchone()
            sealed_with = None if row is None else row["key_id"]
            if sealed_with != key.id:
                rotated = chain.key_rotated(sealed_with, key, mapping.live(meta))
                head = self._append(db, rotated, at).head
        event = chain.seal(head, at, pending, key)
        insert_event(db, event)
        db.execute(
            "UPDATE meta SET chain_seq = ?, chain_hash = ? WHERE id = 1", (event.seq, event.hash)
        )
        return event


def insert_event(db: sqlite3.Connection, event: chain.Event) -> None:
    """Store one sealed event as its row."""
    db.execute(
        "INSERT INTO audit (seq, at, type, subject, body, prev, hash, key_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.seq,
            event.at,
            event.type,
            event.subject,
            chain.canonical(event.body).decode("utf-8"),
            event.prev,
            event.hash,
            event.key_id,
        ),
    )
