"""Opening the database: WAL, foreign keys, migrations applied in order.

Two ways in: `open_db` for the commands that write (it creates the file and upgrades its
schema), `open_existing_db` for the commands that only read (the file must exist, it is opened
read-only and never created, converted to WAL or migrated). Both turn SQLite's failures to
open into a `DatabaseError` naming the file and the cause.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from mlopsmortem.errors import DatabaseError, NotFoundError
from mlopsmortem.migrations import MIGRATIONS

MIGRATIONS_TABLE = "_mlopsmortem_migrations"


def utcnow() -> str:
    """ISO-8601 UTC timestamp with seconds, the one time format in the database."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cannot_open(path: Path, err: sqlite3.Error) -> DatabaseError:
    """SQLite's terse "unable to open database file" as the cause a user can act on."""
    if str(path) != ":memory:" and not path.parent.is_dir():
        return DatabaseError(f"cannot open {path}: directory {path.parent} does not exist")
    if path.is_dir():
        return DatabaseError(f"cannot open {path}: it is a directory")
    if "not a database" in str(err):
        return DatabaseError(f"cannot open {path}: not an SQLite database")
    return DatabaseError(f"cannot open {path}: {err}")


def open_db(path: Path | str, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the knowledge base and bring its schema up to date.

    For commands that write. Raises `DatabaseError` when the file cannot be opened or created."""
    path = Path(path)
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:
        raise _cannot_open(path, err) from err
    # WAL with synchronous=NORMAL never corrupts and survives a crash of the process; only a
    # power loss can undo the last commits, which a re-crawl redoes. Each page is its own
    # transaction, so FULL (an fsync per page) would dominate an unchanged re-crawl.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    if migrate:
        apply_migrations(db)
    return db


def open_existing_db(path: Path | str) -> sqlite_utils.Database:
    """Open an existing knowledge base for reading only: never creates, converts or migrates.

    The connection is SQLite read-only (`mode=ro`), so nothing done through it can write.
    Raises `NotFoundError` ("PATH does not exist") when there is no file, `DatabaseError` when
    the file is not a knowledge base or its schema is older than this version (a read-only
    command does not upgrade it: a writing command such as `mlopsmortem crawl` does)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist: run `mlopsmortem crawl` first")
    try:
        conn = sqlite3.connect(
            path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30, check_same_thread=False
        )
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA busy_timeout=30000")
        done = applied_migrations(db)
    except sqlite3.Error as err:
        raise _cannot_open(path, err) from err
    pending = [number for number, _, _ in MIGRATIONS if number not in done]
    if pending:
        db.close()
        if not done:
            raise DatabaseError(
                f"{path} is not an mlopsmortem knowledge base: run `mlopsmortem crawl` first"
            )
        raise DatabaseError(
            f"{path} needs {len(pending)} schema upgrade(s) and this command only reads: "
            f"run `mlopsmortem crawl --db {path}` (or any writing command) to upgrade it"
        )
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
