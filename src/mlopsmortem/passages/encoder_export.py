"""Making the ONNX query encoder of a model and storing it in the knowledge base (needs torch).

`ensure_query_encoder` exports the transformer of a sentence-transformers model with
`torch.onnx.export` (mean pooling and normalisation stay in numpy, `passages.encoder`) and writes
it with the model's tokenizer.json into `query_encoders`. It is rebuilt whenever the hash of the
model's files differs from the stored one, so a changed model or changed weights never leave a
stale encoder; an unchanged model costs one hash of its files (cached per process by path,
size and mtime). Only models made of Transformer, mean Pooling and Normalize are exported; any
other has no encoder and queries fall back to sentence-transformers.

Caches (functools.lru_cache, per process): `_files_hash` by (directory, file sizes and mtimes),
`_export_bytes` by (model location, model hash): every knowledge base built in one process with
the same model gets the same export without exporting again.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.errors import ModelError
from mlopsmortem.passages.embed import load_model, model_dimension, model_key, resolve_model_path
from mlopsmortem.passages.encoder import stored_encoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ONNX_OPSET = 17


@dataclass(frozen=True)
class EncoderStatus:
    """What ensure_query_encoder did: `action` is "exported", "current" or "unsupported"."""

    model: str
    action: str
    model_hash: str
    onnx_bytes: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _model_files(path: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        sorted(
            (str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
            for f in path.rglob("*")
            if f.is_file() and "onnx" not in f.parts and "openvino" not in f.parts
        )
    )


@lru_cache(maxsize=8)
def _files_hash(path: Path, files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        digest.update(name.encode() + b"\0")
        with (path / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def model_hash(path: Path) -> str:
    """sha256 over the names and contents of a model directory's files (exports excluded)."""
    return _files_hash(path, _model_files(path))


def _unsupported(model: SentenceTransformer) -> str:
    """Why the model's modules are not Transformer + mean Pooling + Normalize, or ""."""
    names = [type(module).__name__ for module in model]
    if names[:1] != ["Transformer"] or names[-1:] != ["Normalize"] or len(names) != 3:
        return f"modules {names} (exported: Transformer, Pooling, Normalize)"
    config = model[1].get_config_dict() if hasattr(model[1], "get_config_dict") else {}
    mode = config.get("pooling_mode") or (
        "mean" if config.get("pooling_mode_mean_tokens") else "other"
    )
    if mode != "mean" or config.get("include_prompt") is False:
        return f"pooling {mode!r} (exported: mean)"
    return ""


def export_onnx(model: SentenceTransformer) -> bytes:
    """The model's transformer as ONNX bytes: (input_ids, attention_mask[, token_type_ids]) to
    token embeddings, batch and sequence axes dynamic."""
    import torch

    transformer = model[0].auto_model.eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if getattr(transformer.config, "type_vocab_size", 0) < 1:
        names = names[:2]

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            output = self.transformer(**dict(zip(names, inputs, strict=True)))
            return output.last_hidden_state

    ids = torch.ones((1, 8), dtype=torch.int64)
    example = (ids, ids, torch.zeros_like(ids))[: len(names)]
    buffer = io.BytesIO()
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on the HF code, not ours to fix
        torch.onnx.export(
            Hidden(),
            example,
            buffer,
            input_names=names,
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


@lru_cache(maxsize=2)
def _export_bytes(location: str, digest: str, model_name: str) -> bytes:
    return export_onnx(load_model(model_name))


def ensure_query_encoder(
    db: sqlite_utils.Database,
    model_name: str,
    *,
    force: bool = False,
    model: SentenceTransformer | None = None,
) -> EncoderStatus:
    """Make the stored ONNX query encoder of model_name current in db, exporting only if needed.

    Current means the stored model_hash equals the hash of the model's files now; `force`
    exports anyway. A model that is not a local directory (a name in the Hugging Face cache) is
    hashed by its cached snapshot. ModelError when the model cannot be loaded."""
    key = model_key(model_name)
    path = resolve_model_path(model_name)
    if model is None:
        model = load_model(model_name)
    if path is None:  # a cached snapshot: the directory the transformer was read from
        transformer = getattr(model[0], "auto_model", None)
        location = getattr(getattr(transformer, "config", None), "_name_or_path", "")
        path = Path(location) if location and Path(location).is_dir() else None
    if path is None or not (path / "tokenizer.json").is_file():
        return EncoderStatus(key, "unsupported", "", 0, "no local tokenizer.json")
    reason = _unsupported(model)
    if reason:
        return EncoderStatus(key, "unsupported", "", 0, reason)
    digest = model_hash(path)
    stored = stored_encoder(db.conn, key)
    if stored is not None and stored.model_hash == digest and not force:
        return EncoderStatus(key, "current", digest, 0)
    if force:
        _export_bytes.cache_clear()
    onnx = _export_bytes(str(path), digest, model_name)
    tokenizer = (path / "tokenizer.json").read_text(encoding="utf-8")
    json.loads(tokenizer)  # a broken tokenizer.json fails here, not at the first query
    row = {
        "model": key,
        "model_hash": digest,
        "onnx": onnx,
        "onnx_sha256": hashlib.sha256(onnx).hexdigest(),
        "tokenizer": tokenizer,
        "max_seq_length": int(model.max_seq_length),
        "dimension": model_dimension(model),
        "created_at": utcnow(),
    }
    try:
        with db.conn:
            db["query_encoders"].insert(row, pk="model", replace=True)
    except OverflowError as exc:  # larger than SQLite's 1 GB blob limit
        raise ModelError(f"the ONNX export of {key!r} is too large to store: {exc}") from exc
    return EncoderStatus(key, "exported", digest, len(onnx))
