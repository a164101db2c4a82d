"""Search on the invented knowledge base: hostile input, filters, errors, the vector cache and
similar stories, with the real embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.errors import NotFoundError, SearchError
from mlopsmortem.passages.embed import embed_passages, load_model
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.search.keyword import fts_query
from mlopsmortem.search.run import EMPTY_DB_MESSAGE, search, similar
from mlopsmortem.search.vectors import VectorIndex, embed_query, vector_index
from mlopsmortem.settings import Settings
from tests.support.knowledge_base import (
    NEIGHBOURS,
    STORIES,
    STORY_IDS,
    build_kb,
    kb_settings,
)

MODES = ("keyword", "semantic", "hybrid")
HOSTILE = [
    '"foo',
    "AND OR",
    "x509: certificate",
    "NEAR(",
    "*",
    '"',
    "''",
    "fluent*",
    "title:fluent",
    "-logs",
    "NOT dns",
    "a AND",
    "(((",
    "^dns",
    "{text title}: dns",
    "dns + kubernetes",
    "café 東京",
    "_",
    "\x00",
]


def ids(hits) -> list[str]:
    return [h.id for h in hits]


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_input_never_breaks_fts(kb, kbdb, mode, query) -> None:
    hits = search(kbdb, query, settings=kb[1], mode=mode)
    assert isinstance(hits, list)


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('x509: "certificate') == '"x509:" OR """certificate"'
    assert fts_query("AND OR NEAR(") == '"NEAR("'  # and/or are stopwords here
    assert fts_query("OR AND") == '"OR" OR "AND"'
    assert fts_query("how did we lose logs") == '"lose" OR "logs"'  # stopwords dropped
    assert fts_query("the") == '"the"'  # unless nothing else is left
    assert fts_query("* - _") is None
    # one word once however it is punctuated or cased: twice, bm25 would weigh it double
    assert fts_query("logs, Logs logs: (LOGS) fluent-bit fluent_bit") == '"logs," OR "fluent-bit"'
    # a stopword is one whichever way it is punctuated, in any order
    assert fts_query("the dns the—") == fts_query("the— dns “the”") == '"dns"'


def test_error_string_query_finds_the_story(kb, kbdb) -> None:
    assert ids(search(kbdb, "x509: certificate", settings=kb[1], mode="keyword"))[0] == (
        "certexpiry"
    )


# --------------------------------------------------------------------------- filters

FILTERS = [
    ({"components": ["dns"]}, lambda s: "dns" in s.components),
    ({"components": ["DNS", "networking"]}, lambda s: {"dns", "networking"} <= set(s.components)),
    ({"impacts": ["data-loss"]}, lambda s: "data-loss" in s.impacts),
    ({"since": 2022}, lambda s: s.year >= 2022),
    ({"sources": ["k8s-failure-stories"]}, lambda s: s.source == 2),
    ({"link_status": ["dead", "archived"]}, lambda s: s.link_status in ("dead", "archived")),
    (
        {"components": "kubernetes", "since": 2020, "link_status": "live"},
        lambda s: "kubernetes" in s.components and s.year >= 2020 and s.link_status == "live",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("filters", "predicate"), FILTERS)
def test_filters_apply_in_every_mode(kb, kbdb, mode, filters, predicate) -> None:
    expected = {s.id for s in STORIES if not s.removed and predicate(s)}
    assert expected
    # a query every story matches in every mode
    hits = search(kbdb, "outage logs dns model", settings=kb[1], mode=mode, limit=50, **filters)
    found = set(ids(hits))
    assert found <= expected
    if mode == "semantic":
        assert found == expected  # semantic ranks every allowed story


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            {"components": ["dnss"]},
            "unknown component 'dnss'; valid values: airflow, data-pipeline",
        ),
        ({"impacts": ["boom"]}, "unknown impact 'boom'; valid values: bad-predictions"),
        ({"sources": ["nope"]}, "valid values: awesome-mlops-failures, k8s-failure-stories"),
        ({"link_status": ["gone"]}, "valid values: archived, blocked, dead, error, live"),
        ({"since": "2020"}, "since must be a year"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_unknown_filter_values_list_the_valid_ones(kb, kbdb, mode, filters, message) -> None:
    with pytest.raises(SearchError) as raised:
        search(kbdb, "logs", settings=kb[1], mode=mode, **filters)
    assert message in str(raised.value)


def test_removed_stories_never_appear(kb, kbdb) -> None:
    for mode in MODES:
        hits = search(kbdb, "DNS conntrack race sequel", settings=kb[1], mode=mode, limit=50)
        assert "removed" not in ids(hits)
        assert set(ids(hits)) <= set(STORY_IDS)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(kb, kbdb, query) -> None:
    with pytest.raises(SearchError, match="empty query"):
        search(kbdb, query, settings=kb[1])


def test_overlong_query(kb, kbdb) -> None:
    with pytest.raises(SearchError, match="1001 characters long; the limit is 1000"):
        search(kbdb, "x" * 1001, settings=kb[1])
    search(kbdb, "logs " * 200, settings=kb[1], mode="keyword")  # 1000 is fine


def test_unknown_mode(kb, kbdb) -> None:
    with pytest.raises(SearchError, match="valid modes: hybrid, semantic, keyword"):
        search(kbdb, "logs", settings=kb[1], mode="fuzzy")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_empty_database(tmp_path: Path, mode) -> None:
    db = open_db(tmp_path / "empty.db")
    with pytest.raises(SearchError) as raised:
        search(db, "logs", settings=Settings(db_path=tmp_path / "empty.db"), mode=mode)
    assert str(raised.value) == EMPTY_DB_MESSAGE
    assert "run `mlopsmortem crawl`" in EMPTY_DB_MESSAGE


def test_passages_without_embeddings(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    sync_passages(db, settings=settings)
    assert ids(search(db, "fluent-bit", settings=settings, mode="keyword"))[0] == "fluentbit"
    for mode in ("semantic", "hybrid"):
        with pytest.raises(SearchError, match="no passage has an embedding"):
            search(db, "fluent-bit", settings=settings, mode=mode)


# --------------------------------------------------------------------------- vector cache


def test_vector_index_reloads_only_when_embeddings_change(kb_copy) -> None:
    path, settings = kb_copy
    reader = open_db(path)
    writer = open_db(path)
    index = VectorIndex("all-MiniLM-L6-v2")
    search(reader, "logs", settings=settings, index=index)
    search(reader, "dns", settings=settings, index=index)
    assert index.loads == 1
    # another connection commits something unrelated: checked, not reloaded
    writer.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    writer.conn.commit()
    search(reader, "logs", settings=settings, index=index)
    assert index.loads == 1
    # another connection re-embeds a changed passage: reloaded once
    writer.execute(
        "UPDATE documents SET text = 'Brand new text about GPUs.' WHERE story_id='pgpool'"
    )
    writer.conn.commit()
    sync_passages(writer, settings=settings, story_ids=["pgpool"])
    embed_passages(writer, settings, progress=False)
    hits = search(
        reader, "brand new text about GPUs", settings=settings, mode="semantic", index=index
    )
    assert index.loads == 2
    assert hits[0].id == "pgpool" and "Brand new text" in hits[0].snippet
    search(reader, "logs", settings=settings, index=index)
    assert index.loads == 2
    # writes through the reader's own connection (data_version does not move): noticed
    reader.execute("INSERT INTO meta (key, value) VALUES ('z', 'w')")
    reader.conn.commit()
    search(reader, "logs", settings=settings, index=index)
    assert index.loads == 2
    reader.execute("DELETE FROM embeddings WHERE passage_id IN (SELECT max(id) FROM passages)")
    reader.conn.commit()
    search(reader, "logs", settings=settings, index=index)
    assert index.loads == 3
    # a different connection to the same file: signature check only
    other = open_db(path)
    search(other, "logs", settings=settings, index=index)
    assert index.loads == 3


def test_vector_index_remembers_several_connections(kb_copy) -> None:
    path, settings = kb_copy
    first, second = open_db(path), open_db(path)
    index = VectorIndex("all-MiniLM-L6-v2")
    for db in (first, second):
        index.refresh(db.conn)
    statements: list[str] = []
    for db in (first, second):
        db.conn.set_trace_callback(statements.append)
    for _ in range(3):
        index.refresh(first.conn)
        index.refresh(second.conn)
    assert statements == ["PRAGMA data_version"] * 6  # no count(*), no reload
    assert index.loads == 1


def test_default_index_is_shared_per_file_and_model(kb, kbdb) -> None:
    first = vector_index(kbdb, "all-MiniLM-L6-v2")
    again = open_db(kb[0])
    assert vector_index(again, "sentence-transformers/all-MiniLM-L6-v2") is first
    search(kbdb, "logs", settings=kb[1])
    loads = first.loads
    search(again, "dns", settings=kb[1])
    assert first.loads == loads


def test_query_embedding_is_cached(kb) -> None:
    load_model()
    first = embed_query("a query seen twice")
    assert embed_query("a query seen twice") is first
    assert not first.flags.writeable


# --------------------------------------------------------------------------- similar


@pytest.mark.parametrize(("story", "neighbour"), NEIGHBOURS)
def test_similar_returns_the_topical_neighbour_first(kb, kbdb, story, neighbour) -> None:
    hits = similar(kbdb, story, settings=kb[1], limit=5)
    assert hits[0].id == neighbour
    assert story not in ids(hits) and "removed" not in ids(hits)
    assert all(h.matched_by == "semantic" and h.snippet for h in hits)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_similar_unknown_story(kb, kbdb) -> None:
    with pytest.raises(NotFoundError, match="no story with id 'nope'"):
        similar(kbdb, "nope", settings=kb[1])


def test_similar_needs_embeddings(tmp_path: Path) -> None:
    db = build_kb(tmp_path / "kb.db")
    settings = kb_settings(tmp_path / "kb.db")
    sync_passages(db, settings=settings)
    with pytest.raises(SearchError, match="no embedded passages"):
        similar(db, "fluentbit", settings=settings)


def test_timings_report_each_stage(kb, kbdb) -> None:
    timings: dict[str, float] = {}
    search(kbdb, "lost logs", settings=kb[1], timings=timings)
    assert {"filters", "embed", "refresh", "scan", "keyword", "fusion", "hydrate"} <= set(timings)
    assert all(v >= 0 for v in timings.values())


def test_similar_excludes_removed_stories(kb, kbdb) -> None:
    hits = similar(kbdb, "conntrack", settings=kb[1], limit=50)
    assert set(ids(hits)) == set(STORY_IDS) - {"conntrack"}
