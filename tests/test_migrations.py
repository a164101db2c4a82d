"""Schema migrations: numbered, applied once, and upgrading a database made by older code."""

import sqlite3

import sqlite_utils

from mlopsmortem.db import MIGRATIONS_TABLE, applied_migrations, apply_migrations, open_db
from mlopsmortem.migrations import MIGRATIONS


def test_migrations_are_numbered_in_order_without_gaps() -> None:
    numbers = [number for number, _, _ in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))


def test_open_applies_each_migration_once(tmp_path) -> None:
    open_db(tmp_path / "kb.db").close()
    db = open_db(tmp_path / "kb.db")
    assert applied_migrations(db) == {number for number, _, _ in MIGRATIONS}
    assert apply_migrations(db) == []
    assert db[MIGRATIONS_TABLE].count == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bodies_stored_by_older_code_move_to_page_bodies(tmp_path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    db[MIGRATIONS_TABLE].create({"number": int, "name": str, "applied_at": str}, pk="number")
    for number, name, migrate in MIGRATIONS:
        if number < 6:  # the schema as it was before bodies had their own table
            migrate(db)
            db[MIGRATIONS_TABLE].insert({"number": number, "name": name, "applied_at": "x"})
    db["stories"].insert({"id": "s1", "url": "https://a.example/1"})
    db["pages"].insert({"story_id": "s1", "url": "https://a.example/1", "body": b"zlib bytes"})
    db.conn.commit()
    db.close()

    upgraded = open_db(path)
    assert "body" not in upgraded["pages"].columns_dict
    assert upgraded["page_bodies"].get("s1")["body"] == b"zlib bytes"
    assert upgraded["pages"].get("s1")["url"] == "https://a.example/1"
