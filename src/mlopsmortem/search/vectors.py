"""The semantic side of search: query vectors, the in-memory passage vectors, exact cosine scans.

Caches, all explicit and per process:

* `vector_index(db_path, model)` (functools.lru_cache, at most 8 entries) returns the
  `VectorIndex` for one database file and model: one contiguous float32 matrix of every current
  passage embedding, rows grouped by story. It reloads only when the embeddings changed: each
  call checks `PRAGMA data_version` (moves on other connections' commits) and
  `conn.total_changes` (moves on this connection's writes); only when one moved does it look at
  `count(*), max(rowid)` of `embeddings`, and it reloads only when those moved too (embed.py
  gives every written embedding a new, higher rowid).
* `embed_query` (least recently used, 1024 entries) keyed by (model, query text);
  `cached_query_vector` looks a vector up without computing it.
* the encoders, via `passages.encoder.query_encoder` (ONNX export or sentence-transformers).

The scan (`semantic_stories`) is exact: every row of the matrix is scored.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from functools import cached_property, lru_cache

import numpy as np
import sqlite_utils

from mlopsmortem.errors import SearchError
from mlopsmortem.passages.embed import model_key
from mlopsmortem.passages.encoder import query_encoder
from mlopsmortem.search.types import Ranked
from mlopsmortem.settings import DEFAULT_MODEL

# --------------------------------------------------------------------------- query embedding


QUERY_CACHE_SIZE = 1024
_query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_query_lock = threading.Lock()


def cached_query_vector(text: str, model_name: str = DEFAULT_MODEL) -> np.ndarray | None:
    """The vector embed_query(text, model_name) would return, if it is in the cache; else None.

    Never loads the model nor embeds: the plugin asks this before handing a query to a worker
    thread to embed, and skips that thread hop when the vector is already here."""
    key = (model_name, text)
    with _query_lock:
        vector = _query_vectors.get(key)
        if vector is not None:
            _query_vectors.move_to_end(key)
        return vector


def embed_query(
    text: str,
    model_name: str = DEFAULT_MODEL,
    db_path: str = "",
    encoder: str = "auto",
    immutable: bool = False,
) -> np.ndarray:
    """The normalised query vector, cached per process by (model, text); read-only.

    Embedded by `passages.encoder.query_encoder(db_path, model_name, encoder, immutable)`: the
    ONNX export stored in the database file db_path when there is one (no torch), else
    sentence-transformers.
    Both give the same vector (cosine >= 0.9999, tests/test_query_encoder.py), hence one cache."""
    vector = cached_query_vector(text, model_name)
    if vector is not None:
        return vector
    vector = query_encoder(db_path, model_name, encoder, immutable).embed(text)
    vector.setflags(write=False)
    with _query_lock:
        # a concurrent call may have embedded the same text meanwhile: keep the first vector
        vector = _query_vectors.setdefault((model_name, text), vector)
        while len(_query_vectors) > QUERY_CACHE_SIZE:
            _query_vectors.popitem(last=False)
    return vector


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


# --------------------------------------------------------------------------- scans


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
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

    A matrix-vector product is memory-bound: a second BLAS thread gains little, then spins after
    the product and slows the SQLite work of the next query on a small machine. einsum runs
    numpy's own loop and leaves the other cores alone (docs/search.md)."""
    return np.einsum("ij,j->i", matrix, vector)


def semantic_stories(
    snapshot: IndexSnapshot, query_vector: np.ndarray, mask: np.ndarray, limit: int
) -> tuple[list[Ranked], np.ndarray]:
    """(story_id, UNRESOLVED, cosine) of the nearest stories (max over their passages), and the
    cosine of every row, from which search's `_resolve_passages` picks the best passage of shown
    hits."""
    sims = cosines(snapshot.matrix, query_vector)
    scores = np.maximum.reduceat(sims, snapshot.starts)
    scores[~mask] = -np.inf
    top = top_k(scores, limit)
    return [
        Ranked(snapshot.story_ids[s], UNRESOLVED, score)
        for s, score in zip(top.tolist(), scores[top].tolist(), strict=True)
    ], sims
