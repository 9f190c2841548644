"""The SQLite store's audit chain: its start, the log and events read back, and pruning."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from responder.state import chain
from responder.state.sqlite import mapping
from responder.state.sqlite.file import SqliteFile


class SqliteAudit(SqliteFile):
    """The audit chain of the file, and pruning the history it covers."""

    def _start_chain(self, db: sqlite3.Connection) -> None:
        """Begin the chain of a new file, or of one written before the chain existed."""
        if db.execute("SELECT chain_anchor FROM meta WHERE id = 1").fetchone()[0] is not None:
            return
        held = db.execute(
            "SELECT (SELECT COUNT(*) FROM decisions) + (SELECT COUNT(*) FROM transitions)"
        ).fetchone()[0]
        now = self._clock()
        anchor = chain.start(now, fresh=held == 0)
        db.execute(
            "UPDATE meta SET chain_anchor = ? WHERE id = 1", (mapping.dumps(anchor.to_json()),)
        )
        meta = db.execute("SELECT * FROM meta WHERE id = 1").fetchone()
        self._append(db, chain.genesis(anchor.fresh, mapping.live(meta)), now)

    @staticmethod
    def _anchor(db: sqlite3.Connection) -> chain.Anchor:
        text = db.execute("SELECT chain_anchor FROM meta WHERE id = 1").fetchone()[0]
        return chain.Anchor.from_json(json.loads(text))

    def audit_log(self) -> chain.AuditLog:
        self._tally.flush()
        with self._read() as db:
            meta = db.execute("SELECT * FROM meta WHERE id = 1").fetchone()
            anchor = self._anchor(db)
            events = db.execute(
                "SELECT * FROM audit WHERE seq > ? ORDER BY seq", (anchor.seq,)
            ).fetchall()
            decisions = db.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            transitions = db.execute("SELECT * FROM transitions ORDER BY seq").fetchall()
            last = db.execute(
                "SELECT id, result FROM transitions ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            running = last["id"] if last is not None and last["result"] == "in_progress" else None
            return chain.AuditLog(
                head=chain.Head(meta["chain_seq"], meta["chain_hash"] or chain.GENESIS_PREV),
                anchor=anchor,
                events=tuple(mapping.event(r) for r in events),
                decisions=tuple(mapping.decision(r) for r in decisions),
                transitions=tuple(mapping.transition(db, r) for r in transitions),
                live=chain.Live(meta["active_region"], mapping.freeze(meta), running),
            )

    def audit_events(self, since: float = 0.0) -> Iterator[chain.Event]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM audit WHERE at >= ? ORDER BY seq", (since,)).fetchall()
        return iter([mapping.event(r) for r in rows])

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
                mapping.event(r)
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
                    "UPDATE meta SET chain_anchor = ? WHERE id = 1",
                    (mapping.dumps(moved.to_json()),),
                )
                meta = db.execute("SELECT * FROM meta WHERE id = 1").fetchone()
                self._append(db, chain.pruned(records, moved, mapping.live(meta)))
        return int(records)
