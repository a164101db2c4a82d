"""Browsing by filters: the stories passing the filters, with no query, newest first.

What the search page and `/-/search.json` answer when they get filters and no `q` (the
explore page's matrix cells, a story page's trigger and detection chips). Nothing is ranked:
stories come by year (newest first, unknown years last), then title. The filters are the
search's (`mlopsmortem.search.filters`); each hit is a `StoryHit` as `search` returns it, with
its incident card (`mlopsmortem.search.cards`). Its snippet is the list's summary of the story,
else the start of its first text passage (then `passage_id` names it); score 0, no highlights.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from mlopsmortem.errors import SearchError
from mlopsmortem.search.cards import NO_CARD, card_fields
from mlopsmortem.search.filters import story_filter_sql
from mlopsmortem.search.snippets import make_snippet, mark_snippet
from mlopsmortem.search.types import StoryHit
from mlopsmortem.settings import Settings

NO_FILTER_MESSAGE = (
    "empty query and no filter: type a few words, e.g. 'lost logs fluent-bit', or choose a "
    "component, impact, trigger, detection, duration, year, source list or link status"
)
# newest first; a story without a year after those with one; then by title, then id (stable)
_ORDER = "ORDER BY s.year IS NULL, s.year DESC, coalesce(s.title, s.url) COLLATE NOCASE, s.id"


def _values(values: str | Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = (values,)
    return [v for v in values if v is not None and v.strip()]


def _strings(value: object) -> tuple[str, ...]:
    """A JSON array column (components, impacts) as strings; () when unreadable."""
    try:
        data = json.loads(value) if isinstance(value, str) and value else []
    except json.JSONDecodeError:
        return ()
    return tuple(str(v) for v in data) if isinstance(data, list) else ()


def has_filter(
    *,
    since: int | None = None,
    **filters: str | Iterable[str] | None,
) -> bool:
    """Whether any filter is set: `since`, or a non-blank value of another filter keyword."""
    return since is not None or any(_values(v) for v in filters.values())


def _first_passages(conn: sqlite3.Connection, story_ids: list[str]) -> dict[str, tuple[int, str]]:
    """Each story's first text passage (id, text), for stories whose list gives no summary."""
    if not story_ids:
        return {}
    marks = ",".join("?" * len(story_ids))
    rows = conn.execute(
        "SELECT p.story_id, p.id, p.text FROM passages p"
        " JOIN (SELECT story_id, min(seq) AS seq FROM passages"
        f"  WHERE kind = 'text' AND story_id IN ({marks}) GROUP BY story_id) f"
        " ON f.story_id = p.story_id AND f.seq = p.seq",
        story_ids,
    ).fetchall()
    return {str(story_id): (int(pid), text or "") for story_id, pid, text in rows}


def browse(
    db: sqlite_utils.Database,
    *,
    settings: Settings | None = None,
    components: str | Iterable[str] = (),
    impacts: str | Iterable[str] = (),
    triggers: str | Iterable[str] = (),
    detections: str | Iterable[str] = (),
    durations: str | Iterable[str] = (),
    since: int | None = None,
    sources: str | Iterable[str] = (),
    link_status: str | Iterable[str] = (),
    limit: int = 10,
    offset: int = 0,
) -> list[StoryHit]:
    """The live stories passing the filters, newest first (year descending, then title), as
    `StoryHit`s ranked offset + 1, offset + 2, ...

    The filters are `search`'s (components, impacts and triggers AND, the others OR; values
    matched case-insensitively). At least one is required: none is the SearchError an empty
    query is. An unknown filter value or a negative limit or offset is a SearchError too.
    `settings` is accepted for symmetry with `search` and not needed (nothing is embedded).
    Each hit has score 0.0, `matched_by` "filters" (nothing was searched), no highlights,
    and as its snippet the
    list's summary, else the start of its first text passage (`passage_id` then names it)."""
    filters: dict[str, Any] = {
        "components": components,
        "impacts": impacts,
        "triggers": triggers,
        "detections": detections,
        "durations": durations,
        "sources": sources,
        "link_status": link_status,
    }
    if not has_filter(since=since, **filters):
        raise SearchError(NO_FILTER_MESSAGE)
    if limit < 0 or offset < 0:
        raise SearchError("limit and offset must not be negative")
    conn = db.conn
    where, params = story_filter_sql(conn, since=since, **filters)
    if limit == 0:
        return []
    rows = conn.execute(
        "SELECT s.id, s.url, s.title, s.publisher, s.year, s.kind, s.category, s.components,"
        " s.impacts, pg.link_status, s.summary FROM stories s"
        f" LEFT JOIN pages pg ON pg.story_id = s.id WHERE {where} {_ORDER} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    story_ids = [str(row[0]) for row in rows]
    summaries = {
        str(row[0]): row[10].strip() for row in rows if isinstance(row[10], str) and row[10].strip()
    }
    passages = _first_passages(conn, [i for i in story_ids if i not in summaries])
    cards = card_fields(conn, story_ids)
    hits = []
    for position, row in enumerate(rows):
        story_id = story_ids[position]
        passage_id: int | None = None
        if story_id in summaries:
            text = summaries[story_id]
        elif story_id in passages:
            passage_id, text = passages[story_id]
        else:
            text = ""
        snippet, _ = make_snippet(text, ())
        card = cards.get(story_id, NO_CARD)
        hits.append(
            StoryHit(
                id=story_id,
                url=row[1],
                title=row[2],
                publisher=row[3],
                year=row[4],
                kind=row[5],
                category=row[6],
                link_status=row[9],
                components=_strings(row[7]),
                impacts=_strings(row[8]),
                score=0.0,
                rank=offset + position + 1,
                snippet=snippet,
                snippet_marked=mark_snippet(snippet, ()),
                highlights=(),
                passage_id=passage_id,
                matched_by="filters",
                summary=card.summary,
                triggers=card.triggers,
                detection=card.detection,
                duration_minutes=card.duration_minutes,
            )
        )
    return hits
