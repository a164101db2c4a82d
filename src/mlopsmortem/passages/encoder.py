"""Query encoders: one short text at a time to a normalised vector, without torch when possible.

A knowledge base stores, per model, an ONNX export of the model's transformer and the model's
own tokenizer.json in the table `query_encoders` (made by `passages.encoder_export` when passages
are embedded, or by `mlopsmortem embed --encoder`). `query_encoder(db_path, model_name)` returns
an `OnnxEncoder` on it (onnxruntime + tokenizers; mean pooling and L2 normalisation in numpy,
as sentence-transformers' Pooling and Normalize modules do), else a `TorchEncoder` on the
sentence-transformers model, and logs that fallback once per model and database.

Caches (functools.lru_cache, per process): `_onnx_encoder` by (database file, model key, ONNX
hash), so a rebuilt export is picked up and never mixed with a stale one; `_fallback_notice` so
the fallback is logged once. Importing this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mlopsmortem.passages.embed import encode_texts, load_model, model_key

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

log = logging.getLogger(__name__)

ENCODER_CHOICES = ("auto", "onnx", "torch")


class QueryEncoder(Protocol):
    """What search needs of an encoder: `kind` ("onnx" or "torch") and `embed`."""

    kind: str

    def embed(self, text: str) -> np.ndarray:
        """The L2-normalised float32 vector of one text, shape (dimension,)."""
        ...


@dataclass(frozen=True)
class StoredEncoder:
    """The `query_encoders` row of one model, without its bytes."""

    model: str
    model_hash: str
    onnx_sha256: str
    max_seq_length: int
    dimension: int


def stored_encoder(conn: sqlite3.Connection, key: str) -> StoredEncoder | None:
    """The stored encoder of model key `key`, or None (no row, or a database before migration 9)."""
    try:
        row = conn.execute(
            "SELECT model, model_hash, onnx_sha256, max_seq_length, dimension"
            " FROM query_encoders WHERE model = ?",
            [key],
        ).fetchone()
    except sqlite3.OperationalError as exc:  # no such table: not migrated yet
        if "no such table" in str(exc):
            return None
        raise
    return StoredEncoder(*row) if row else None


def _read_only(db_path: str, immutable: bool = False) -> sqlite3.Connection:
    """A read-only connection to a database file. `immutable` (a file served with `datasette
    -i`, which nobody writes): opened so that nothing is written beside it, no -wal or -shm."""
    uri = Path(db_path).resolve().as_uri()
    if immutable:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:  # WAL file without a writable directory or -shm
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


class OnnxEncoder:
    """The ONNX export of a sentence-transformers model (Transformer, mean Pooling, Normalize)."""

    kind = "onnx"

    def __init__(self, onnx: bytes, tokenizer_json: str, max_seq_length: int) -> None:
        import onnxruntime
        import tokenizers

        tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        tokenizer.no_padding()  # one text at a time: no padding to 128 as shipped
        tokenizer.enable_truncation(max_seq_length)
        options = onnxruntime.SessionOptions()
        # one short query at a time: one thread is as fast, and leaves the other cores alone
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._tokenizer: tokenizers.Tokenizer = tokenizer
        self._session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            onnx, options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, text: str) -> np.ndarray:
        """The normalised vector of text: token embeddings, mean over the attention mask, L2."""
        encoding = self._tokenizer.encode(text)
        feeds: dict[str, Any] = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (hidden,) = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        mask = feeds["attention_mask"][0].astype(np.float32)[:, None]
        pooled = (hidden[0] * mask).sum(axis=0) / max(float(mask.sum()), 1e-9)
        norm = float(np.linalg.norm(pooled))
        return (pooled / max(norm, 1e-12)).astype(np.float32)


class TorchEncoder:
    """The sentence-transformers model itself (loads torch)."""

    kind = "torch"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def embed(self, text: str) -> np.ndarray:
        """The normalised vector of text, as passages are embedded."""
        return encode_texts(load_model(self.model_name), [text], batch_size=1)[0]


@lru_cache(maxsize=4)
def _onnx_encoder(db_path: str, key: str, onnx_sha256: str, immutable: bool) -> OnnxEncoder:
    conn = _read_only(db_path, immutable)
    try:
        row = conn.execute(
            "SELECT onnx, tokenizer, max_seq_length FROM query_encoders"
            " WHERE model = ? AND onnx_sha256 = ?",
            [key, onnx_sha256],
        ).fetchone()
    finally:
        conn.close()
    if row is None:  # replaced between the two reads: the caller's next lookup finds the new one
        raise LookupError(f"the query encoder of {key!r} changed while it was loaded")
    return OnnxEncoder(bytes(row[0]), row[1], int(row[2]))


@lru_cache(maxsize=16)
def _fallback_notice(db_path: str, key: str) -> None:
    log.warning(
        "%s has no ONNX query encoder for model %r: embedding queries with sentence-transformers "
        "(slower; `mlopsmortem embed --encoder` makes one)",
        db_path or "the database",
        key,
    )


def query_encoder(
    db_path: str, model_name: str, prefer: str = "auto", immutable: bool = False
) -> QueryEncoder:
    """The encoder for queries against the embeddings of `model_name` in the database `db_path`.

    prefer "auto": the stored ONNX export when there is one, else sentence-transformers (logged
    once per database and model); "onnx": the export or a LookupError; "torch": always
    sentence-transformers (the baseline the benchmark compares with). db_path "" (an in-memory
    database) has no stored encoder; `immutable` reads the file as `datasette -i` serves it."""
    if prefer not in ENCODER_CHOICES:
        raise ValueError(f"query encoder must be one of {', '.join(ENCODER_CHOICES)}")
    key = model_key(model_name)
    if prefer != "torch" and db_path:
        conn = _read_only(db_path, immutable)
        try:
            stored = stored_encoder(conn, key)
        finally:
            conn.close()
        if stored is not None:
            return _onnx_encoder(db_path, key, stored.onnx_sha256, immutable)
    if prefer == "onnx":
        raise LookupError(f"{db_path or 'the database'} has no ONNX query encoder for {key!r}")
    if prefer == "auto":
        _fallback_notice(db_path, key)
    return TorchEncoder(model_name)
