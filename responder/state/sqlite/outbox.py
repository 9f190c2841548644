"""The SQLite store's outbox: the notices waiting to be told, claimed and updated by a sender."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from responder.state.outbox import Notice
from responder.state.sqlite.file import SqliteFile
from responder.state.store import LeaseLost


class SqliteOutbox(SqliteFile):
    """The notices a write queued, claimed one at a time by a sender."""

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
