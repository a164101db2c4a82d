"""Tagging test helpers: stories written into a real database, the shipped taxonomy copied
to a temporary data dir, and the real model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from mlopsmortem.db import open_db, utcnow
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.store import (
    story_tag_rows,
)

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class S:
    """A story as the ingest and crawl stages would have stored it."""

    id: str
    title: str
    text: str = ""
    involved: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()
    removed: bool = False
    summary: str = ""  # the list's summary (a danluu entry); with no text, what is read


def build(path: Path, stories: tuple[S, ...]) -> sqlite_utils.Database:
    db = open_db(path)
    now = utcnow()
    with db.conn:
        db["sources"].insert({"id": 1, "name": "list", "location": "https://example.org/l.md"})
        for line, story in enumerate(stories, start=1):
            add_story(db, story, line, now)
    return db


def add_story(db: sqlite_utils.Database, story: S, line: int, now: str) -> None:
    url = f"https://example.org/{story.id}"
    db["stories"].insert(
        {
            "id": story.id,
            "url": url,
            "canonical_url": url,
            "category": "failure story",
            "title": story.title,
            "summary": story.summary or None,
            "first_seen": now,
            "last_seen": now,
            "removed_at": now if story.removed else None,
        }
    )
    db["story_sources"].insert(
        {
            "story_id": story.id,
            "source_id": 1,
            "occurrence": 0,
            "line": line,
            "list_url": url,
            "list_title": story.title,
            "list_involved": json.dumps(list(story.involved)),
            "list_impact": json.dumps(list(story.impact)),
            "first_seen": now,
            "last_seen": now,
        }
    )
    if story.text:
        set_text(db, story.id, story.text)


def set_text(db: sqlite_utils.Database, story_id: str, text: str) -> None:
    import hashlib

    with db.conn:
        db["documents"].upsert(
            {
                "story_id": story_id,
                "title": None,
                "text": text,
                "word_count": len(text.split()),
                "text_hash": hashlib.sha256(text.encode()).hexdigest(),
            },
            pk="story_id",
        )


def facets(db: sqlite_utils.Database, story_id: str) -> tuple[list[str], list[str]]:
    row = db.execute("SELECT components, impacts FROM stories WHERE id = ?", [story_id]).fetchone()
    return json.loads(row[0]), json.loads(row[1])


def by_method(db: sqlite_utils.Database, story_id: str, method: str) -> set[str]:
    return {r["tag"] for r in story_tag_rows(db, story_id) if r["method"] == method}


def edit_taxonomy(settings: Settings, old: str, new: str) -> None:
    path = settings.taxonomy_file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
