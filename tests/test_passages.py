"""Chunking properties, cards, and incremental passage + FTS sync."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mlopsmortem.passages.chunking import (
    TokenizerCounter,
    approx_token_count,
    chunk_text,
    token_counter,
)
from mlopsmortem.passages.sync import SPECIAL_TOKENS, ListTags, card_text, sync_passages
from tests.support.knowledge_base import STORIES, build_kb, kb_settings

VOCABULARY = (
    "the pod was evicted because memory limits were exceeded and fluent-bit lost logs while "
    "x509: certificate expired at midnight; conntrack raced DNS (A/AAAA) queries — kube-proxy "
    "https://example.org/a/b?c=d mem_buf_limit=5MB GPU OOM 99.9% naïve café 東京 résumé"
).split()


def generated_text(seed: int) -> str:
    """Paragraphs of sentences of random words, with stray whitespace, long sentences, very
    long words and lines, so every chunking path is exercised."""
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(rng.randint(1, 25)):
        sentences = []
        for _ in range(rng.randint(1, 9)):
            length = rng.choice([3, 8, 15, 30, 60, 400]) if rng.random() < 0.9 else 900
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(1, length))]
            if rng.random() < 0.05:
                words.append("x" * rng.randint(300, 3000))  # one enormous 'word'
            sentence = " ".join(words)
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "?", ""]))
        joiner = rng.choice([" ", "  ", "\n", " \t"])
        paragraphs.append(joiner.join(sentences))
    lead = rng.choice(["", "  ", "\n\n"])
    return lead + rng.choice(["\n\n", "\n \n", "\n\n\n"]).join(paragraphs) + rng.choice(["", "\n"])


def assert_chunk_properties(text: str, chunks, max_tokens: int, count) -> None:
    covered = bytearray(len(text))
    previous_start = previous_end = -1
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert count(chunk.text) <= max_tokens, (count(chunk.text), chunk.text[:80])
        assert chunk.start > previous_start and chunk.end > previous_end  # always moving on
        previous_start, previous_end = chunk.start, chunk.end
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not missing, f"uncovered characters at {missing[:10]}"


@pytest.mark.parametrize("seed", range(40))
def test_chunking_properties_with_approximate_counts(seed: int) -> None:
    text = generated_text(seed)
    rng = random.Random(seed)
    max_tokens = rng.choice([8, 16, 64, 254])
    overlap = rng.choice([0, 2, max_tokens // 8, max_tokens // 2])
    chunks = chunk_text(
        text, max_tokens=max_tokens, overlap_tokens=overlap, count_tokens=approx_token_count
    )
    assert_chunk_properties(text, chunks, max_tokens, approx_token_count)


@pytest.mark.parametrize("seed", range(40, 60))
def test_chunking_properties_with_the_model_tokenizer(seed: int) -> None:
    count = token_counter()
    text = generated_text(seed)
    max_tokens = random.Random(seed).choice([32, 128, 254])
    chunks = chunk_text(text, max_tokens=max_tokens, overlap_tokens=16, count_tokens=count)
    assert_chunk_properties(text, chunks, max_tokens, count)


def test_default_counter_is_the_bundled_tokenizer_without_special_tokens() -> None:
    count = token_counter()
    assert isinstance(count, TokenizerCounter)
    assert count("hello world") == 2
    # the shipped tokenizer.json truncates at 128: counting must not
    assert count("word " * 600) == 600
    assert token_counter("/no/such/model") is approx_token_count


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n\t ") == []


def test_short_text_is_one_chunk_with_exact_offsets() -> None:
    text = "\n  One sentence. Two sentences!  \n"
    (chunk,) = chunk_text(text, max_tokens=50)
    assert chunk.text == "One sentence. Two sentences!"
    assert (chunk.start, chunk.end) == (3, 31)


def test_long_sentence_is_split_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(100)) + "."
    chunks = chunk_text(
        text, max_tokens=20, overlap_tokens=0, count_tokens=lambda t: len(t.split())
    )
    assert [len(c.text.split()) for c in chunks] == [20, 20, 20, 20, 20]
    assert all(not c.text.startswith(" ") for c in chunks)


@pytest.mark.parametrize("counter", [approx_token_count, token_counter()])
def test_giant_word_is_split_between_characters(counter) -> None:
    # (a 5000-letter word is one [UNK] token for WordPiece; a path-like word is thousands)
    text = "start " + "ab/" * 2000 + " end"
    chunks = chunk_text(text, max_tokens=50, overlap_tokens=0, count_tokens=counter)
    assert len(chunks) > 20
    assert "".join(c.text for c in chunks if "ab" in c.text).count("ab/") == 2000
    assert_chunk_properties(text, chunks, 50, counter)


def test_paragraph_break_is_preferred_and_not_overlapped() -> None:
    count = lambda t: len(t.split())  # noqa: E731 - one word = one token keeps the sums exact
    first = "Alpha one two three four five six. Alpha seven eight nine ten eleven twelve."
    second = "Beta one two three four five six. Beta seven eight nine ten eleven twelve."
    text = first + "\n\n" + second
    chunks = chunk_text(text, max_tokens=20, overlap_tokens=5, count_tokens=count)
    assert [c.text for c in chunks] == [first, second]


def test_overlap_repeats_the_tail_inside_a_paragraph() -> None:
    count = lambda t: len(t.split())  # noqa: E731
    sentences = [f"Sentence {i} has five words." for i in range(10)]
    text = " ".join(sentences)
    chunks = chunk_text(text, max_tokens=12, overlap_tokens=5, count_tokens=count)
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start < before.end  # overlapping spans
        assert before.text.endswith(text[after.start : before.end])


def test_card_text_has_the_story_facts() -> None:
    story = {
        "title": "How Fluent Bit  silently dropped our logs",
        "publisher": "Acme",
        "kind": "blog",
        "year": 2022,
        "summary": "Paused input\n lost logs.",
        "components": '["logging", "kubernetes"]',
        "impacts": ["data-loss"],
    }
    card = card_text(story, ListTags(involved=("Fluent Bit", "fluent bit", "ES"), impact=("lost",)))
    assert card.splitlines() == [
        "How Fluent Bit silently dropped our logs",
        "Acme · blog · 2022",
        "Paused input lost logs.",
        "Involved: Fluent Bit, ES",
        "Impact: lost",
        "Components: logging, kubernetes",
        "Impacts: data-loss",
    ]
    assert card_text({"url": "https://example.org/x"}) == "https://example.org/x"


def fts_rows(db) -> dict[int, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in db.execute("SELECT rowid, text, title FROM passages_fts")}


def passage_rows(db) -> dict[int, tuple[str, str]]:
    return {
        r[0]: (r[1], r[2])
        for r in db.execute(
            "SELECT p.id, p.text, s.title FROM passages p JOIN stories s ON s.id = p.story_id"
        )
    }


def test_sync_builds_cards_chunks_and_fts(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    counts = sync_passages(db, settings=settings)
    live = [s for s in STORIES if not s.removed]
    assert counts.stories == len(live)
    assert counts.inserted == db.execute("SELECT count(*) FROM passages").fetchone()[0]
    assert fts_rows(db) == passage_rows(db)
    cards = db.execute("SELECT story_id, text FROM passages WHERE seq = 0").fetchall()
    assert {sid for sid, _ in cards} == {s.id for s in live}  # removed story skipped
    assert all(kind == "card" for (kind,) in db.execute("SELECT kind FROM passages WHERE seq=0"))
    # chunks map back into their document
    count = token_counter()
    for story_id, text, start, end in db.execute(
        "SELECT p.story_id, p.text, p.start, p.\"end\" FROM passages p WHERE kind = 'text'"
    ):
        (document,) = db.execute(
            "SELECT text FROM documents WHERE story_id = ?", [story_id]
        ).fetchone()
        assert document[start:end] == text
        assert count(text) + SPECIAL_TOKENS <= settings.passage_tokens
    assert db.execute("SELECT count(*) FROM passages WHERE story_id='airflow'").fetchone()[0] > 3


def test_second_sync_writes_nothing(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    sync_passages(db, settings=settings)
    before = db.conn.total_changes
    counts = sync_passages(db, settings=settings)
    assert db.conn.total_changes == before
    assert (counts.inserted, counts.updated, counts.deleted, counts.changed_stories) == (0, 0, 0, 0)


def test_changed_document_updates_inserts_and_deletes_in_step_with_fts(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    sync_passages(db, settings=settings)
    ids_before = dict(
        db.execute("SELECT seq, id FROM passages WHERE story_id = 'airflow'").fetchall()
    )
    # change the last paragraph only: earlier passages keep their id and text
    (text,) = db.execute("SELECT text FROM documents WHERE story_id='airflow'").fetchone()
    db.execute(
        "UPDATE documents SET text = ? WHERE story_id = 'airflow'",
        [text.replace("ended the deadlocks", "finally ended the deadlocks for good")],
    )
    db.conn.commit()
    counts = sync_passages(db, settings=settings)
    assert (counts.changed_stories, counts.updated, counts.inserted, counts.deleted) == (1, 1, 0, 0)
    ids_after = dict(db.execute("SELECT seq, id FROM passages WHERE story_id='airflow'").fetchall())
    assert ids_after == ids_before
    assert fts_rows(db) == passage_rows(db)

    # shrink the document: surplus passages go, with their FTS rows and embeddings
    db.execute("INSERT INTO embedding_models (name, dimension) VALUES ('m', 1)")
    for pid in ids_before.values():
        db.execute(
            "INSERT INTO embeddings (passage_id, model, text_hash, vector)"
            " VALUES (?, 'm', '', x'')",
            [pid],
        )
    last = ids_before[max(ids_before)]
    db.execute(
        "INSERT INTO tags (story_id, kind, tag, method, evidence, passage_id)"
        " VALUES ('airflow', 'component', 'Airflow', 'rule', 'the scheduler', ?)",
        [last],
    )
    db.execute("UPDATE documents SET text = 'Short now.' WHERE story_id = 'airflow'")
    db.conn.commit()
    counts = sync_passages(db, settings=settings, story_ids=["airflow"])
    # the tag keeps its evidence text but no longer points at a deleted passage
    assert db.execute("SELECT passage_id, evidence FROM tags").fetchall() == [
        (None, "the scheduler")
    ]
    assert counts.stories == 1
    assert counts.deleted == len(ids_before) - 2 and counts.updated == 1
    assert fts_rows(db) == passage_rows(db)
    remaining = {r[0] for r in db.execute("SELECT passage_id FROM embeddings")}
    assert remaining == {ids_before[0], ids_before[1]}


def test_title_change_updates_fts_title_of_every_passage(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    sync_passages(db, settings=settings)
    db.execute("UPDATE stories SET title = 'Renamed story' WHERE id = 'airflow'")
    db.conn.commit()
    counts = sync_passages(db, settings=settings)
    assert counts.updated == 1  # only the card's text changed
    titles = {
        r[0]
        for r in db.execute(
            "SELECT f.title FROM passages_fts f JOIN passages p ON p.id = f.rowid"
            " WHERE p.story_id = 'airflow'"
        )
    }
    assert titles == {"Renamed story"}
    assert fts_rows(db) == passage_rows(db)


def test_list_tags_reach_the_card(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    sync_passages(db, settings=kb_settings(tmp_path / "kb.db"))
    (card,) = db.execute(
        "SELECT text FROM passages WHERE story_id='fluentbit' AND seq=0"
    ).fetchone()
    assert "Involved: Fluent Bit, Elasticsearch" in card
    assert "Impact: lost logs" in card
    assert "Components: logging, kubernetes" in card
