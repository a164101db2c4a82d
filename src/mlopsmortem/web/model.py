"""The embedding model as the web layer uses it, and the SQL functions built on it.

The query encoder (the database's ONNX export, else the sentence-transformers model) is loaded
once per process (concurrent first requests wait for the one loading it);
`mm_cosine`, `mm_embed` and `mm_model` are what the plugin registers on every connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from mlopsmortem.passages.embed import decode_vector, encode_vector, model_key
from mlopsmortem.passages.encoder import QueryEncoder, query_encoder
from mlopsmortem.search.vectors import embed_query

# Process-wide like the encoder caches of mlopsmortem.passages.encoder they guard: the lock
# makes concurrent first requests wait for the one loading the encoder instead of each loading
# a copy. Keyed by (database file, model, preference).
_MODEL_LOCK = threading.Lock()
_LOADED: set[tuple[str, str, str]] = set()


def embed_queries_single_threaded() -> None:
    """One torch thread for this process, set when a server falls back to sentence-transformers
    for its queries. A server embeds one short query at a time, which a single thread does
    faster, and without the stalls of two OpenMP threads waiting on each other while another
    process keeps a core busy (figures: docs/serving.md). The ONNX encoder runs on one thread of
    its own, and needs no torch at all."""
    import torch

    torch.set_num_threads(1)


def ensure_model(
    model_name: str, db_path: str = "", encoder: str = "auto", immutable: bool = False
) -> QueryEncoder:
    """The query encoder of the served database (its ONNX export, else sentence-transformers),
    loaded once per process; concurrent first callers wait for the one loading it. `immutable`:
    the file is served with -i, and is read without writing anything beside it."""
    key = (db_path, model_name, encoder)
    if key in _LOADED:
        return query_encoder(db_path, model_name, encoder, immutable)
    with _MODEL_LOCK:
        loaded = query_encoder(db_path, model_name, encoder, immutable)
        if loaded.kind == "torch":
            embed_queries_single_threaded()
            loaded.embed("load the model")  # sentence-transformers loads on first use
        _LOADED.add(key)
        return loaded


def query_vector(
    text: str, model_name: str, db_path: str = "", encoder: str = "auto", immutable: bool = False
) -> np.ndarray:
    """The query vector of text against the database db_path (cached per process by the
    library)."""
    ensure_model(model_name, db_path, encoder, immutable)
    return embed_query(text, model_name, db_path, encoder, immutable)


def mm_cosine(a: Any, b: Any) -> float | None:
    """The mm_cosine SQL function: cosine of two float32 vector BLOBs, else NULL."""
    if not isinstance(a, bytes | memoryview) or not isinstance(b, bytes | memoryview):
        return None
    if len(a) != len(b) or not len(a) or len(a) % 4:
        return None
    va, vb = decode_vector(bytes(a)), decode_vector(bytes(b))
    norms = float(np.sqrt(np.dot(va, va) * np.dot(vb, vb)))
    if norms == 0.0:
        return None
    return float(np.dot(va, vb)) / norms


def text_functions(
    model_name: str,
    max_chars: int,
    db_path: str = "",
    encoder: str = "auto",
    immutable: bool = False,
) -> tuple[Callable[[Any], bytes | None], Callable[[], str]]:
    """The mm_embed(text) and mm_model() SQL functions of a model: the query vector BLOB of a
    text (NULL for none; longer than max_chars is an error), embedded by the query encoder of
    the database db_path, and the name its embeddings are stored under."""

    def mm_embed(text: Any) -> bytes | None:
        if text is None:
            return None
        text = str(text).strip()
        if not text:
            return None
        if len(text) > max_chars:
            raise ValueError(f"mm_embed: text is longer than {max_chars} characters")
        return encode_vector(query_vector(text, model_name, db_path, encoder, immutable))

    def mm_model() -> str:
        return model_key(model_name)

    return mm_embed, mm_model
