"""The SQLite store's reconciler lease: acquired, renewed and released with a fencing token."""

from __future__ import annotations

from responder.state.records import Lease
from responder.state.sqlite.file import SqliteFile
from responder.state.store import LeaseLost


class SqliteLease(SqliteFile):
    """The reconciler lease, one row."""

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
