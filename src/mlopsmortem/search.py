"""The one search implementation: keyword (FTS5 bm25), semantic (exact cosine) and hybrid (RRF).

Results are stories, each with the passage that matched best. Everything a caller (CLI, Datasette
plugin) needs is in `StoryHit`, whose `to_dict()` is JSON-ready.

Ranking, as measured by bench/search.py (quality section: 46 queries on the test knowledge base,
55 graded queries on the demo corpus; MRR of the first relevant story):

* keyword (mlopsmortem.keyword_search): quoted words joined by OR, bm25 with the title
  weighted 2, stories matching more of the words first (demo 0.900 -> 0.927); words found in
  many passages only re-score the passages matching the rarer ones (common terms).
* semantic: exact cosine of the query against every passage vector; a story scores its best
  passage.
* hybrid: reciprocal rank fusion (k=60) of the two story rankings (demo 0.970, above keyword
  0.927 and semantic 0.856). A story keyword search found gets a semantic vote only when its
  cosine is within 0.15 of the best story's, so a stray keyword match in an unrelated story
  cannot also collect a semantic vote and outrank a story that only semantic search found (test
  knowledge base 0.939 -> 0.975, demo unchanged). Tried and dropped: passage-level fusion, a
  bonus for more matching passages, RRF weighted by the share of words matched.
* similar: cosine between story vectors (normalised mean of normalised passage vectors).

Caches, all explicit and per process:

* `vector_index(db_path, model)` (functools.lru_cache, at most 8 entries) returns the
  `VectorIndex` for one database file and model: one contiguous float32 matrix of every current
  passage embedding, rows grouped by story. It reloads only when the embeddings changed: each
  call checks `PRAGMA data_version` (moves on other connections' commits) and
  `conn.total_changes` (moves on this connection's writes); only when one moved does it look at
  `count(*), max(rowid)` of `embeddings`, and it reloads only when those moved too (embed.py
  gives every written embedding a new, higher rowid).
* `embed_query` (functools.lru_cache, 1024 entries) keyed by (model, query text).
* the model itself, via `embed.load_model`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Literal

import numpy as np
import sqlite_utils

from mlopsmortem.embed import encode_texts, load_model, model_key
from mlopsmortem.errors import NotFoundError, SearchError
from mlopsmortem.keyword_search import (
    Ranked,
    StorySet,
    fts_query,
    highlight_spans,
    keyword_stage,
    make_snippet,
    mark_snippet,
    query_words,
    removed_ids,
)
from mlopsmortem.settings import DEFAULT_MODEL, Settings

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
LINK_STATUSES: tuple[str, ...] = (
    "live",
    "redirected",
    "dead",
    "archived",
    "blocked",
    "refused",
    "error",
)
EMPTY_DB_MESSAGE = (
    "the knowledge base has no passages yet: run `mlopsmortem crawl` to fetch, extract and "
    "index the stories first"
)


@dataclass(frozen=True)
class Tuning:
    """Ranking knobs, exposed for experiments only.

    The defaults were chosen on bench/quality.py (the demo corpus crawled end to end, 55
    graded queries), keeping the invented test knowledge base of tests/test_search.py green.
    nDCG@10 of hybrid: story RRF k60 margin .15, no coverage 0.932 (below keyword's 0.936);
    passage fusion 0.949 (fails two test paraphrases); story k20, coverage^2, margin .2 0.957
    (chosen; keyword 0.936, semantic 0.851). Differences under ~0.01 are within the noise of
    55 queries.
    """

    rrf_k: int = 20
    title_weight: float = 2.0  # bm25 weight of the title column (text column: 1.0)
    keyword_operator: Literal["OR", "AND"] = "OR"
    fusion: Literal["story", "passage"] = "story"
    passage_bonus: float = 0.0  # passage fusion: story = best + bonus * sum(other passages)
    candidates: int = 100  # stories (or passages) taken from each mode before fusing
    # keyword ranking: stories matching more of the query's words first, bm25 within a tier
    coverage_first: bool = True
    keyword_top: int | None = None  # passages read from FTS5 per query; None: max(200, 10 pool)
    # common terms (keyword_search module docstring): a word found in at least
    # max(common_min_rows, common_fraction * passages) passages only re-scores and counts
    # towards coverage of the passages matching the other words; None: always the full query
    common_fraction: float | None = 0.05
    common_min_rows: int = 1000
    # hybrid: a keyword rank counts coverage ** coverage_power (coverage = share of query words
    # matched); 0 = plain RRF
    coverage_power: float = 2.0
    coverage_idf: bool = False  # weight by the idf-weighted share of words instead
    # hybrid (story fusion): a story keyword search found gets a semantic vote only if its
    # cosine is within this margin of the best story's; None = always
    semantic_margin: float | None = 0.2
    similar_method: Literal["mean", "max"] = "mean"


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class StoryHit:
    """One story in a result list; `snippet_marked` is HTML-safe."""

    id: str
    url: str
    title: str | None
    publisher: str | None
    year: int | None
    kind: str | None
    category: str | None
    link_status: str | None
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    score: float
    rank: int  # 1-based position in the full result list (offset included)
    snippet: str
    snippet_marked: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) offsets into snippet
    passage_id: int | None
    matched_by: Literal["keyword", "semantic", "both"]

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["components"] = list(self.components)
        data["impacts"] = list(self.impacts)
        data["highlights"] = [list(h) for h in self.highlights]
        return data


# --------------------------------------------------------------------------- query embedding


@lru_cache(maxsize=1024)
def _embed_query_cached(model_name: str, text: str) -> np.ndarray:
    vector = encode_texts(load_model(model_name), [text], batch_size=1)[0]
    vector.setflags(write=False)
    return vector


def embed_query(text: str, model_name: str = DEFAULT_MODEL) -> np.ndarray:
    """The normalised query vector, cached per process by (model, text); read-only."""
    return _embed_query_cached(model_name, text)


# --------------------------------------------------------------------------- vector index


class IndexSnapshot:
    """Immutable view of the embeddings of one model at one moment, rows grouped by story."""

    def __init__(
        self,
        matrix: np.ndarray,
        passage_ids: np.ndarray,
        story_ids: tuple[str, ...],
        starts: np.ndarray,
    ) -> None:
        self.matrix = matrix
        self.passage_ids = passage_ids
        self.story_ids = story_ids
        self.starts = starts  # first row of each story; story i is rows starts[i]:ends[i]
        self.ends = np.append(starts[1:], len(passage_ids)).astype(np.int64)
        self.positions = {sid: i for i, sid in enumerate(story_ids)}
        for part in (matrix, passage_ids, starts, self.ends):
            part.setflags(write=False)

    @property
    def size(self) -> int:
        return len(self.passage_ids)

    @cached_property
    def story_means(self) -> np.ndarray:
        """Per story, the normalised mean of its normalised passage vectors (stories x dim)."""
        sums = np.add.reduceat(self.matrix, self.starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(sums / norms, dtype=np.float32)

    def story_mask(self, story_ids: Iterable[str], *, exclude: bool = False) -> np.ndarray:
        positions = [self.positions[s] for s in story_ids if s in self.positions]
        mask = np.full(len(self.story_ids), exclude, dtype=bool)
        mask[positions] = not exclude
        return mask

    def best_row(self, story: int, scores: np.ndarray) -> int:
        start, end = self.starts[story], self.ends[story]
        return int(start + np.argmax(scores[start:end]))


def _empty_snapshot() -> IndexSnapshot:
    return IndexSnapshot(
        np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), (), np.zeros(0, np.int64)
    )


class VectorIndex:
    """The in-memory vectors of one model in one database, reloaded only when they change.

    Thread-safe: `refresh` swaps in a new immutable snapshot under a lock."""

    MAX_CONNECTIONS = 16

    def __init__(self, model: str) -> None:
        self.model = model
        self.loads = 0  # how many times the vectors were read from the database
        self._lock = threading.Lock()
        self._snapshot: IndexSnapshot | None = None
        self._signature: tuple[int, int] | None = None
        # per connection (Datasette keeps one per thread): (connection, data_version,
        # total_changes) when the snapshot was last known current through it
        self._seen: OrderedDict[int, tuple[sqlite3.Connection, int, int]] = OrderedDict()

    def refresh(self, conn: sqlite3.Connection) -> IndexSnapshot:
        """The current snapshot, reloaded first if the embeddings changed since last time.

        Cheap path (a connection seen before, its data_version and total_changes unchanged since):
        one PRAGMA. Otherwise one `count(*), max(rowid)` query, and a reload only if that moved.
        Remembers the last MAX_CONNECTIONS connections (holding references to them)."""
        with self._lock:
            (data_version,) = conn.execute("PRAGMA data_version").fetchone()
            total_changes = conn.total_changes
            seen = self._seen.get(id(conn))
            if (
                self._snapshot is not None
                and seen is not None
                and seen[0] is conn
                and seen[1:] == (data_version, total_changes)
            ):
                self._seen.move_to_end(id(conn))
                return self._snapshot
            signature = tuple(
                conn.execute("SELECT count(*), coalesce(max(rowid), 0) FROM embeddings").fetchone()
            )
            if self._snapshot is None or signature != self._signature:
                self._snapshot = self._load(conn)
                self._signature = signature  # type: ignore[assignment]
                self.loads += 1
                # a reload is news to every other connection: they must check again
                self._seen.clear()
            self._seen[id(conn)] = (conn, data_version, total_changes)
            self._seen.move_to_end(id(conn))
            while len(self._seen) > self.MAX_CONNECTIONS:
                self._seen.popitem(last=False)
            return self._snapshot

    def _load(self, conn: sqlite3.Connection) -> IndexSnapshot:
        """Stream the current vectors into one buffer (peak memory ~ the matrix itself)."""
        cursor = conn.execute(
            "SELECT e.passage_id, p.story_id, e.vector FROM embeddings e"
            " JOIN passages p ON p.id = e.passage_id"
            " WHERE e.model = ? AND e.text_hash = p.text_hash ORDER BY p.story_id, p.seq",
            [self.model],
        )
        buffer = bytearray()
        passage_ids = array("q")
        story_ids: list[str] = []
        starts: list[int] = []
        width = 0
        for passage_id, story_id, blob in cursor:
            if not width:
                width = len(blob)
            if len(blob) != width or not width or width % 4:
                raise SearchError(
                    f"the stored embeddings of model {self.model!r} do not all have the same "
                    "dimension: re-embed with rebuild"
                )
            if not story_ids or story_id != story_ids[-1]:
                story_ids.append(story_id)
                starts.append(len(passage_ids))
            passage_ids.append(passage_id)
            buffer += blob
        if not passage_ids:
            return _empty_snapshot()
        matrix = np.frombuffer(buffer, dtype="<f4").reshape(len(passage_ids), width // 4)
        return IndexSnapshot(
            matrix.astype(np.float32, copy=False),
            np.frombuffer(passage_ids, dtype=np.int64).copy(),
            tuple(story_ids),
            np.array(starts, np.int64),
        )


@lru_cache(maxsize=8)
def _cached_index(db_path: str, model: str) -> VectorIndex:
    return VectorIndex(model)


def database_path(conn: sqlite3.Connection) -> str:
    """The main database file of a connection ('' for an in-memory database)."""
    for _, name, path in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return os.path.realpath(path) if path else ""
    return ""


def vector_index(db: sqlite_utils.Database, model: str) -> VectorIndex:
    """The process-wide VectorIndex of (database file, model); a fresh one for :memory:."""
    path = database_path(db.conn)
    return _cached_index(path, model_key(model)) if path else VectorIndex(model_key(model))


# --------------------------------------------------------------------------- filters


def _as_tuple(values: str | Iterable[str] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    return tuple(v.strip() for v in values if v is not None and v.strip())


_JSON_ARRAY = "CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END"


def _canonical(kind: str, requested: Sequence[str], valid: Iterable[str]) -> list[str]:
    by_lower = {v.lower(): v for v in valid if v}
    unknown = [r for r in requested if r.lower() not in by_lower]
    if unknown:
        choices = ", ".join(sorted(by_lower.values(), key=str.lower)) or "(none yet)"
        names = ", ".join(repr(u) for u in unknown)
        raise SearchError(f"unknown {kind} {names}; valid values: {choices}")
    return [by_lower[r.lower()] for r in requested]


def story_filter_sql(
    conn: sqlite3.Connection,
    *,
    components: str | Iterable[str] = (),
    impacts: str | Iterable[str] = (),
    since: int | None = None,
    sources: str | Iterable[str] = (),
    link_status: str | Iterable[str] = (),
) -> tuple[str, list[Any]]:
    """A WHERE condition on `stories s` for live stories passing every filter, with params.

    Every requested component and impact must be present (AND); sources and link statuses are
    alternatives (OR: a story has one link status). Values are matched case-insensitively
    against those in the database; an unknown one raises SearchError listing the valid ones."""
    clauses = ["s.removed_at IS NULL"]
    params: list[Any] = []
    for kind, column, values in (
        ("component", "components", _as_tuple(components)),
        ("impact", "impacts", _as_tuple(impacts)),
    ):
        if not values:
            continue
        array = _JSON_ARRAY.format(col=f"s.{column}")
        found: list[str] = []
        for value in values:  # the first story carrying it ends the scan (no DISTINCT over all)
            row = conn.execute(
                f"SELECT j.value FROM stories s, json_each({array}) j WHERE s.removed_at IS NULL"
                " AND j.type = 'text' AND lower(j.value) = lower(?) LIMIT 1",
                [value],
            ).fetchone()
            if row is None:  # unknown: raise, listing every valid value
                valid = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT DISTINCT j.value FROM stories s, json_each({array}) j"
                        " WHERE s.removed_at IS NULL AND j.type = 'text'"
                    )
                ]
                found = _canonical(kind, values, valid)
                break
            found.append(row[0])
        for value in found:
            clauses.append(f"EXISTS (SELECT 1 FROM json_each({array}) j WHERE j.value = ?)")
            params.append(value)
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, int):
            raise SearchError(f"since must be a year (an integer), not {since!r}")
        clauses.append("s.year >= ?")
        params.append(since)
    names = _as_tuple(sources)
    if names:
        valid = [r[0] for r in conn.execute("SELECT name FROM sources WHERE name IS NOT NULL")]
        wanted = _canonical("source", names, valid)
        clauses.append(
            "EXISTS (SELECT 1 FROM story_sources ss JOIN sources so ON so.id = ss.source_id"
            f" WHERE ss.story_id = s.id AND ss.removed_at IS NULL"
            f" AND so.name IN ({','.join('?' * len(wanted))}))"
        )
        params.extend(wanted)
    statuses = _as_tuple(link_status)
    if statuses:
        in_db = [r[0] for r in conn.execute("SELECT DISTINCT link_status FROM pages")]
        wanted = _canonical("link status", statuses, {*LINK_STATUSES, *filter(None, in_db)})
        clauses.append(
            "EXISTS (SELECT 1 FROM pages pg WHERE pg.story_id = s.id"
            f" AND pg.link_status IN ({','.join('?' * len(wanted))}))"
        )
        params.extend(wanted)
    return " AND ".join(clauses), params


# --------------------------------------------------------------------------- search


@dataclass
class _Candidate:
    story_id: str
    score: float = 0.0
    keyword_passage: int | None = None
    semantic_passage: int | None = None
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    passage_scores: dict[int, float] = field(default_factory=dict)

    @property
    def matched_by(self) -> Literal["keyword", "semantic", "both"]:
        if self.keyword_passage is not None and self.semantic_passage is not None:
            return "both"
        return "keyword" if self.keyword_passage is not None else "semantic"

    @property
    def passage_id(self) -> int | None:
        if self.passage_scores:
            return max(self.passage_scores, key=lambda p: self.passage_scores[p])
        return self.keyword_passage if self.keyword_passage is not None else self.semantic_passage


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


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest finite scores, best first (exact: argpartition then sort)."""
    finite = int(np.isfinite(scores).sum())
    k = min(k, finite)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < len(scores):
        idx = np.argpartition(-scores, k - 1)[:k]
    else:
        idx = np.arange(len(scores))
    return idx[np.lexsort((idx, -scores[idx]))]


UNRESOLVED = -1  # a semantic match whose best passage is looked up only if it is shown


def cosines(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector for unit vectors, single-threaded on purpose.

    A matrix-vector product is memory-bound: OpenBLAS's second thread gains little (4.1 against
    4.9 ms at 100k x 384) but then spins for ~0.1 s, which doubled the time of the FTS5 work of
    the next query on a 2-CPU machine. einsum runs numpy's own loop (5.1 ms) and leaves the other
    core alone."""
    return np.einsum("ij,j->i", matrix, vector)


def _semantic_stories(
    snapshot: IndexSnapshot, query_vector: np.ndarray, mask: np.ndarray, limit: int
) -> tuple[list[Ranked], np.ndarray]:
    """(story_id, UNRESOLVED, cosine) of the nearest stories (max over their passages), and the
    cosine of every row, from which `_resolve_passages` picks the best passage of shown hits."""
    sims = cosines(snapshot.matrix, query_vector)
    scores = np.maximum.reduceat(sims, snapshot.starts)
    scores[~mask] = -np.inf
    top = _top(scores, limit)
    return [
        Ranked(snapshot.story_ids[s], UNRESOLVED, score)
        for s, score in zip(top.tolist(), scores[top].tolist(), strict=True)
    ], sims


def _resolve_passages(
    candidates: Sequence[_Candidate], snapshot: IndexSnapshot, sims: np.ndarray
) -> None:
    for c in candidates:
        if c.keyword_passage is None and c.semantic_passage == UNRESOLVED:
            row = snapshot.best_row(snapshot.positions[c.story_id], sims)
            c.semantic_passage = int(snapshot.passage_ids[row])


def _semantic_passages(
    snapshot: IndexSnapshot, query_vector: np.ndarray, mask: np.ndarray, limit: int
) -> list[Ranked]:
    sims = cosines(snapshot.matrix, query_vector)
    row_mask = np.repeat(mask, snapshot.ends - snapshot.starts)
    sims[~row_mask] = -np.inf
    story_of_row = np.repeat(np.arange(len(snapshot.story_ids)), snapshot.ends - snapshot.starts)
    return [
        Ranked(snapshot.story_ids[story_of_row[r]], int(snapshot.passage_ids[r]), float(sims[r]))
        for r in _top(sims, limit)
    ]


def _keyword_weight(r: Ranked, tuning: Tuning) -> float:
    share = r.idf_coverage if tuning.coverage_idf else r.coverage
    return share**tuning.coverage_power


def _fuse_stories(
    keyword: Sequence[Ranked], semantic: Sequence[Ranked], tuning: Tuning
) -> list[_Candidate]:
    candidates: dict[str, _Candidate] = {}
    for rank, r in enumerate(keyword, start=1):
        c = candidates.setdefault(r.story_id, _Candidate(r.story_id))
        c.keyword_passage, c.keyword_rank = r.passage_id, rank
        c.score += _keyword_weight(r, tuning) / (tuning.rrf_k + rank)
    floor = -math.inf
    if tuning.semantic_margin is not None and semantic:
        floor = semantic[0].score - tuning.semantic_margin
    for rank, (story, passage, score, _, _) in enumerate(semantic, start=1):
        if score < floor and story in candidates:
            continue  # far from the best: no semantic vote for a story keyword search found
        c = candidates.setdefault(story, _Candidate(story))
        c.semantic_passage, c.semantic_rank = passage, rank
        c.score += 1.0 / (tuning.rrf_k + rank)
    return sorted(
        candidates.values(),
        key=lambda c: (-c.score, c.semantic_rank or math.inf, c.keyword_rank or math.inf),
    )


def _fuse_passages(
    keyword: Sequence[Ranked], semantic: Sequence[Ranked], tuning: Tuning
) -> list[_Candidate]:
    candidates: dict[str, _Candidate] = {}
    for source, hits in (("keyword", keyword), ("semantic", semantic)):
        for rank, r in enumerate(hits, start=1):
            story, passage = r.story_id, r.passage_id
            c = candidates.setdefault(story, _Candidate(story))
            if source == "keyword" and c.keyword_passage is None:
                c.keyword_passage, c.keyword_rank = passage, rank
            if source == "semantic" and c.semantic_passage is None:
                c.semantic_passage, c.semantic_rank = passage, rank
            weight = _keyword_weight(r, tuning) if source == "keyword" else 1.0
            c.passage_scores[passage] = c.passage_scores.get(passage, 0.0) + weight / (
                tuning.rrf_k + rank
            )
    for c in candidates.values():
        ordered = sorted(c.passage_scores.values(), reverse=True)
        c.score = ordered[0] + tuning.passage_bonus * sum(ordered[1:])
    return sorted(
        candidates.values(),
        key=lambda c: (-c.score, c.semantic_rank or math.inf, c.keyword_rank or math.inf),
    )


def _hydrate(
    conn: sqlite3.Connection,
    candidates: Sequence[_Candidate],
    match: str | None,
    first_rank: int,
) -> list[StoryHit]:
    if not candidates:
        return []
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
    passage_ids = [c.passage_id for c in candidates if c.passage_id is not None]
    pmarks = ",".join("?" * len(passage_ids))
    texts = {
        row[0]: row[1]
        for row in conn.execute(
            f"SELECT id, text FROM passages WHERE id IN ({pmarks})", passage_ids
        )
    }
    spans = highlight_spans(conn, match, texts) if match else {}
    hits = []
    for offset, c in enumerate(candidates):
        row = stories[c.story_id]
        text = texts.get(c.passage_id, "") if c.passage_id is not None else ""
        snippet, highlights = make_snippet(text, spans.get(c.passage_id or -1, []))
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
                passage_id=c.passage_id,
                matched_by=c.matched_by,
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
    rankings (score = sum of 1/(60 + rank)). Filters apply in every mode; results are stories.
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
    )
    if limit == 0:
        return []
    stories = StorySet.load(conn, where, params)
    clock.lap("filters")
    needed = offset + limit
    match = fts_query(text, tuning.keyword_operator)
    keyword: list[Ranked] = []
    semantic: list[Ranked] = []
    snapshot: IndexSnapshot | None = None
    sims: np.ndarray | None = None
    by_passage = mode == "hybrid" and tuning.fusion == "passage"
    pool = needed if mode == "semantic" else max(tuning.candidates, needed)
    # keyword (SQLite, one thread) before the vector scan: BLAS worker threads spin for a while
    # after a matrix product and slowed the FTS work that followed by up to 2x on 2 CPUs
    if mode in ("keyword", "hybrid") and match is not None:
        keyword = keyword_stage(
            conn, text, match, stories, needed=needed, pool=pool, tuning=tuning,
            by_passage=by_passage,
        )  # fmt: skip
        clock.lap("keyword")
    if mode in ("semantic", "hybrid"):
        model = model_key(settings.model_name)
        vector = embed_query(text, settings.model_name)
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
        if by_passage:
            semantic = _semantic_passages(snapshot, vector, mask, pool * 4)
        else:
            semantic, sims = _semantic_stories(snapshot, vector, mask, pool)
        clock.lap("scan")
    if mode == "keyword":
        ranked = [_Candidate(r.story_id, r.score, keyword_passage=r.passage_id) for r in keyword]
    elif mode == "semantic":
        ranked = [_Candidate(r.story_id, r.score, semantic_passage=r.passage_id) for r in semantic]
    elif by_passage:
        ranked = _fuse_passages(keyword, semantic, tuning)
    else:
        ranked = _fuse_stories(keyword, semantic, tuning)
    clock.lap("fusion")
    page = ranked[offset:needed]
    if sims is not None and snapshot is not None:
        _resolve_passages(page, snapshot, sims)
    hits = _hydrate(conn, page, match, offset + 1)
    clock.lap("hydrate")
    return hits


def similar(
    db: sqlite_utils.Database,
    story_id: str,
    *,
    settings: Settings,
    limit: int = 10,
    index: VectorIndex | None = None,
    tuning: Tuning = DEFAULT_TUNING,
) -> list[StoryHit]:
    """The live stories nearest to `story_id`, excluding itself.

    Story vector = normalised mean of its normalised passage vectors; score = cosine of story
    vectors (tuning.similar_method="max" instead uses the best passage pair). The snippet is the
    neighbour's passage closest to the story. NotFoundError for an unknown id; SearchError when
    the story has no embedded passages yet."""
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
    start, end = snapshot.starts[position], snapshot.ends[position]
    if tuning.similar_method == "max":
        pair = snapshot.matrix @ snapshot.matrix[start:end].T  # rows x own passages
        row_scores = pair.max(axis=1)
    else:
        row_scores = cosines(snapshot.matrix, snapshot.story_means[position])
    if tuning.similar_method == "max":
        scores = np.maximum.reduceat(row_scores, snapshot.starts)
    else:
        scores = cosines(snapshot.story_means, snapshot.story_means[position])
    scores = np.where(mask, scores, -np.inf)
    candidates = []
    for story in _top(scores, max(0, limit)):
        row = snapshot.best_row(int(story), row_scores)
        candidates.append(
            _Candidate(
                snapshot.story_ids[story],
                float(scores[story]),
                semantic_passage=int(snapshot.passage_ids[row]),
            )
        )
    return _hydrate(conn, candidates, None, 1)


__all__ = [
    "DEFAULT_TUNING",
    "EMPTY_DB_MESSAGE",
    "LINK_STATUSES",
    "MODES",
    "IndexSnapshot",
    "StoryHit",
    "Tuning",
    "VectorIndex",
    "database_path",
    "embed_query",
    "fts_query",
    "make_snippet",
    "mark_snippet",
    "query_words",
    "search",
    "similar",
    "story_filter_sql",
    "vector_index",
]
