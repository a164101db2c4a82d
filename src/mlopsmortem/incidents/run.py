"""The incident-card stage: `build_cards` re-derives the cards of stories whose inputs changed.

A card's inputs are the story's title, its document text (by hash), its list summary and the
extractor version; an unchanged story is skipped, so an unchanged crawl costs one query. Cards
of stories that left the lists, or that have neither text nor a list summary, are dropped.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

import sqlite_utils

from mlopsmortem.incidents.extract import EXTRACTOR_VERSION, PassageSpan, build_card
from mlopsmortem.incidents.store import delete_cards, stored_input_hashes, write_cards
from mlopsmortem.incidents.types import IncidentCard

STORIES_PER_TRANSACTION = 100


class CardProgress(Protocol):
    """What `build_cards` reports progress to (`progress.ProgressBar` fits)."""

    def start(self, total: int) -> None: ...

    def advance(self, *, error: bool = False) -> None: ...


@dataclass(frozen=True)
class CardReport:
    stories: int  # live stories with text or a list summary
    built: int  # cards (re)derived in this run
    unchanged: int
    removed: int
    with_summary: int  # of the built cards: how many found each field
    with_triggers: int
    with_detection: int
    with_duration: int
    extractor_version: str
    seconds: float


def _input_hash(title: str, text_hash: str, summary: str) -> str:
    digest = hashlib.sha256()
    for part in (EXTRACTOR_VERSION, title, text_hash, summary):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def build_cards(
    db: sqlite_utils.Database,
    *,
    rebuild: bool = False,
    progress: CardProgress | None = None,
) -> CardReport:
    """Derive the cards of live stories whose inputs changed (every card with `rebuild`)."""
    started = time.monotonic()
    conn = db.conn
    wanted: dict[str, str] = {}
    for sid, title, text_hash, summary in conn.execute(
        "SELECT s.id, coalesce(nullif(d.title, ''), s.title, ''), coalesce(d.text_hash, ''),"
        " coalesce(s.summary, '') FROM stories s LEFT JOIN documents d ON d.story_id = s.id"
        " WHERE s.removed_at IS NULL AND (d.text_hash IS NOT NULL OR s.summary <> '')"
    ):
        wanted[sid] = _input_hash(title, text_hash, summary)
    stored = stored_input_hashes(conn)
    stale = [sid for sid in stored if sid not in wanted]
    todo = [
        sid for sid, digest in wanted.items() if rebuild or stored.get(sid, ("", ""))[0] != digest
    ]
    if progress is not None:
        progress.start(len(todo))
    counts = {"summary": 0, "triggers": 0, "detection": 0, "duration": 0}
    for offset in range(0, len(todo), STORIES_PER_TRANSACTION):
        batch = todo[offset : offset + STORIES_PER_TRANSACTION]
        cards: list[tuple[IncidentCard, str]] = []
        for sid in batch:
            card = _derive(conn, sid)
            if card is not None:
                cards.append((card, wanted[sid]))
                counts["summary"] += card.summary is not None
                counts["triggers"] += bool(card.triggers)
                counts["detection"] += card.detection is not None
                counts["duration"] += card.duration_minutes is not None
            if progress is not None:
                progress.advance()
        with db.conn:
            write_cards(db, cards, EXTRACTOR_VERSION)
    if stale:
        with db.conn:
            delete_cards(db, stale)
    return CardReport(
        stories=len(wanted),
        built=len(todo),
        unchanged=len(wanted) - len(todo),
        removed=len(stale),
        with_summary=counts["summary"],
        with_triggers=counts["triggers"],
        with_detection=counts["detection"],
        with_duration=counts["duration"],
        extractor_version=EXTRACTOR_VERSION,
        seconds=round(time.monotonic() - started, 3),
    )


def _derive(conn: sqlite3.Connection, story_id: str) -> IncidentCard | None:
    row = conn.execute(
        "SELECT coalesce(nullif(d.title, ''), s.title, ''), coalesce(d.text, ''),"
        " coalesce(s.summary, '') FROM stories s LEFT JOIN documents d ON d.story_id = s.id"
        " WHERE s.id = ?",
        [story_id],
    ).fetchone()
    title, text, summary = row
    passages = [
        PassageSpan(pid, start, end)
        for pid, start, end in conn.execute(
            "SELECT id, start, \"end\" FROM passages WHERE story_id = ? AND kind = 'text'"
            " ORDER BY seq",
            [story_id],
        )
    ]
    return build_card(story_id, title, text, summary, passages)
