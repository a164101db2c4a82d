"""The one search implementation: keyword (FTS5 bm25), semantic (exact cosine) and hybrid (RRF).

Results are stories, each with the passage that matched best. Everything a caller (CLI, Datasette
plugin) needs is in `StoryHit`, whose `to_dict()` is JSON-ready.

* keyword (`mlopsmortem.search.keyword`): the query's words as quoted phrases joined by OR, bm25
  with the title weighted, stories matching more of the words first; words found in many
  passages only re-score the passages matching the rarer ones (common terms).
* semantic (`mlopsmortem.search.vectors`): exact cosine of the query against every passage
  vector; a story scores its best passage.
* hybrid (`mlopsmortem.search.fusion`): reciprocal rank fusion of the two story rankings.
* similar: cosine between story vectors (normalised mean of normalised passage vectors).

This module checks the request, applies the filters (`mlopsmortem.search.filters`), runs the
stages in order and reads the shown stories back (hydration) with their snippets
(`mlopsmortem.search.snippets`). How the ranking was chosen: docs/search.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

import numpy as np
import sqlite_utils

from mlopsmortem.errors import NotFoundError, SearchError
from mlopsmortem.passages.embed import model_key
from mlopsmortem.search.cards import NO_CARD, card_fields
from mlopsmortem.search.filters import story_filter_sql
from mlopsmortem.search.fusion import fuse_stories
from mlopsmortem.search.keyword import (
    StorySet,
    fts_phrases,
    fts_query,
    keyword_stage,
    removed_ids,
)
from mlopsmortem.search.snippets import (
    highlight_spans,
    make_snippet,
    mark_snippet,
    text_passages_for_cards,
    text_passages_with_words,
)
from mlopsmortem.search.types import (
    DEFAULT_TUNING,
    MODES,
    Candidate,
    Mode,
    Ranked,
    StoryHit,
    Tuning,
)
from mlopsmortem.search.vectors import (
    UNRESOLVED,
    IndexSnapshot,
    VectorIndex,
    cosines,
    database_path,
    embed_query,
    semantic_stories,
    top_k,
    vector_index,
)
from mlopsmortem.settings import Settings

EMPTY_DB_MESSAGE = (
    "the knowledge base has no passages yet: run `mlopsmortem crawl` to fetch, extract and "
    "index the stories first"
)


# --------------------------------------------------------------------------- search


def _check_query(query: str, settings: Settings) -> str:
    text = (query or "").strip()
    if not text:
        raise SearchError("empty query: type a few words, e.g. 'lost logs fluent-bit'")
    if len(text) > settings.max_query_chars:
        raise SearchError(
            f"query is {len(text)} characters long; the limit is {settings.max_query_chars}"
        )
    return text


def _require_passages(conn: sqlite3.Connection) -> None:
    if conn.execute("SELECT 1 FROM passages LIMIT 1").fetchone() is None:
        raise SearchError(EMPTY_DB_MESSAGE)


def _allowed_mask(
    snapshot: IndexSnapshot,
    stories: StorySet,
) -> np.ndarray:
    return snapshot.story_mask(stories.ids, exclude=not stories.filtered)


def _resolve_passages(
    candidates: Sequence[Candidate], snapshot: IndexSnapshot, sims: np.ndarray
) -> None:
    for c in candidates:
        if c.keyword_passage is None and c.semantic_passage == UNRESOLVED:
            row = snapshot.best_row(snapshot.positions[c.story_id], sims)
            c.semantic_passage = int(snapshot.passage_ids[row])


def _hydrate(
    conn: sqlite3.Connection,
    candidates: Sequence[Candidate],
    match: str | None,
    first_rank: int,
    shown: dict[str, int] | None = None,
) -> list[StoryHit]:
    """StoryHits of the candidates; each shows its chosen passage, or shown[story id]."""
    if not candidates:
        return []
    shown = shown or {}
    story_ids = [c.story_id for c in candidates]
    marks = ",".join("?" * len(story_ids))
    stories = {
        row[0]: row
        for row in conn.execute(
            "SELECT s.id, s.url, s.title, s.publisher, s.year, s.kind, s.category, s.components,"
            " s.impacts, pg.link_status FROM stories s LEFT JOIN pages pg ON pg.story_id = s.id"
            f" WHERE s.id IN ({marks})",
            story_ids,
        )
    }
    passage_of = {c.story_id: shown.get(c.story_id, c.passage_id) for c in candidates}
    passage_ids = [p for p in passage_of.values() if p is not None]
    pmarks = ",".join("?" * len(passage_ids))
    texts = {
        row[0]: row[1]
        for row in conn.execute(
            f"SELECT id, text FROM passages WHERE id IN ({pmarks})", passage_ids
        )
    }
    spans = highlight_spans(conn, match, texts) if match else {}
    cards = card_fields(conn, story_ids)
    hits = []
    for offset, c in enumerate(candidates):
        row = stories[c.story_id]
        card = cards.get(c.story_id, NO_CARD)
        passage_id = passage_of[c.story_id]
        text = texts.get(passage_id, "") if passage_id is not None else ""
        snippet, highlights = make_snippet(text, spans.get(passage_id or -1, []))
        hits.append(
            StoryHit(
                id=row[0],
                url=row[1],
                title=row[2],
                publisher=row[3],
                year=row[4],
                kind=row[5],
                category=row[6],
                link_status=row[9],
                components=tuple(_json_strings(row[7])),
                impacts=tuple(_json_strings(row[8])),
                score=c.score,
                rank=first_rank + offset,
                snippet=snippet,
                snippet_marked=mark_snippet(snippet, highlights),
                highlights=highlights,
                passage_id=passage_id,
                matched_by=c.matched_by,
                summary=card.summary,
                triggers=card.triggers,
                detection=card.detection,
                duration_minutes=card.duration_minutes,
            )
        )
    return hits


def _json_strings(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return []
    return [str(v) for v in data] if isinstance(data, list) else []


class _Stopwatch:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def search(
    db: sqlite_utils.Database,
    query: str,
    *,
    settings: Settings,
    mode: Mode = "hybrid",
    components: str | Iterable[str] = (),
    impacts: str | Iterable[str] = (),
    since: int | None = None,
    sources: str | Iterable[str] = (),
    link_status: str | Iterable[str] = (),
    triggers: str | Iterable[str] = (),
    detections: str | Iterable[str] = (),
    durations: str | Iterable[str] = (),
    limit: int = 10,
    offset: int = 0,
    index: VectorIndex | None = None,
    tuning: Tuning = DEFAULT_TUNING,
    timings: dict[str, float] | None = None,
) -> list[StoryHit]:
    """Stories matching `query`, best first, each with its best passage as a snippet.

    mode: "keyword" ranks by words matched, then FTS5 bm25 (score = number of query words the
    story matched + -bm25/(1 + -bm25) of its best passage); "semantic" by the cosine of the best
    passage (score = cosine); "hybrid" (default) by reciprocal rank fusion of the two story
    rankings (score = sum of weighted 1/(tuning.rrf_k + rank), mlopsmortem.search.fusion).
    Filters apply in every mode (mlopsmortem.search.filters: components, impacts and triggers
    AND, the others OR); results are stories, each with its incident card's summary, triggers,
    detection and duration (mlopsmortem.search.cards).
    `index` defaults to the process-wide `vector_index(db, settings.model_name)`; `timings`,
    when given, receives seconds per stage (filters, embed, refresh, scan, keyword, fusion,
    hydrate). Raises SearchError on an empty or over-long query, an unknown mode or filter
    value, an empty knowledge base, or (semantic/hybrid) no embeddings for the model.
    """
    clock = _Stopwatch(timings)
    text = _check_query(query, settings)
    if mode not in MODES:
        raise SearchError(f"unknown search mode {mode!r}; valid modes: {', '.join(MODES)}")
    if limit < 0 or offset < 0:
        raise SearchError("limit and offset must not be negative")
    conn = db.conn
    _require_passages(conn)
    where, params = story_filter_sql(
        conn,
        components=components,
        impacts=impacts,
        since=since,
        sources=sources,
        link_status=link_status,
        triggers=triggers,
        detections=detections,
        durations=durations,
    )
    if limit == 0:
        return []
    stories = StorySet.load(conn, where, params)
    clock.lap("filters")
    needed = offset + limit
    match = fts_query(text)
    keyword: list[Ranked] = []
    semantic: list[Ranked] = []
    snapshot: IndexSnapshot | None = None
    sims: np.ndarray | None = None
    pool = needed if mode == "semantic" else max(tuning.candidates, needed)
    # keyword (SQLite, one thread) before the vector scan: BLAS worker threads spin for a while
    # after a matrix product and slow the FTS work that follows on a machine with few CPUs
    if mode in ("keyword", "hybrid") and match is not None:
        keyword = keyword_stage(conn, text, match, stories, needed=needed, pool=pool, tuning=tuning)
        clock.lap("keyword")
    if mode in ("semantic", "hybrid"):
        model = model_key(settings.model_name)
        vector = embed_query(text, settings.model_name, database_path(conn), settings.query_encoder)
        clock.lap("embed")
        snapshot = (index or vector_index(db, model)).refresh(conn)
        if snapshot.size == 0:
            raise SearchError(
                f"no passage has an embedding for model {model!r} yet: run `mlopsmortem crawl` "
                "(or `mlopsmortem embed`) first, or search with mode 'keyword'"
            )
        if vector.shape[0] != snapshot.matrix.shape[1]:
            raise SearchError(
                f"the query vector has {vector.shape[0]} dimensions but the stored embeddings "
                f"of {model!r} have {snapshot.matrix.shape[1]}: re-embed with rebuild"
            )
        mask = _allowed_mask(snapshot, stories)
        clock.lap("refresh")
        semantic, sims = semantic_stories(snapshot, vector, mask, pool)
        clock.lap("scan")
    if mode == "keyword":
        ranked = [Candidate(r.story_id, r.score, keyword_passage=r.passage_id) for r in keyword]
    elif mode == "semantic":
        ranked = [Candidate(r.story_id, r.score, semantic_passage=r.passage_id) for r in semantic]
    else:
        ranked = fuse_stories(keyword, semantic, tuning)
    clock.lap("fusion")
    page = ranked[offset:needed]
    if sims is not None and snapshot is not None:
        _resolve_passages(page, snapshot, sims)
    chosen = {c.story_id: c.passage_id for c in page if c.passage_id is not None}
    if sims is not None:
        shown = text_passages_for_cards(conn, chosen, snapshot, sims)
    else:
        shown = text_passages_with_words(conn, chosen, fts_phrases(text))
    hits = _hydrate(conn, page, match, offset + 1, shown)
    clock.lap("hydrate")
    return hits


def similar(
    db: sqlite_utils.Database,
    story_id: str,
    *,
    settings: Settings,
    limit: int = 10,
    index: VectorIndex | None = None,
) -> list[StoryHit]:
    """The live stories nearest to `story_id`, excluding itself.

    Story vector = normalised mean of its normalised passage vectors; score = cosine of story
    vectors. The snippet is the neighbour's passage closest to the story. NotFoundError for an
    unknown id; SearchError when the story has no embedded passages yet."""
    conn = db.conn
    if conn.execute("SELECT 1 FROM stories WHERE id = ?", [story_id]).fetchone() is None:
        raise NotFoundError(f"no story with id {story_id!r}")
    model = model_key(settings.model_name)
    snapshot = (index or vector_index(db, model)).refresh(conn)
    position = snapshot.positions.get(story_id)
    if position is None:
        raise SearchError(
            f"story {story_id!r} has no embedded passages for model {model!r} yet: "
            "run `mlopsmortem crawl` (or `mlopsmortem embed`) first"
        )
    mask = snapshot.story_mask([*removed_ids(conn), story_id], exclude=True)
    row_scores = cosines(snapshot.matrix, snapshot.story_means[position])
    scores = cosines(snapshot.story_means, snapshot.story_means[position])
    scores = np.where(mask, scores, -np.inf)
    candidates = []
    for story in top_k(scores, max(0, limit)):
        row = snapshot.best_row(int(story), row_scores)
        candidates.append(
            Candidate(
                snapshot.story_ids[story],
                float(scores[story]),
                semantic_passage=int(snapshot.passage_ids[row]),
            )
        )
    return _hydrate(conn, candidates, None, 1)
