"""Which passage a hit shows: the story's own text rather than its card (title, publisher and
the lists' tags, which the hit shows anyway), whenever the story has text: the passage nearest
by meaning when the search has the query's vectors, the one with the most of the query's words
in a keyword search."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.search.keyword import fts_phrase, fts_query, query_words
from mlopsmortem.search.run import search
from mlopsmortem.search.snippets import (
    CHOICE_CHARS,
    CHOICE_PASSAGES,
    PassageWords,
    make_snippet,
    text_passages_with_words,
)
from tests.support.knowledge_base import STORIES

TITLES = [s for s in STORIES if not s.removed]


def kind_of(db, passage_id: int) -> tuple[str, str]:
    return db.execute("SELECT story_id, kind FROM passages WHERE id = ?", [passage_id]).fetchone()


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_a_hit_shows_its_own_text_not_its_card(kb, kbdb, mode) -> None:
    cards_chosen = 0
    for story in TITLES:
        # the title's words are in the card: the card is the best passage by words
        for hit in search(kbdb, story.title, settings=kb[1], mode=mode, limit=5):
            story_id, kind = kind_of(kbdb, hit.passage_id)
            assert story_id == hit.id
            assert kind == "text", (story.title, hit.id)
            text = kbdb.execute(
                "SELECT text FROM passages WHERE id = ?", [hit.passage_id]
            ).fetchone()[0]
            assert hit.snippet.strip("… ")[:40] in " ".join(text.split())
        cards_chosen += kind_of(kbdb, best_passage_by_words(kbdb, story.title))[1] == "card"
    assert cards_chosen  # without the swap, some of these would have shown a card


def best_passage_by_words(db, query: str) -> int:
    return db.execute(
        "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?"
        " ORDER BY bm25(passages_fts, 1.0, 2.0) LIMIT 1",
        [fts_query(query)],
    ).fetchone()[0]


def words_in_text(db, passage_id: int, words: list[str]) -> int:
    """How many of `words` FTS5 finds in the passage's text column (the ground truth)."""
    return sum(
        db.execute(
            "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ? AND rowid = ?",
            ["text : " + fts_phrase(word), passage_id],
        ).fetchone()[0]
        for word in words
    )


def test_a_keyword_hit_shows_the_text_passage_with_the_most_of_its_words(kb, kbdb) -> None:
    swapped = kept = 0
    for story in TITLES:
        words = query_words(story.title)
        (hit,) = search(kbdb, story.title, settings=kb[1], mode="keyword", limit=1)
        assert hit.id == story.id
        texts = [
            row[0]
            for row in kbdb.execute(
                "SELECT id FROM passages WHERE story_id = ? AND kind = 'text'", [story.id]
            )
        ]
        best = max((words_in_text(kbdb, p, words) for p in texts), default=0)
        if best:
            assert kind_of(kbdb, hit.passage_id) == (story.id, "text")
            assert words_in_text(kbdb, hit.passage_id, words) == best
            assert "<mark>" in hit.snippet_marked
            swapped += 1
        else:  # no text passage has a word of the query: the card is where they are
            assert kind_of(kbdb, hit.passage_id) == (story.id, "card")
            kept += 1
    assert swapped and kept == 0  # every title word is in its story's text, too
    assert any(kind_of(kbdb, best_passage_by_words(kbdb, s.title))[1] == "card" for s in TITLES)


def test_a_keyword_hit_keeps_its_card_when_no_text_has_the_words(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    with sqlite3.connect(path) as conn:  # the text says none of the title's words
        conn.execute(
            "UPDATE passages SET text = 'nothing to see here' WHERE story_id = ? AND kind = 'text'",
            [story.id],
        )
    db = open_db(path)
    try:
        (hit,) = search(db, story.title, settings=settings, mode="keyword", limit=1)
        assert kind_of(db, hit.passage_id) == (story.id, "card")
        assert hit.highlights
    finally:
        db.close()


TRICKY = [
    "retries", "retry", "logging", "logs", "fluent-bit", "OOMKilled", "x509", "dns",
    "certificates", "queries", "filing", "sensibility", "crashloopbackoff", "node_modules",
    "was", "e", "GPU", "k8s", "timeouts", "evicted", "topological", "possibly", "café",
    "reproducibly", "end-to-end", "o'reilly", "naïve", "ﬁle",
]  # fmt: skip


def words_in(passages, words) -> dict[int, int]:
    with closing(PassageWords(passages)) as index:
        return index.containing([fts_phrase(w) for w in words])


def test_passage_words_finds_words_where_the_search_index_does(kbdb) -> None:
    rows = kbdb.execute("SELECT id, text FROM passages").fetchall()
    words = sorted({w for s in TITLES for w in query_words(s.title)} | set(TRICKY))
    with closing(PassageWords(rows)) as index:
        found = {word: index.containing([fts_phrase(word)]) for word in words}
    checked = 0
    for word in words:
        for passage_id, _ in rows:
            expected = bool(words_in_text(kbdb, passage_id, [word]))
            assert (passage_id in found[word]) == expected, (word, passage_id)
            checked += 1
    assert checked > 1000 and sum(map(len, found.values())) > 100


@pytest.mark.parametrize(
    ("word", "text"),
    [
        ("retries", "the retry limit"),
        ("logs", "Logging, not a catalog"),
        ("fluent-bit", "fluent_bit"),
        ("OOMKilled", "pods were oomkilled"),
        ("filing", "we filed"),
        # words a copy of the tokenizer in Python got wrong: FTS5's Porter has later rules
        # (-logi, -bli) and unicode61 folds diacritics
        ("topological", "the topology changed"),
        ("possibly", "as soon as possible"),
        ("cafe", "the café"),
        ("reproducibly", "reproducible builds"),
        # a phrase that starts inside a longer word ("frontend to end") still matches later
        ("end-to-end", "the frontend to end-to-end tests"),
    ],
)
def test_passage_words_match_as_fts5_tokenizes(word, text) -> None:
    passages = [(7, text), (8, "nothing of the kind")]
    assert words_in(passages, [word]) == {7: 1}
    assert words_in(passages, [word, "absentword"]) == {7: 1}


def test_passage_words_count_words_and_occurrences() -> None:
    passages = [(1, "logs once"), (2, "logs logs logs and more logs"), (3, "logs and dns")]
    phrases = [fts_phrase("logs"), fts_phrase("dns")]
    with closing(PassageWords(passages)) as index:
        assert index.containing(phrases) == {1: 1, 2: 1, 3: 2}
        assert index.occurrences(phrases, [1, 2, 3]) == {1: 1, 2: 4, 3: 2}
    # the character highlight() marks with, in the crawled text itself, is not a match
    with closing(PassageWords([(4, "logs logs \ue000 marker \ue000\ue000")])) as index:
        assert index.occurrences([fts_phrase("logs")], [4]) == {4: 2}


def test_passage_words_take_linear_time_on_long_runs_of_letters() -> None:
    # a regex for "a-b" once backtracked over every start in a run of letters: 2 s at 20,000,
    # minutes at this length, on the event loop's thread
    assert words_in([(1, "a" * 300_000), (2, "a b c")], ["a-b", "a-a-a"]) == {2: 1}


def story_with_texts(path, story_id: str, texts: list[str]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM passages WHERE story_id = ? AND kind = 'text'", [story_id])
        for seq, text in enumerate(texts, start=1):
            conn.execute(
                "INSERT INTO passages (story_id, seq, kind, text) VALUES (?, ?, 'text', ?)",
                [story_id, seq, text],
            )


def test_a_keyword_hit_shows_the_same_passage_whatever_else_is_on_the_page(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    # one word each; the first passage has its word more often. Weighed by bm25 in an index
    # of the page's passages, "the" would weigh next to nothing once other stories join it.
    story_with_texts(path, story.id, ["the the the", "zebrafish"])
    phrases = [fts_phrase("the"), fts_phrase("zebrafish")]
    db = open_db(path)
    try:
        chosen = {story.id: card_of(db, story.id)}
        alone = text_passages_with_words(db.conn, chosen, phrases)[story.id]
        assert db.execute("SELECT seq FROM passages WHERE id = ?", [alone]).fetchone() == (1,)
        for other in TITLES[1:]:
            chosen[other.id] = card_of(db, other.id)
            assert text_passages_with_words(db.conn, chosen, phrases)[story.id] == alone
    finally:
        db.close()


def test_a_keyword_hit_shows_the_passage_with_its_words_most_often(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    story_with_texts(path, story.id, ["logs once", "no words here", "logs, logs and logs"])
    db = open_db(path)
    try:
        chosen = {story.id: card_of(db, story.id)}
        shown = text_passages_with_words(db.conn, chosen, [fts_phrase("logs")])[story.id]
        assert db.execute("SELECT seq FROM passages WHERE id = ?", [shown]).fetchone() == (3,)
    finally:
        db.close()


def test_a_passage_cut_to_its_first_characters_loses_the_word_cut_in_two(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    cut_in_two = "b" + "a " * ((CHOICE_CHARS - 4) // 2) + "dnsmasq restarted"
    assert cut_in_two[:CHOICE_CHARS].endswith(" dns")  # "dnsmasq" cut after "dns"
    story_with_texts(path, story.id, [cut_in_two, "no such word here"])
    db = open_db(path)
    try:
        chosen = {story.id: card_of(db, story.id)}
        assert text_passages_with_words(db.conn, chosen, [fts_phrase("dns")]) == {}
    finally:
        db.close()


def test_a_keyword_hit_chooses_among_its_first_passages_only(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    word = "zebrafish"
    texts = ["filler text"] * CHOICE_PASSAGES + [f"the {word} passage"]
    texts[0] = "a very long first passage " * 1000 + word  # the word past CHOICE_CHARS
    story_with_texts(path, story.id, texts)
    db = open_db(path)
    try:
        chosen = {story.id: card_of(db, story.id)}
        assert text_passages_with_words(db.conn, chosen, [fts_phrase(word)]) == {}
        story_with_texts(path, story.id, texts[1:])  # now within the first CHOICE_PASSAGES
        (shown,) = text_passages_with_words(db.conn, chosen, [fts_phrase(word)]).values()
        assert word in db.execute("SELECT text FROM passages WHERE id = ?", [shown]).fetchone()[0]
    finally:
        db.close()


def card_of(db, story_id: str) -> int:
    return db.execute(
        "SELECT id FROM passages WHERE story_id = ? AND kind = 'card'", [story_id]
    ).fetchone()[0]


def test_a_story_without_text_shows_its_card(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    with sqlite3.connect(path) as conn:  # as a dead link whose page never had text
        conn.execute("DELETE FROM passages WHERE story_id = ? AND kind = 'text'", [story.id])
    db = open_db(path)
    try:
        hits = search(db, story.title, settings=settings, mode="hybrid", limit=3)
        hit = next(h for h in hits if h.id == story.id)
        assert kind_of(db, hit.passage_id) == (story.id, "card")
        assert hit.snippet
    finally:
        db.close()


STATUS_PAGE = (
    "Updates\n\n"
    "- Resolved — This incident has been resolved. The postmortem is published below.\n"
    "- Monitoring — A fix has been implemented and we are monitoring the results.\n\n"
    "## Timeline\n\n"
    "| Time | Event |\n|---|---|\n"
    "| Sun 01:00 | The **zebrafish** materialization window was empty. |\n\n"
    "- 4,212 quotes were [issued](https://status.example/quotes) with `zebrafish` defaults.\n"
)


def test_snippets_show_text_without_markup_or_status_banners() -> None:
    word = STATUS_PAGE.index("zebrafish")
    link = STATUS_PAGE.index("status.example")
    snippet, highlights = make_snippet(STATUS_PAGE, [(word, word + 9), (link, link + 6)])
    assert snippet == (
        "Timeline Time · Event Sun 01:00 · The zebrafish materialization window was empty. "
        "4,212 quotes were issued with zebrafish defaults."
    )
    # the highlight follows its word; the one inside the link's target (not shown) is gone
    assert [snippet[s:e] for s, e in highlights] == ["zebrafish"]


def test_a_hit_shows_its_snippet_without_markup(kb_copy) -> None:
    path, settings = kb_copy
    story = TITLES[0]
    story_with_texts(path, story.id, [STATUS_PAGE])
    with sqlite3.connect(path) as conn:  # indexed, as passages/sync.py would
        conn.execute(
            "INSERT INTO passages_fts (rowid, text, title) SELECT id, text, ? FROM passages"
            " WHERE story_id = ? AND kind = 'text'",
            [story.title, story.id],
        )
    db = open_db(path)
    try:
        (hit,) = search(db, "zebrafish quotes", settings=settings, mode="keyword", limit=1)
        assert hit.id == story.id
        for markup in ("|", "**", "`", "- ", "## ", "](", "incident has been resolved"):
            assert markup not in hit.snippet, markup
        marked = [hit.snippet[s:e].lower() for s, e in hit.highlights]
        assert marked.count("zebrafish") == 2 and "quotes" in marked
        assert "<mark>zebrafish</mark>" in hit.snippet_marked
    finally:
        db.close()
