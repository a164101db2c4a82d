"""Opening the database: WAL, foreign keys, migrations applied in order."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from mlopsmortem.migrations import MIGRATIONS

MIGRATIONS_TABLE = "_mlopsmortem_migrations"


def utcnow() -> str:
    """ISO-8601 UTC timestamp with seconds, the one time format in the database."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_db(path: Path | str, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the knowledge base and bring its schema up to date."""
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL never corrupts and survives a crash of the process; only a
    # power loss can undo the last commits, which a re-crawl redoes. Each page is its own
    # transaction, so FULL (an fsync per page) would dominate an unchanged re-crawl.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    if migrate:
        apply_migrations(db)
    return db


def applied_migrations(db: sqlite_utils.Database) -> set[int]:
    if MIGRATIONS_TABLE not in db.table_names():
        return set()
    return {row["number"] for row in db[MIGRATIONS_TABLE].rows}


def apply_migrations(db: sqlite_utils.Database) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction."""
    if MIGRATIONS_TABLE not in db.table_names():
        db[MIGRATIONS_TABLE].create(
            {"number": int, "name": str, "applied_at": str}, pk="number", if_not_exists=True
        )
    done = applied_migrations(db)
    newly: list[int] = []
    for number, name, fn in sorted(MIGRATIONS, key=lambda m: m[0]):
        if number in done:
            continue
        with db.conn:
            fn(db)
            db[MIGRATIONS_TABLE].insert({"number": number, "name": name, "applied_at": utcnow()})
        newly.append(number)
    return newly
