"""Which passage a hit shows: the story's own text rather than its card (title, publisher and
the lists' tags, which the hit shows anyway), whenever the story has text and the search has
the query's vectors."""

from __future__ import annotations

import sqlite3

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.search import search
from tests.conftest_search import STORIES
from tests.test_search import kb, kb_copy, kbdb

__all__ = ["kb", "kb_copy", "kbdb"]  # fixtures used below

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
        keyword_top = search(kbdb, story.title, settings=kb[1], mode="keyword", limit=1)
        cards_chosen += kind_of(kbdb, keyword_top[0].passage_id)[1] == "card"
    assert cards_chosen  # without the swap, some of these would have shown a card


def test_a_keyword_search_keeps_the_passage_its_words_chose(kb, kbdb) -> None:
    (hit,) = search(kbdb, TITLES[0].title, settings=kb[1], mode="keyword", limit=1)
    assert kind_of(kbdb, hit.passage_id) == (TITLES[0].id, "card")
    assert hit.highlights


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
