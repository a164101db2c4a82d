"""Vector codec, offline model loading and incremental embedding (with the real model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mlopsmortem.errors import ModelError
from mlopsmortem.passages import embed as embed_module
from mlopsmortem.passages.embed import (
    decode_matrix,
    decode_vector,
    embed_passages,
    encode_texts,
    encode_vector,
    load_model,
    model_key,
)
from mlopsmortem.passages.sync import sync_passages
from tests.support.knowledge_base import STORIES, build_kb, kb_settings

SMALL = tuple(s for s in STORIES if s.id in {"fluentbit", "conntrack", "airflow", "removed"})


def test_vector_blob_is_little_endian_float32() -> None:
    vector = np.array([1.0, -2.0, 0.5], dtype=np.float64)
    blob = encode_vector(vector)
    assert blob == b"\x00\x00\x80\x3f" + b"\x00\x00\x00\xc0" + b"\x00\x00\x00\x3f"
    # a big-endian input is stored the same way
    assert encode_vector(vector.astype(">f4")) == blob
    decoded = decode_vector(blob)
    assert decoded.dtype == np.float32 and decoded.dtype.isnative
    assert decoded.tolist() == [1.0, -2.0, 0.5]
    assert decode_matrix([blob, blob], 3).shape == (2, 3)


def test_vector_codec_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        decode_vector(b"\x00\x00\x80")
    with pytest.raises(ValueError):
        encode_vector(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        decode_matrix([b"\x00" * 12, b"\x00" * 8], 3)


def test_bundled_model_loads_offline_under_both_names() -> None:
    model = load_model("all-MiniLM-L6-v2")
    assert load_model("sentence-transformers/all-MiniLM-L6-v2") is model  # cached, one copy
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert model_key("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    vectors = encode_texts(model, ["lost logs", "dns timeouts"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["sentence-transformers/no-such-model-here", "/no/such/dir"])
def test_missing_model_is_a_model_error(name: str) -> None:
    with pytest.raises(ModelError, match="not installed locally"):
        load_model(name)


def small_kb(tmp_path: Path, **changes: object):
    db = build_kb(tmp_path / "kb.db", SMALL)
    settings = kb_settings(tmp_path / "kb.db", **changes)
    sync_passages(db, settings=settings)
    return db, settings


def embedded_hashes(db) -> dict[int, tuple[int, str]]:
    return {
        r[0]: (r[1], r[2])
        for r in db.execute("SELECT passage_id, rowid, text_hash FROM embeddings")
    }


def test_embed_all_then_nothing(tmp_path: Path) -> None:
    db, settings = small_kb(tmp_path)
    live_passages = db.execute(
        "SELECT count(*) FROM passages p JOIN stories s ON s.id = p.story_id"
        " WHERE s.removed_at IS NULL"
    ).fetchone()[0]
    counts = embed_passages(db, settings, progress=False)
    assert counts.embedded == counts.pending == live_passages
    assert counts.model == "all-MiniLM-L6-v2" and counts.dimension == 384
    assert db.execute("SELECT name, dimension FROM embedding_models").fetchall() == [
        ("all-MiniLM-L6-v2", 384)
    ]
    # vectors are the model's normalised vectors of the passage text
    model = load_model()
    pid, text, blob = db.execute(
        "SELECT p.id, p.text, e.vector FROM passages p JOIN embeddings e ON e.passage_id = p.id"
        " WHERE p.story_id = 'conntrack' AND p.seq = 1"
    ).fetchone()
    assert len(blob) == 384 * 4
    expected = encode_texts(model, [text])[0]
    assert float(decode_vector(blob) @ expected) > 0.9999
    # hashes recorded, removed story not embedded
    mismatched = db.execute(
        "SELECT count(*) FROM embeddings e JOIN passages p ON p.id = e.passage_id"
        " WHERE e.text_hash != p.text_hash"
    ).fetchone()[0]
    assert mismatched == 0
    assert (
        db.execute(
            "SELECT count(*) FROM embeddings e JOIN passages p ON p.id = e.passage_id"
            " WHERE p.story_id = 'removed'"
        ).fetchone()[0]
        == 0
    )
    again = embed_passages(db, settings, progress=False)
    assert (again.embedded, again.pending) == (0, 0)


def test_changed_document_reembeds_exactly_its_changed_passages(tmp_path: Path) -> None:
    db, settings = small_kb(tmp_path)
    embed_passages(db, settings, progress=False)
    before = embedded_hashes(db)
    (text,) = db.execute("SELECT text FROM documents WHERE story_id = 'airflow'").fetchone()
    db.execute(
        "UPDATE documents SET text = ? WHERE story_id = 'airflow'",
        [text.replace("At three o'clock", "At exactly three o'clock") + "\n\nA new last line."],
    )
    db.conn.commit()
    sync = sync_passages(db, settings=settings)
    changed = {
        r[0]
        for r in db.execute(
            "SELECT p.id FROM passages p LEFT JOIN embeddings e ON e.passage_id = p.id"
            " WHERE e.text_hash IS NOT p.text_hash"
        )
    }
    assert len(changed) == sync.inserted + sync.updated >= 2
    counts = embed_passages(db, settings, progress=False)
    assert counts.embedded == len(changed)
    after = embedded_hashes(db)
    for pid, (rowid, digest) in after.items():
        if pid in changed:
            # a rewritten embedding gets a new, higher rowid (the vector index relies on it)
            assert rowid > max(r for r, _ in before.values())
        else:
            assert before[pid] == (rowid, digest)


def test_rebuild_reembeds_everything(tmp_path: Path) -> None:
    db, settings = small_kb(tmp_path)
    first = embed_passages(db, settings, progress=False)
    before = embedded_hashes(db)
    rebuilt = embed_passages(db, settings, rebuild=True, progress=False)
    assert rebuilt.embedded == first.embedded
    after = embedded_hashes(db)
    assert after.keys() == before.keys()
    assert all(after[p][0] > max(r for r, _ in before.values()) for p in after)


def test_each_batch_is_committed_on_its_own(tmp_path: Path, monkeypatch) -> None:
    db, settings = small_kb(tmp_path, batch_size=4)
    real = embed_module.encode_texts
    calls = []

    def failing(model, texts, *, batch_size=32):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a Ctrl-C in the middle of a run looks like
        return real(model, texts, batch_size=batch_size)

    monkeypatch.setattr(embed_module, "encode_texts", failing)
    with pytest.raises(KeyboardInterrupt):
        embed_passages(db, settings, progress=False)
    assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 8
    monkeypatch.setattr(embed_module, "encode_texts", real)
    resumed = embed_passages(db, settings, progress=False)
    total = db.execute(
        "SELECT count(*) FROM passages p JOIN stories s ON s.id = p.story_id"
        " WHERE s.removed_at IS NULL"
    ).fetchone()[0]
    assert resumed.embedded == total - 8


def test_dimension_change_needs_rebuild(tmp_path: Path) -> None:
    db, settings = small_kb(tmp_path)
    db.execute("INSERT INTO embedding_models (name, dimension) VALUES ('all-MiniLM-L6-v2', 12)")
    db.conn.commit()
    with pytest.raises(ModelError, match="rebuild"):
        embed_passages(db, settings, progress=False)
    embed_passages(db, settings, rebuild=True, progress=False)
    assert db.execute("SELECT dimension FROM embedding_models").fetchone()[0] == 384
