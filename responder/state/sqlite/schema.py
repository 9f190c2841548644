"""The SQLite file's schema, and the columns and indexes added to files made before."""

from __future__ import annotations

import sqlite3

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
    ("audit", "key_id", "TEXT"),
    ("transitions", "in_flight", "TEXT"),
)
# Indexes on added columns: created once the columns exist.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_by_repeat ON decisions(repeat_key)",
    "CREATE INDEX IF NOT EXISTS audit_by_at ON audit(at)",
)


def add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a state file written by an earlier release up to the current schema."""
    for table, column, declaration in ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
