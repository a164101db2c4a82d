"""The plugin's filters and facet counts, and the tables and facets Datasette itself shows
(metadata): the knowledge base served as in tests/test_plugin.py."""

from __future__ import annotations

import copy
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.knowledge_base import SOURCES
from tests.test_plugin import (
    ALL,
    DEAD,
    LIVE,
    PLUGINS,
    RECENT,
    ds,
    get_html,
    get_json,
    kb_path,
    search_path,
    settings,
)

__all__ = ["ds", "kb_path", "settings"]  # fixtures used below


# --------------------------------------------------------------------------- filters, facets


@pytest.mark.asyncio
async def test_filters(ds) -> None:
    async def ids(**filters) -> list[str]:
        # semantic mode ranks every story that passes the filters
        data = await get_json(ds, search_path(q="outage", mode="semantic", n=50, **filters))
        return [h["id"] for h in data["results"]]

    def wanted(predicate) -> set[str]:
        return {s.id for s in LIVE if predicate(s)}

    assert set(await ids(component="dns")) == wanted(lambda s: "dns" in s.components)
    assert set(await ids(component=["kubernetes", "dns"])) == wanted(
        lambda s: {"kubernetes", "dns"} <= set(s.components)
    )
    assert set(await ids(impact="data-loss")) == wanted(lambda s: "data-loss" in s.impacts)
    assert set(await ids(since=2022)) == wanted(lambda s: s.year >= 2022)
    assert set(await ids(link_status="dead")) == wanted(lambda s: s.link_status == "dead")
    assert set(await ids(link_status=["dead", "archived"])) == DEAD
    source = SOURCES[2]
    assert set(await ids(source=source)) == wanted(lambda s: s.source == 2)
    assert set(await ids(component="KUBERNETES", since=2020, source=source)) == wanted(
        lambda s: "kubernetes" in s.components and s.year >= 2020 and s.source == 2
    )


def expected_counts(stories, attribute: str) -> dict[str, int]:
    return dict(Counter(v for s in stories for v in getattr(s, attribute)))


@pytest.mark.asyncio
async def test_search_facet_counts(ds) -> None:
    data = await get_json(ds, search_path(q="logs", facets=1))
    facets = data["facets"]
    assert set(facets) == {
        "component",
        "impact",
        "since",
        "source",
        "link_status",
        "trigger",
        "detection",
        "duration",
    }
    # no story of this knowledge base has an incident card yet (tests/test_search_cards.py)
    assert facets["trigger"] == facets["detection"] == facets["duration"] == []

    def counts(name: str) -> dict:
        return {item["value"]: item["count"] for item in facets[name]}

    assert counts("component") == expected_counts(LIVE, "components")
    assert counts("impact") == expected_counts(LIVE, "impacts")
    assert counts("component")["kubernetes"] == 4 and counts("component")["dns"] == 2
    assert counts("link_status") == dict(Counter(s.link_status for s in LIVE))
    assert counts("source") == {
        name: sum(1 for s in LIVE if s.source == sid) for sid, name in SOURCES.items()
    }
    newest = max(s.year for s in LIVE)
    assert counts("since")[newest] == sum(1 for s in LIVE if s.year == newest)
    assert counts("since")[2019] == sum(1 for s in LIVE if s.year >= 2019)
    # with filters: components combine (AND); link status counts ignore their own filter
    data = await get_json(
        ds, search_path(q="logs", facets=1, component="kubernetes", link_status="dead")
    )
    facets = data["facets"]
    kube_dead = [s for s in LIVE if "kubernetes" in s.components and s.link_status == "dead"]
    assert counts("component") == expected_counts(kube_dead, "components")
    kube = [s for s in LIVE if "kubernetes" in s.components]
    assert counts("link_status") == dict(Counter(s.link_status for s in kube))
    assert [i["value"] for i in facets["link_status"] if i["selected"]] == ["dead"]
    assert "facets=1" in (data["next"] or "facets=1")


@pytest.mark.asyncio
async def test_keyword_facet_counts_are_of_the_stories_containing_the_words(ds) -> None:
    # a keyword search returns only the stories containing its words: its counts are of
    # those, so a count is what choosing that value gives
    found = await get_json(ds, search_path(q="logs", mode="keyword", n=50, facets=1))
    assert 0 < found["count"] < len(LIVE) and found["next"] is None
    returned = [s for s in LIVE if s.id in {r["id"] for r in found["results"]}]
    counts = {item["value"]: item["count"] for item in found["facets"]["component"]}
    assert counts == expected_counts(returned, "components")
    for component, count in counts.items():
        chosen = await get_json(
            ds, search_path(q="logs", mode="keyword", n=50, component=component)
        )
        assert chosen["count"] == count, component
    # hybrid ranks every story passing the filters: its counts are of all of them
    hybrid = await get_json(ds, search_path(q="logs", facets=1))
    assert {i["value"]: i["count"] for i in hybrid["facets"]["component"]} == expected_counts(
        LIVE, "components"
    )
    page = await get_html(ds, search_path(False, q="logs", mode="keyword"))
    assert "Counts: stories containing your words" in page


@pytest.mark.asyncio
async def test_search_page_facet_counts_and_links(ds) -> None:
    page = await get_html(ds, search_path(False, q="dns"))
    dns_count = sum(1 for s in LIVE if "dns" in s.components)
    assert re.search(
        r'href="/-/search\?q=dns&amp;component=dns"\s+data-value="dns">'
        rf'<span class="mm-label">dns</span><span class="mm-count">{dns_count}</span>',
        page,
    )
    dead = sum(1 for s in LIVE if s.link_status == "dead")
    assert f'<span class="mm-label">dead</span><span class="mm-count">{dead}</span>' in page
    assert "2022 or later" in page


@pytest.mark.asyncio
async def test_stories_table_facets_from_metadata(ds) -> None:
    data = await get_json(ds, "/kb/stories.json?_facet_array=components&_size=0")
    results = data["facet_results"]["components"]["results"]
    assert {r["value"]: r["count"] for r in results} == expected_counts(ALL, "components")
    data = await get_json(ds, "/kb/stories.json?_size=1")
    assert {"components", "impacts", "year", "category"} <= set(data["facet_results"])
    impacts = {r["value"]: r["count"] for r in data["facet_results"]["impacts"]["results"]}
    assert impacts == expected_counts(ALL, "impacts")
    years = {r["value"]: r["count"] for r in data["facet_results"]["year"]["results"]}
    assert years == dict(Counter(s.year for s in ALL))
    # default sort: newest first_seen first
    assert data["rows"][0][0] in RECENT  # the id column
    assert "sorted by first_seen descending" in data["human_description_en"]


@pytest.mark.asyncio
async def test_metadata_hides_internal_tables_and_describes_the_rest(ds) -> None:
    data = await get_json(ds, "/kb.json")
    hidden = {t["name"] for t in data["tables"] if t["hidden"]}
    visible = {t["name"] for t in data["tables"] if not t["hidden"]}
    assert {"embeddings", "passages_fts", "_mlopsmortem_migrations", "meta"} <= hidden
    assert {"stories", "pages", "passages", "tags", "documents", "page_history"} <= visible
    metadata = load_metadata(Settings(db_path=Path("kb.db")))
    tables = metadata["databases"]["kb"]["tables"]
    conn = sqlite3.connect(ds.databases["kb"].path)
    try:
        for table in visible:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info([{table}])")]
            assert tables[table].get("description"), table
            missing = set(columns) - set(tables[table].get("columns", {}))
            assert not missing, f"{table}: undocumented columns {missing}"
    finally:
        conn.close()
    page = await get_html(ds, "/kb/stories")
    assert "One row per story" in page


@pytest.mark.asyncio
async def test_passages_table_full_text_search(ds) -> None:
    data = await get_json(ds, "/kb/passages.json?_search=conntrack&_shape=array&_col=story_id")
    assert {row["story_id"] for row in data} >= {"conntrack"}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
async def test_ranked_facet_counts_are_of_the_results_a_visitor_pages_through(
    kb_path, settings, mode
) -> None:
    # hybrid and semantic searches rank every story passing the filters: their counts are of
    # the first `facet_results` results, not of the whole knowledge base
    metadata = copy.deepcopy(load_metadata(settings))
    metadata["plugins"]["mlopsmortem-search"]["facet_results"] = 5
    ds = Datasette(
        [str(kb_path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )
    query = "lost logs fluent-bit"
    data = await get_json(ds, search_path(q=query, mode=mode, n=5, facets=1))
    first = [s for s in LIVE if s.id in {r["id"] for r in data["results"]}]
    assert len(first) == 5
    facets = data["facets"]
    assert {i["value"]: i["count"] for i in facets["component"]} == expected_counts(
        first, "components"
    )
    assert {i["value"]: i["count"] for i in facets["link_status"]} == dict(
        Counter(s.link_status for s in first)
    )
    assert data["facets_count"] == (
        "stories among the first 5 results of this search, with the other filters"
    )
    # a count that leaves its own filter out is of the first results without that filter
    dead = await get_json(ds, search_path(q=query, mode=mode, n=5, facets=1, link_status="dead"))
    assert {i["value"]: i["count"] for i in dead["facets"]["link_status"]} == dict(
        Counter(s.link_status for s in first)
    )
    page = await get_html(ds, search_path(False, q=query, mode=mode))
    assert "Counts: stories among the first 5 results of this search" in page
