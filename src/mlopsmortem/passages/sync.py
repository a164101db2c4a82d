"""Passages: the units that are embedded and full-text indexed.

Every live story gets one *card* passage (seq 0: title, publisher, kind, year, the list's summary
and tags) followed by *text* passages (seq 1..n) cut from its extracted document.

Chunking (`chunk_text`, the token counters) is `mlopsmortem.passages.chunking`; `sync_passages`
reserves the [CLS]/[SEP] special tokens out of `settings.passage_tokens`, so the model never
silently truncates a passage.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from mlopsmortem.incidents.types import TRIGGERS
from mlopsmortem.passages.chunking import (
    TokenCounter,
    chunk_text,
    token_counter,
)
from mlopsmortem.settings import Settings

SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the model around every passage
SYNC_STORIES_PER_TRANSACTION = 100


@dataclass(frozen=True)
class ListTags:
    """The hand-written 'involved' and 'impact' items of a story's list entries."""

    involved: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncCounts:
    stories: int = 0  # live stories looked at
    changed_stories: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- cards


def _json_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        text = " ".join(item.split())
        if text and text.lower() not in seen:
            seen[text.lower()] = text
    return list(seen.values())


def card_text(story: Mapping[str, Any], list_tags: ListTags | None = None) -> str:
    """The card passage of a story, one fact per line: what the lists say about it, then what its
    incident card adds (the summary and the triggers, when the story has a card)."""
    lines = []
    title = " ".join(str(story.get("title") or story.get("url") or "").split())
    if title:
        lines.append(title)
    meta = [
        str(v).strip()
        for v in (story.get("publisher"), story.get("kind"), story.get("year"))
        if v is not None and str(v).strip()
    ]
    if meta:
        lines.append(" · ".join(meta))
    summary = " ".join(str(story.get("summary") or "").split())
    if summary:
        lines.append(summary)
    incident = " ".join(str(story.get("incident_summary") or "").split())
    if incident and incident.lower() not in summary.lower():
        lines.append(incident)  # what happened, in the story's own words (incidents/)
    tags = list_tags or ListTags()
    triggers = [TRIGGERS.get(t, t) for t in _json_list(story.get("incident_triggers"))]
    for label, items in (
        ("Involved", tags.involved),
        ("Impact", tags.impact),
        ("Components", _json_list(story.get("components"))),
        ("Impacts", _json_list(story.get("impacts"))),
        ("Set off by", triggers),
    ):
        values = _unique(items)
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    return "\n".join(lines)


def list_tags_for(db: sqlite_utils.Database, story_id: str) -> ListTags:
    """Merge the involved/impact items of every live list entry of a story (first spelling wins)."""
    involved: list[str] = []
    impact: list[str] = []
    rows = db.execute(
        "SELECT list_involved, list_impact FROM story_sources"
        " WHERE story_id = ? AND removed_at IS NULL ORDER BY source_id, occurrence",
        [story_id],
    ).fetchall()
    for list_involved, list_impact in rows:
        involved.extend(_json_list(list_involved))
        impact.extend(_json_list(list_impact))
    return ListTags(tuple(_unique(involved)), tuple(_unique(impact)))


# --------------------------------------------------------------------------- sync


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Passage:
    seq: int
    kind: str
    text: str
    start: int | None
    end: int | None
    text_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_hash", text_hash(self.text))


def build_passages(
    story: Mapping[str, Any],
    list_tags: ListTags,
    document_text: str | None,
    *,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: TokenCounter,
) -> list[_Passage]:
    passages = [_Passage(0, "card", card_text(story, list_tags), None, None)]
    for seq, chunk in enumerate(
        chunk_text(
            document_text or "",
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
            count_tokens=count_tokens,
        ),
        start=1,
    ):
        passages.append(_Passage(seq, "text", chunk.text, chunk.start, chunk.end))
    return passages


def _delete_passages(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    for i in range(0, len(ids), 500):
        part = list(ids[i : i + 500])
        marks = ",".join("?" * len(part))
        conn.execute(f"DELETE FROM embeddings WHERE passage_id IN ({marks})", part)
        # a tag keeps its evidence snippet; only its pointer to the vanished passage goes
        conn.execute(f"UPDATE tags SET passage_id = NULL WHERE passage_id IN ({marks})", part)
        conn.execute(f"DELETE FROM passages_fts WHERE rowid IN ({marks})", part)
        conn.execute(f"DELETE FROM passages WHERE id IN ({marks})", part)


def _sync_story(
    conn: sqlite3.Connection, story_id: str, title: str, wanted: Sequence[_Passage]
) -> tuple[int, int, int, int]:
    """Apply the wanted passages of one story; returns (inserted, updated, deleted, unchanged)."""
    existing = {
        row[1]: row
        for row in conn.execute(
            'SELECT id, seq, text_hash, start, "end" FROM passages WHERE story_id = ?', [story_id]
        )
    }
    inserted = updated = unchanged = 0
    title_checked = False
    for passage in wanted:
        row = existing.pop(passage.seq, None)
        if row is None:
            cursor = conn.execute(
                'INSERT INTO passages (story_id, seq, kind, text, start, "end", text_hash)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [story_id, passage.seq, passage.kind, passage.text, passage.start, passage.end,
                 passage.text_hash],
            )  # fmt: skip
            conn.execute(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, ?)",
                [cursor.lastrowid, passage.text, title],
            )
            inserted += 1
        elif row[2] != passage.text_hash:
            conn.execute(
                'UPDATE passages SET kind = ?, text = ?, start = ?, "end" = ?, text_hash = ?'
                " WHERE id = ?",
                [passage.kind, passage.text, passage.start, passage.end, passage.text_hash, row[0]],
            )
            conn.execute(
                "UPDATE passages_fts SET text = ?, title = ? WHERE rowid = ?",
                [passage.text, title, row[0]],
            )
            updated += 1
            if passage.seq == 0 and not title_checked:
                # the title is part of the card: only a changed card can mean a changed title
                title_checked = True
                conn.execute(
                    "UPDATE passages_fts SET title = ? WHERE rowid IN"
                    " (SELECT id FROM passages WHERE story_id = ?) AND title IS NOT ?",
                    [title, story_id, title],
                )
        else:
            if (row[3], row[4]) != (passage.start, passage.end):
                conn.execute(
                    'UPDATE passages SET start = ?, "end" = ? WHERE id = ?',
                    [passage.start, passage.end, row[0]],
                )
            unchanged += 1
    surplus = [row[0] for row in existing.values()]
    if surplus:
        _delete_passages(conn, surplus)
    return inserted, updated, len(surplus), unchanged


def sync_passages(
    db: sqlite_utils.Database,
    story_ids: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    count_tokens: TokenCounter | None = None,
) -> SyncCounts:
    """Bring `passages` and `passages_fts` in line with stories, list entries and documents.

    Looks at every live story (or only `story_ids`), compares the wanted passages with the stored
    ones by (seq, text_hash), inserts new ones, updates changed ones in place (their old
    embedding stays until `embed_passages` notices the hash differs), deletes surplus ones with
    their embeddings and FTS rows. Passages and FTS rows change in the same transaction; one
    transaction per 100 stories. An unchanged story causes no write at all. Removed stories are
    skipped (their passages stay, search hides them).
    """
    settings = settings or Settings()
    count = count_tokens or token_counter(settings.model_name)
    max_tokens = max(1, settings.passage_tokens - SPECIAL_TOKENS)
    overlap = settings.passage_overlap_tokens
    conn = db.conn
    if story_ids is None:
        ids = [r[0] for r in conn.execute("SELECT id FROM stories WHERE removed_at IS NULL")]
    else:
        wanted_ids = list(dict.fromkeys(story_ids))
        ids = []
        for i in range(0, len(wanted_ids), 500):
            part = wanted_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            ids.extend(
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM stories WHERE removed_at IS NULL AND id IN ({marks})", part
                )
            )
    totals = [0, 0, 0, 0, 0]  # changed stories, inserted, updated, deleted, unchanged
    for i in range(0, len(ids), SYNC_STORIES_PER_TRANSACTION):
        part = ids[i : i + SYNC_STORIES_PER_TRANSACTION]
        marks = ",".join("?" * len(part))
        stories = {
            row["id"]: row for row in db.query(f"SELECT * FROM stories WHERE id IN ({marks})", part)
        }
        documents = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                f"SELECT story_id, text, title FROM documents WHERE story_id IN ({marks})", part
            )
        }
        cards = {
            row[0]: {"incident_summary": row[1], "incident_triggers": row[2]}
            for row in conn.execute(
                "SELECT story_id, summary, triggers FROM incident_cards"
                f" WHERE story_id IN ({marks})",
                part,
            )
        }
        with conn:
            for story_id in part:
                story = {**stories[story_id], **cards.get(story_id, {})}
                doc_text, doc_title = documents.get(story_id, (None, None))
                title = story.get("title") or doc_title or story.get("url") or ""
                wanted = build_passages(
                    {**story, "title": title},
                    list_tags_for(db, story_id),
                    doc_text,
                    max_tokens=max_tokens,
                    overlap_tokens=overlap,
                    count_tokens=count,
                )
                ins, upd, dele, same = _sync_story(conn, story_id, title, wanted)
                totals[0] += bool(ins or upd or dele)
                for k, v in enumerate((ins, upd, dele, same), start=1):
                    totals[k] += v
    return SyncCounts(len(ids), *totals)
