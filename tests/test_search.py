"""Search end to end on a small invented knowledge base, with the real embedding model."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.search.fusion import fuse_stories
from mlopsmortem.search.keyword import StorySet, fts_phrase, keyword_stage, split_terms
from mlopsmortem.search.run import search
from mlopsmortem.search.snippets import make_snippet, mark_snippet
from mlopsmortem.search.types import Ranked, Tuning
from mlopsmortem.settings import Settings
from tests.support.knowledge_base import (
    IDENTIFIER_QUERIES,
    KEYWORD_QUERIES,
    NATURAL_QUERIES,
    PARAPHRASE_QUERIES,
    STORIES,
    build_kb,
    kb_settings,
)

MODES = ("keyword", "semantic", "hybrid")


def ids(hits) -> list[str]:
    return [h.id for h in hits]


# --------------------------------------------------------------------------- ranking


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("query", "expected"), KEYWORD_QUERIES[:8])
def test_right_story_first(kb, kbdb, mode, query, expected) -> None:
    assert ids(search(kbdb, query, settings=kb[1], mode="semantic", limit=3))[0] == expected
    # hybrid: stray keyword matches of other stories may outvote it, but not bury it
    assert expected in ids(search(kbdb, query, settings=kb[1], mode="hybrid", limit=3))


@pytest.mark.parametrize(("query", "expected"), PARAPHRASE_QUERIES)
def test_paraphrase_sharing_no_word_finds_the_story(kb, kbdb, query, expected) -> None:
    story = next(s for s in STORIES if s.id == expected)
    passages = " ".join(
        r[0] for r in kbdb.execute("SELECT text FROM passages WHERE story_id = ?", [expected])
    )

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", text.lower()))

    assert not words(query) & words(passages + " " + story.title)
    assert expected not in ids(search(kbdb, query, settings=kb[1], mode="keyword"))
    assert ids(search(kbdb, query, settings=kb[1], mode="semantic", limit=3))[0] == expected
    # hybrid: stray keyword matches of other stories may outvote it, but not bury it
    assert expected in ids(search(kbdb, query, settings=kb[1], mode="hybrid", limit=3))


@pytest.mark.parametrize(("query", "expected"), NATURAL_QUERIES + IDENTIFIER_QUERIES)
def test_hybrid_ranks_natural_and_identifier_queries(kb, kbdb, query, expected) -> None:
    assert ids(search(kbdb, query, settings=kb[1], limit=3))[0] == expected


def test_fusion_gives_no_semantic_vote_far_from_the_best_story() -> None:
    # "lost logs fluent-bit" on the demo: a story keyword search found (Loki, lost logs) ranked
    # behind stories whose only evidence was a semantic rank far below the best cosine
    tuning = Tuning(rrf_k=20, semantic_margin=0.2)
    keyword = [Ranked("best", 1, 9.0), Ranked("loki", 2, 3.0, coverage=0.5)]
    semantic = [Ranked("best", 1, 0.70), Ranked("bgp", 3, 0.40), Ranked("loki", 2, 0.35)]
    fused = fuse_stories(keyword, semantic, tuning)
    assert [c.story_id for c in fused] == ["best", "loki", "bgp"]
    assert fused[2].score == 0.0 and fused[2].matched_by == "semantic"  # still listed, last
    near = fuse_stories(keyword, [Ranked("best", 1, 0.70), Ranked("bgp", 3, 0.60)], tuning)
    assert [c.story_id for c in near] == ["best", "bgp", "loki"]  # within the margin: a vote


@pytest.mark.parametrize(("query", "expected"), NATURAL_QUERIES[:4])
def test_hybrid_lists_far_semantic_only_stories_last(kb, kbdb, query, expected) -> None:
    cosine = {
        h.id: h.score for h in search(kbdb, query, settings=kb[1], mode="semantic", limit=100)
    }
    margin = Tuning(semantic_margin=0.2)
    floor = max(cosine.values()) - margin.semantic_margin
    hits = search(kbdb, query, settings=kb[1], mode="hybrid", limit=100, tuning=margin)
    far = [i for i, h in enumerate(hits) if h.matched_by == "semantic" and cosine[h.id] < floor]
    assert far, "the query should have stories far from the best one"
    assert far == list(range(len(hits) - len(far), len(hits)))
    assert {hits[i].score for i in far} == {0.0}


def test_keyword_ranks_stories_matching_more_words_first(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db", STORIES[:2])
    settings = kb_settings(tmp_path / "kb.db")
    db.execute("UPDATE documents SET text = 'alpha alpha alpha alpha alpha' WHERE rowid = 1")
    db.execute("UPDATE documents SET text = 'alpha and omega' WHERE rowid = 2")
    db.conn.commit()
    sync_passages(db, settings=settings)
    hits = search(db, "alpha omega", settings=settings, mode="keyword")
    assert ids(hits) == [STORIES[1].id, STORIES[0].id]
    assert hits[0].score > hits[1].score


@pytest.mark.parametrize("filters", [{}, {"components": ["dns"]}, {"since": 2022}])
def test_keyword_fast_path_matches_the_exact_grouped_query(kb, kbdb, filters) -> None:
    for query in ("logs outage", "dns kubernetes", "model training data"):
        fast = search(kbdb, query, settings=kb[1], mode="keyword", limit=20, **filters)
        # reading only 2 passages from FTS5 forces the exact grouped query
        exact = search(
            kbdb, query, settings=kb[1], mode="keyword", limit=20, tuning=Tuning(keyword_top=2),
            **filters,
        )  # fmt: skip
        assert [(h.id, h.passage_id, h.score) for h in fast] == [
            (h.id, h.passage_id, h.score) for h in exact
        ]


# a word in at least 30% of the 38 passages of the test knowledge base counts as common
FORCED_COMMON = Tuning(common_fraction=0.3, common_min_rows=1)


def _common_terms_kb(tmp_path: Path, *, embed: bool = False) -> tuple[object, Settings]:
    """Six stories: 'alpha' in three text passages (one of them only 'alpha' five times),
    'quokka' once in two long ones; 12 passages with the cards."""
    path = tmp_path / "kb.db"
    db = build_kb(path, STORIES[:6])
    filler = " ".join(["the service was restarted after a long look at dashboards"] * 6)
    texts = [
        "alpha alpha alpha alpha alpha",
        f"quokka {filler}",
        "alpha report",
        "alpha summary",
        f"{filler} quokka",
        "a quiet story about nothing in particular",
    ]
    for rowid, text in enumerate(texts, start=1):
        db.execute("UPDATE documents SET text = ? WHERE rowid = ?", [text, rowid])
    db.conn.commit()
    settings = kb_settings(path)
    sync_passages(db, settings=settings)
    if embed:
        embed_passages(db, settings, progress=False)
    return db, settings


def test_common_terms_rank_stories_on_the_informative_word(tmp_path: Path) -> None:
    db, settings = _common_terms_kb(tmp_path)
    forced = Tuning(common_fraction=0.25, common_min_rows=1)  # alpha: 3 of 12 passages
    split = split_terms(db.conn, ["alpha", "quokka"], forced)
    assert (split.informative, split.common) == (['"quokka"'], ['"alpha"'])
    quokka = {STORIES[1].id, STORIES[4].id}
    full = search(db, "alpha quokka", settings=settings, mode="keyword", limit=2,
                  tuning=Tuning(common_fraction=None))  # fmt: skip
    # the full OR query: the passage saying only 'alpha' five times outscores both 'quokka' ones
    assert full[0].id == STORIES[0].id
    hits = search(db, "alpha quokka", settings=settings, mode="keyword", limit=2, tuning=forced)
    assert set(ids(hits)) == quokka
    assert all(h.highlights for h in hits)


def test_common_terms_fall_back_to_the_full_query(tmp_path: Path) -> None:
    db, settings = _common_terms_kb(tmp_path, embed=True)
    quarter = Tuning(common_fraction=0.25, common_min_rows=1)  # common: in 3+ of 12 passages
    tenth = Tuning(common_fraction=0.1, common_min_rows=1)  # common: in 2+ of 12 passages
    for query, forced, limit in (
        ("alpha quokka", quarter, 10),  # 2 stories match 'quokka': too few for a page of 10
        ("alpha quokka", tenth, 2),  # every word is common
        ("alpha", quarter, 1),  # one word
        ("alpha qwertyuiop", quarter, 1),  # found nowhere: not informative; 'alpha' alone left
    ):
        for mode in ("keyword", "hybrid"):
            got = search(db, query, settings=settings, mode=mode, limit=limit, tuning=forced)
            want = search(
                db, query, settings=settings, mode=mode, limit=limit,
                tuning=Tuning(common_fraction=None),
            )  # fmt: skip
            assert [(h.id, h.passage_id, h.score) for h in got] == [
                (h.id, h.passage_id, h.score) for h in want
            ], (query, mode)
            assert got, (query, mode)
    assert split_terms(db.conn, ["alpha", "qwertyuiop"], quarter).informative == []
    assert split_terms(db.conn, ["alpha", "quokka"], tenth).informative == []


@pytest.mark.parametrize(
    "query", ["logs kubernetes", "logs pipeline deadlock", "kubernetes pods logs dropped"]
)
def test_common_terms_keep_bm25_and_coverage_exact(kb, kbdb, query) -> None:
    """Against brute force: every candidate story, its best passage among those matching an
    informative word, the full OR query's bm25 of it, and the words the story matches."""
    conn = kbdb.conn
    words = query.split()
    split = split_terms(conn, words, FORCED_COMMON)
    assert split.informative and split.common  # the common-terms path is taken
    match = " OR ".join(fts_phrase(w) for w in words)
    stories = StorySet.load(conn, "s.removed_at IS NULL", [])
    raw = Tuning(common_fraction=0.3, common_min_rows=1, coverage_first=False)
    ranked = keyword_stage(conn, query, match, stories, needed=1, pool=100, tuning=raw)
    informative = " OR ".join(split.informative)
    expected = {}
    for story_id, rowid, rank in conn.execute(
        "SELECT p.story_id, f.rowid, bm25(passages_fts, 1.0, 2.0) FROM passages_fts f"
        " JOIN passages p ON p.id = f.rowid WHERE passages_fts MATCH ? ORDER BY 3, 2",
        [match],
    ):
        in_r = conn.execute(
            "SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? AND rowid = ?",
            [informative, rowid],
        ).fetchone()
        if in_r and stories.allows(story_id):
            expected.setdefault(story_id, (rowid, -rank))
    assert [r.story_id for r in ranked] == list(expected)
    for r in ranked:
        rowid, score = expected[r.story_id]
        assert r.passage_id == rowid
        assert r.score == pytest.approx(score, rel=1e-12)
        matched = sum(
            conn.execute(
                "SELECT 1 FROM passages_fts f JOIN passages p ON p.id = f.rowid"
                " WHERE passages_fts MATCH ? AND p.story_id = ? LIMIT 1",
                [fts_phrase(w), r.story_id],
            ).fetchone()
            is not None
            for w in words
        )
        assert r.coverage == matched / len(words)


@pytest.mark.parametrize("mode", MODES)
def test_every_hit_carries_a_passage_of_its_own_story(kb, kbdb, mode) -> None:
    hits = search(kbdb, "logs lost during an outage", settings=kb[1], mode=mode, limit=20)
    assert hits
    for hit in hits:
        (story,) = kbdb.execute(
            "SELECT story_id FROM passages WHERE id = ?", [hit.passage_id]
        ).fetchone()
        assert story == hit.id and hit.snippet


def test_hit_fields_snippet_and_json(kb, kbdb) -> None:
    hits = search(kbdb, "lost logs fluent-bit", settings=kb[1], limit=5)
    top = hits[0]
    assert top.id == "fluentbit"
    assert top.url == "https://example.org/fluentbit"
    assert (top.publisher, top.year, top.kind, top.category) == (
        "Acme Cloud",
        2022,
        "blog",
        "failure story",
    )
    assert top.link_status == "live"
    assert top.components == ("logging", "kubernetes") and top.impacts == ("data-loss",)
    assert top.matched_by == "both" and top.rank == 1
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    assert top.highlights
    for start, end in top.highlights:
        assert top.snippet[start:end].lower().startswith(("log", "lost", "fluent"))
    data = json.loads(json.dumps(top.to_dict()))
    assert data["highlights"] == [list(h) for h in top.highlights]
    assert {"id", "url", "snippet", "snippet_marked", "passage_id", "matched_by"} <= data.keys()
    (passage_story,) = kbdb.execute(
        "SELECT story_id FROM passages WHERE id = ?", [top.passage_id]
    ).fetchone()
    assert passage_story == "fluentbit"


def test_snippet_is_trimmed_around_the_match(kb, kbdb) -> None:
    (hit,) = search(kbdb, "SKIP LOCKED", settings=kb[1], mode="keyword", limit=1)
    assert hit.id == "airflow"
    assert len(hit.snippet) <= 310
    assert any(hit.snippet[s:e] in ("SKIP", "LOCKED") for s, e in hit.highlights)


def test_snippet_marked_is_escaped_html() -> None:
    text = "<script>alert('x')</script> & the logs were lost & <b>gone</b>"
    logs, lost = text.index("logs"), text.index("lost")
    snippet, highlights = make_snippet(text, [(logs, logs + 4), (lost, lost + 4)])
    marked = mark_snippet(snippet, highlights)
    assert "<script>" not in marked and "&lt;script&gt;" in marked
    assert marked.count("<mark>") == 2 and "<mark>logs</mark>" in marked
    assert html.unescape(re.sub("</?mark>", "", marked)) == snippet


def test_snippet_of_a_long_passage_shows_the_dense_part() -> None:
    text = "filler words here. " * 40 + "the fluent bit logs were lost. " + "more filler. " * 40
    start = text.index("fluent")
    snippet, highlights = make_snippet(text, [(start, start + 6), (start + 11, start + 15)])
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert len(snippet) <= 305
    assert [snippet[s:e] for s, e in highlights] == ["fluent", "logs"]


def test_pagination_is_consistent(kb, kbdb) -> None:
    full = ids(search(kbdb, "outage", settings=kb[1], limit=12))
    pages = ids(search(kbdb, "outage", settings=kb[1], limit=4)) + ids(
        search(kbdb, "outage", settings=kb[1], limit=4, offset=4)
    )
    assert pages == full[:8]
    ranks = [h.rank for h in search(kbdb, "outage", settings=kb[1], limit=2, offset=3)]
    assert ranks == [4, 5]
