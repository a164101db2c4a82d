"""The Datasette plugin (plugins/mlopsmortem_search.py), metadata and serve settings, end to end.

One real knowledge base per session (the invented stories of tests/support/knowledge_base.py plus a
hostile one, with tags, page history and dead links; passages embedded with the real model),
served by a real `Datasette([path], plugins_dir=..., metadata=...)` and queried through its
in-process client.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.passages.embed import embed_passages, encode_vector
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.search.vectors import embed_query
from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, build_datasette, load_metadata
from tests.support.knowledge_base import NEIGHBOURS, SOURCES, STORIES, Story, build_kb, kb_settings

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
XSS_TITLE = "<script>alert(1)</script>"
XSS_COMPONENT = "<img src=x onerror=alert(2)>"
XSS = Story(
    "xss",
    XSS_TITLE,
    "<b>Evil</b> Corp",
    "blog",
    2024,
    "A crawled title that is markup.",
    ("security", XSS_COMPONENT),
    ("outage",),
    1,
    "live",
    "Our quokka status board showed a crawled page title verbatim: <script>alert(1)</script>. "
    "Every visitor ran the injected script until the quokka team escaped the output.\n\n"
    "Cross-site scripting through scraped HTML is a classic; templates must escape by default.",
)
ALL = (*STORIES, XSS)
LIVE = tuple(s for s in ALL if not s.removed)
RECENT = {"fluentbit", "canary", "xss"}  # first seen now; every other story in 2020
DEAD = {s.id for s in LIVE if s.link_status in ("dead", "archived")}


def build_plugin_kb(path: Path) -> Path:
    """The test knowledge base at `path` (also used by test_browser.py)."""
    db = build_kb(path, ALL)
    with db.conn:
        db.execute(
            "UPDATE stories SET first_seen = '2020-01-01T00:00:00Z' WHERE id NOT IN (?, ?, ?)",
            sorted(RECENT),
        )
        db.execute("UPDATE stories SET url = 'javascript:alert(3)' WHERE id = 'xss'")
        db.execute(
            "UPDATE pages SET status_code = 404, error_kind = 'http', error_message = 'Not Found',"
            " dead_since = '2024-03-01T00:00:00Z', fetched_at = '2024-05-01T00:00:00Z'"
            " WHERE link_status IN ('dead', 'archived')"
        )
        db.execute(
            "UPDATE pages SET archive_url = 'https://web.archive.org/web/2023/' || url"
            " WHERE link_status = 'archived'"
        )
        db["tags"].insert_all(
            [
                {
                    "story_id": "fluentbit",
                    "kind": "component",
                    "tag": "logging",
                    "method": "rule",
                    "confidence": 0.9,
                    "evidence": "our Fluent Bit daemonset kept tailing container log files",
                },
                {
                    "story_id": "fluentbit",
                    "kind": "impact",
                    "tag": "data-loss",
                    "method": "list",
                    "confidence": 1.0,
                    "evidence": "lost logs",
                    "original": "lost logs",
                },
                {
                    "story_id": "xss",
                    "kind": "component",
                    "tag": "security",
                    "method": "rule",
                    "confidence": 0.5,
                    "evidence": "<script>alert(4)</script> in the page",
                },
            ]
        )
        db["page_history"].insert_all(
            [
                {
                    "story_id": "fluentbit",
                    "content_hash": "a" * 64,
                    "text_hash": "b" * 16,
                    "link_status": "live",
                    "fetched_at": "2023-01-01T00:00:00Z",
                    "replaced_at": "2023-06-01T00:00:00Z",
                },
                {
                    "story_id": "fluentbit",
                    "content_hash": "c" * 64,
                    "text_hash": "d" * 16,
                    "link_status": "redirected",
                    "fetched_at": "2023-06-01T00:00:00Z",
                    "replaced_at": "2024-01-01T00:00:00Z",
                },
            ]
        )
    settings = kb_settings(path)
    sync_passages(db, settings=settings)
    embed_passages(db, settings, progress=False)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture(scope="session")
def kb_path(tmp_path_factory) -> Path:
    return build_plugin_kb(tmp_path_factory.mktemp("plugin") / "kb.db")


@pytest.fixture(scope="session")
def settings(kb_path: Path) -> Settings:
    return Settings(db_path=kb_path, quiet=True)


@pytest.fixture
def ds(kb_path: Path, settings: Settings) -> Datasette:
    return Datasette(
        [str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )


async def get_json(ds: Datasette, path: str, status: int = 200) -> dict:
    response = await ds.client.get(path)
    assert response.status_code == status, response.text[:500]
    return response.json()


async def get_html(ds: Datasette, path: str, status: int = 200) -> str:
    response = await ds.client.get(path)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def search_path(json_: bool = True, **params) -> str:
    pairs = []
    for key, value in params.items():
        for v in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, str(v)))
    return ("/-/search.json?" if json_ else "/-/search?") + urllib.parse.urlencode(pairs)


def local(url: str) -> str:
    """Path and query of an absolute URL, for the in-process client."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def story(story_id: str) -> Story:
    return next(s for s in ALL if s.id == story_id)


def result_ids(page: str) -> list[str]:
    return re.findall(r'<li class="mm-hit" data-story-id="([^"]+)"', page)


# --------------------------------------------------------------------------- search page


@pytest.mark.asyncio
async def test_search_page_shows_ranked_results_with_links_and_marks(ds) -> None:
    page = await get_html(ds, search_path(False, q="lost logs fluent-bit"))
    assert result_ids(page)[0] == "fluentbit"
    first = page[page.index('data-story-id="fluentbit"') :]
    first = first[: first.index("</li>")]
    assert 'href="/kb/stories/fluentbit?q=lost+logs+fluent-bit"' in first
    assert 'href="https://example.org/fluentbit"' in first
    assert 'href="/-/similar/fluentbit?q=lost+logs+fluent-bit"' in first
    assert "Acme Cloud" in first and "2022" in first
    assert 'class="mm-status mm-status-live"' in first
    assert "<mark>" in first and 'class="mm-snippet"' in first
    assert 'class="mm-chip mm-chip-component"' in first and ">logging<" in first
    assert 'class="mm-chip mm-chip-impact"' in first and ">data-loss<" in first
    # the stylesheet is ours, served locally; no external assets
    assert 'href="/-/mlopsmortem.css?' in page
    assert not re.search(r'<(link|script|img|iframe)\b[^>]*\b(src|href)="(https?:)?//', page)
    css = await ds.client.get("/-/mlopsmortem.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".mm-hit" in css.text and "http" not in css.text


@pytest.mark.asyncio
async def test_search_page_without_query_shows_form_and_facets(ds) -> None:
    page = await get_html(ds, "/-/search")
    assert '<input type="search" name="q"' in page
    assert 'data-facet="component"' in page and 'data-facet="link_status"' in page
    assert result_ids(page) == []
    assert 'href="/kb/stories"' in page


@pytest.mark.asyncio
async def test_search_page_keeps_mode_and_filters_in_form_and_links(ds) -> None:
    page = await get_html(
        ds, search_path(False, q="dns", mode="keyword", component="kubernetes", since=2019)
    )
    assert re.search(r'<input type="radio" name="mode" value="keyword" checked[ >]', page)
    assert '<input type="hidden" name="component" value="kubernetes">' in page
    assert '<input type="hidden" name="since" value="2019">' in page
    ids = result_ids(page)
    assert ids and all("kubernetes" in story(i).components for i in ids)
    # the active filter can be removed again
    assert "Component: kubernetes ✕" in page
    assert 'href="/-/search?q=dns&amp;mode=keyword&amp;since=2019"' in page


# --------------------------------------------------------------------------- JSON API


@pytest.mark.asyncio
async def test_search_json_documented_fields(ds) -> None:
    data = await get_json(ds, search_path(q="CUDA out of memory", n=3))
    assert set(data) == {
        "ok",
        "database",
        "query",
        "mode",
        "filters",
        "n",
        "offset",
        "count",
        "results",
        "next",
    }
    assert data["ok"] is True and data["database"] == "kb" and data["mode"] == "hybrid"
    assert data["n"] == 3 and data["offset"] == 0 and data["count"] == 3
    hit = data["results"][0]
    assert hit["id"] == "gpuoom"
    assert set(hit) == {
        "id",
        "url",
        "title",
        "publisher",
        "year",
        "kind",
        "category",
        "link_status",
        "components",
        "impacts",
        "score",
        "rank",
        "snippet",
        "snippet_marked",
        "highlights",
        "passage_id",
        "matched_by",
        "story_url",
        "similar_url",
    }
    assert hit["story_url"] == "/kb/stories/gpuoom"
    assert hit["similar_url"] == "/-/similar/gpuoom.json"
    assert [h["rank"] for h in data["results"]] == [1, 2, 3]
    for start, end in hit["highlights"]:
        assert f"<mark>{html.escape(hit['snippet'][start:end])}</mark>" in hit["snippet_marked"]


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [("conntrack dns timeout", "conntrack"), ("terraform destroyed database", "terraform")],
)
async def test_search_json_modes(ds, mode, query, expected) -> None:
    data = await get_json(ds, search_path(q=query, mode=mode, n=3))
    assert data["mode"] == mode
    assert data["results"][0]["id"] == expected


@pytest.mark.asyncio
async def test_search_json_order_is_stable(ds) -> None:
    path = search_path(q="kubernetes outage", n=10)
    first = await get_json(ds, path)
    second = await get_json(ds, path)
    assert first == second


@pytest.mark.asyncio
async def test_paging_follows_next_until_it_stops(ds) -> None:
    # semantic search ranks every story that has vectors: 16 results, pages of 3
    everything = await get_json(ds, search_path(q="logs", mode="semantic", n=50))
    assert everything["next"] is None
    expected = [h["id"] for h in everything["results"]]
    assert len(expected) == len(LIVE)
    seen: list[str] = []
    ranks: list[int] = []
    url: str | None = search_path(q="logs", mode="semantic", n=3)
    pages = 0
    while url:
        data = await get_json(ds, local(url))
        assert data["n"] == 3 and data["count"] <= 3
        seen += [h["id"] for h in data["results"]]
        ranks += [h["rank"] for h in data["results"]]
        url = data["next"]
        if url:
            assert data["count"] == 3 and url.startswith("http://localhost/-/search.json?")
            assert f"offset={data['offset'] + 3}" in url and "q=logs" in url
        pages += 1
        assert pages < 20
    assert seen == expected
    assert ranks == list(range(1, len(expected) + 1))


@pytest.mark.asyncio
async def test_html_paging_links(ds) -> None:
    page = await get_html(ds, search_path(False, q="logs", mode="semantic", n=4))
    assert 'rel="next"' in page and 'rel="prev"' not in page
    href = html.unescape(re.search(r'<a href="([^"]+)" rel="next"', page).group(1))
    second = await get_html(ds, href)
    assert 'rel="prev"' in second
    assert result_ids(second)[0] != result_ids(page)[0]
    assert '<span class="mm-rank">5.</span>' in second


@pytest.mark.asyncio
async def test_n_and_offset_are_bounded(ds) -> None:
    data = await get_json(ds, search_path(q="logs", n=500))
    assert data["n"] == 50 and data["count"] <= 50
    for params in ({"n": 0}, {"n": "many"}, {"offset": -1}, {"offset": 5000}, {"since": "x"}):
        error = await get_json(ds, search_path(q="logs", **params), status=400)
        assert error["ok"] is False and error["status"] == 400 and error["error"]
    page = await get_html(ds, search_path(False, q="logs", offset=5000), status=400)
    assert "offset must be between 0 and 1000" in page


@pytest.mark.asyncio
async def test_bad_parameters_are_400_with_a_message(ds) -> None:
    error = await get_json(ds, search_path(q="dns", mode="fuzzy"), status=400)
    assert "unknown mode" in error["error"]
    error = await get_json(ds, search_path(q="dns", component="nosuch"), status=400)
    assert "unknown component 'nosuch'" in error["error"] and "kubernetes" in error["error"]
    error = await get_json(ds, "/-/search.json", status=400)
    assert "empty query" in error["error"]


@pytest.mark.asyncio
async def test_over_long_query_is_400_in_html_and_json(ds, settings) -> None:
    query = "dns " * (settings.max_query_chars // 4 + 10)
    error = await get_json(ds, search_path(q=query), status=400)
    assert f"the limit is {settings.max_query_chars:,}" in error["error"]
    page = await get_html(ds, search_path(False, q=query), status=400)
    assert 'class="mm-error"' in page and f"the limit is {settings.max_query_chars:,}" in page


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
    assert set(facets) == {"component", "impact", "since", "source", "link_status"}

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


# --------------------------------------------------------------------------- similar


@pytest.mark.asyncio
@pytest.mark.parametrize(("story_id", "neighbour"), NEIGHBOURS)
async def test_similar_json(ds, story_id, neighbour) -> None:
    data = await get_json(ds, f"/-/similar/{story_id}.json?n=5")
    assert data["ok"] is True and data["story"]["id"] == story_id
    assert data["story"]["story_url"] == f"/kb/stories/{story_id}"
    ids = [h["id"] for h in data["results"]]
    assert ids[0] == neighbour and story_id not in ids and len(ids) == 5
    scores = [h["score"] for h in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert "removed" not in ids


@pytest.mark.asyncio
async def test_similar_page(ds) -> None:
    page = await get_html(ds, "/-/similar/conntrack")
    assert "DNS timeouts from a conntrack race in Kubernetes" in page
    assert result_ids(page)[0] == "ndots"
    assert 'class="mm-bar"' in page and 'href="/-/similar/conntrack.json"' in page
    data = await get_json(ds, "/-/similar/conntrack.json?n=500")
    assert data["n"] == 50


@pytest.mark.asyncio
async def test_unknown_story_is_404(ds) -> None:
    error = await get_json(ds, "/-/similar/nope.json", status=404)
    assert error == {"ok": False, "error": "no story with id 'nope'", "status": 404}
    page = await get_html(ds, "/-/similar/nope", status=404)
    assert "no story with id" in page
    await get_html(ds, "/-/similar/%3Cscript%3E", status=404)


@pytest.mark.asyncio
async def test_story_without_vectors_gets_a_note(ds) -> None:
    data = await get_json(ds, "/-/similar/removed.json")
    assert data["results"] == [] and "no embedded passages" in data["note"]


# --------------------------------------------------------------------------- safety


@pytest.mark.asyncio
async def test_markup_from_crawled_pages_is_escaped_everywhere(ds) -> None:
    escaped = html.escape(XSS_TITLE, quote=False)
    pages = {
        "search": await get_html(ds, search_path(False, q="quokka status board")),
        "similar": await get_html(ds, "/-/similar/xss"),
        "row": await get_html(ds, "/kb/stories/xss"),
    }
    assert result_ids(pages["search"])[0] == "xss"
    for name, page in pages.items():
        assert "<script>alert(" not in page, name
        assert "<img src=x" not in page, name
        assert "<b>Evil</b>" not in page, name
        assert 'href="javascript:' not in page, name
        assert escaped in page or html.escape(XSS_TITLE) in page, name
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in pages["row"]  # tag evidence
    # the similar page of a neighbour lists the hostile story escaped as well
    data = await get_json(ds, "/-/similar/xss.json?n=50")
    neighbour = data["results"][0]["id"]
    page = await get_html(ds, f"/-/similar/{neighbour}?n=50")
    assert 'data-story-id="xss"' in page and "<script>alert(" not in page
    # JSON carries the raw text (clients escape), with a pre-escaped snippet_marked
    data = await get_json(ds, search_path(q="quokka"))
    hit = data["results"][0]
    assert hit["title"] == XSS_TITLE
    assert "<script>" not in hit["snippet_marked"]


@pytest.mark.asyncio
async def test_datasette_stays_read_only(ds) -> None:
    for sql in ("delete from stories", "update stories set title = 'x'", "drop table tags"):
        response = await ds.client.get("/kb.json?" + urllib.parse.urlencode({"sql": sql}))
        assert response.status_code == 400
    response = await ds.client.post("/kb/stories", data={"title": "x"})
    assert response.status_code >= 400  # Datasette 0.65 only accepts POSTs to writable queries
    for query in ("stories_similar_to_text", "dead_links", "new_this_week"):
        assert not ds.metadata("queries", database="kb")[query].get("write")
    data = await get_json(ds, "/kb.json?sql=select+count(*)+as+n+from+stories&_shape=array")
    assert data == [{"n": len(ALL)}]


# --------------------------------------------------------------------------- SQL functions


async def sql(ds: Datasette, query: str, **params) -> list[dict]:
    return await get_json(
        ds, "/kb.json?" + urllib.parse.urlencode({"sql": query, "_shape": "array", **params})
    )


@pytest.mark.asyncio
async def test_mm_cosine(ds) -> None:
    one, zero = "0000803f", "00000000"  # 1.0 and 0.0 as little-endian float32
    rows = await sql(
        ds,
        f"select mm_cosine(x'{one}{zero}', x'{one}{zero}') as same,"
        f" mm_cosine(x'{one}{zero}', x'{zero}{one}') as orthogonal,"
        f" mm_cosine(x'{one}{one}', x'{one}{zero}') as diagonal,"
        f" mm_cosine(x'{one}', x'{one}{zero}') as mismatched,"
        f" mm_cosine(null, x'{one}') as missing, mm_cosine(x'{zero}', x'{zero}') as zero",
    )
    row = rows[0]
    assert row["same"] == pytest.approx(1.0) and row["orthogonal"] == pytest.approx(0.0)
    assert row["diagonal"] == pytest.approx(2**-0.5)
    assert row["mismatched"] is None and row["missing"] is None and row["zero"] is None


@pytest.mark.asyncio
async def test_mm_embed_matches_the_library(ds) -> None:
    rows = await sql(
        ds,
        "select hex(mm_embed(:t)) as v, length(mm_embed(:t)) as n, mm_model() as model,"
        " mm_cosine(mm_embed(:t), mm_embed(:t)) as self, mm_embed('') as empty",
        t="dns lookups take 5 seconds",
    )
    row = rows[0]
    expected = encode_vector(embed_query("dns lookups take 5 seconds")).hex().upper()
    assert row["v"] == expected and row["n"] == 384 * 4
    assert row["model"] == "all-MiniLM-L6-v2" and row["self"] == pytest.approx(1.0, abs=1e-5)
    assert row["empty"] is None
    # stored passage vectors compare with query vectors in SQL
    rows = await sql(
        ds,
        "select p.story_id, max(mm_cosine(e.vector, mm_embed(:t))) as score from embeddings e"
        " join passages p on p.id = e.passage_id group by p.story_id order by score desc limit 1",
        t="accelerator VRAM exhausted during deep-learning",
    )
    assert rows[0]["story_id"] == "gpuoom"


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_mm_embed_refuses_over_long_text(ds, settings) -> None:
    response = await ds.client.get(
        "/kb.json?"
        + urllib.parse.urlencode({"sql": "select mm_embed(:t)", "t": "x" * 5000, "_shape": "array"})
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------- canned queries


@pytest.mark.asyncio
async def test_canned_queries(ds) -> None:
    rows = await get_json(
        ds,
        "/kb/stories_similar_to_text.json?_shape=array&"
        + urllib.parse.urlencode({"text": "provisioning tool erased live Postgres by accident"}),
    )
    assert rows[0]["id"] == "terraform" and 0 < rows[0]["score"] <= 1
    assert len(rows) == len(LIVE)  # every story with vectors (not the removed one) is ranked
    assert await get_json(ds, "/kb/stories_similar_to_text.json?_shape=array&text=") == []
    rows = await get_json(ds, "/kb/dead_links.json?_shape=array")
    assert {r["id"] for r in rows} == DEAD
    assert all(r["status_code"] == 404 and r["dead_since"] for r in rows)
    archived = [r for r in rows if r["link_status"] == "archived"]
    assert archived and all(
        r["archive_url"].startswith("https://web.archive.org/") for r in archived
    )
    rows = await get_json(ds, "/kb/new_this_week.json?_shape=array")
    assert {r["id"] for r in rows} == RECENT
    rows = await get_json(ds, "/kb/stories_by_component.json?_shape=array&component=dns")
    assert {r["id"] for r in rows} == {s.id for s in LIVE if "dns" in s.components}
    rows = await get_json(ds, "/kb/stories_by_component.json?_shape=array&component=")
    assert len(rows) == sum(len(s.components) for s in LIVE)
    page = await get_html(ds, "/kb/stories_similar_to_text?text=lost+logs")
    assert "Stories similar to a text" in page


# --------------------------------------------------------------------------- story row page


@pytest.mark.asyncio
async def test_story_row_page_shows_tags_status_history_and_similar(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    assert 'class="mm mm-story"' in page
    tags = page[page.index('id="tags"') : page.index('id="similar"')]
    assert "our Fluent Bit daemonset kept tailing container log files" in tags
    assert ">logging<" in tags and ">data-loss<" in tags and "0.90" in tags and "rule" in tags
    assert 'href="/-/search?component=logging"' in tags
    history = page[page.index('id="history"') : page.index("<h2>All columns</h2>")]
    assert history.count("<tr>") == 3  # header + two earlier versions
    assert "2024-01-01T00:00:00Z" in history and "mm-status-redirected" in history
    similar = page[page.index('id="similar"') : page.index('id="history"')]
    assert 'href="/kb/stories/logstash"' in similar
    assert 'href="/-/similar/fluentbit"' in similar
    assert "awesome-mlops-failures" in page  # listed in
    # Datasette's own row table is still there
    assert '<table class="rows-and-columns">' in page


@pytest.mark.asyncio
async def test_story_row_page_of_a_dead_link(ds) -> None:
    page = await get_html(ds, "/kb/stories/ndots")
    assert 'class="mm-status mm-status-dead"' in page
    assert "dead since 2024-03-01T00:00:00Z" in page and "HTTP 404" in page
    assert "No earlier versions of the page." in page
    page = await get_html(ds, "/kb/stories/logstash")
    assert 'href="https://web.archive.org/web/2023/https://example.org/logstash"' in page


@pytest.mark.asyncio
async def test_other_row_pages_are_untouched(ds) -> None:
    page = await get_html(ds, "/kb/sources/1")
    assert "mm-story" not in page and "mlopsmortem.css" not in page
    await get_html(ds, "/kb/stories/nope", status=404)


# --------------------------------------------------------------------------- wiring


@pytest.mark.asyncio
async def test_menu_links_to_search(ds) -> None:
    page = await get_html(ds, "/")
    assert 'href="/-/search">Search failure stories</a>' in page


@pytest.mark.asyncio
async def test_startup_does_not_wait_for_a_model_and_keyword_search_needs_none(
    kb_path, settings
) -> None:
    metadata = load_metadata(settings.with_(model_name=str(kb_path.parent / "no-such-model")))
    ds = Datasette([str(kb_path)], plugins_dir=str(PLUGINS), metadata=metadata)
    started = time.perf_counter()
    await ds.invoke_startup()
    assert time.perf_counter() - started < 1.0
    data = await get_json(ds, search_path(q="conntrack", mode="keyword"))
    assert data["results"][0]["id"] == "conntrack"
    error = await get_json(ds, search_path(q="conntrack", mode="semantic"), status=503)
    assert "mode=keyword" in error["error"]


def test_build_datasette_passes_plugins_metadata_and_limits(settings) -> None:
    ds = build_datasette(settings)
    assert ds.plugins_dir == str(PLUGINS)
    assert ds.template_dir == str(PLUGINS / "templates")
    assert ds.setting("sql_time_limit_ms") == DATASETTE_SETTINGS["sql_time_limit_ms"]
    assert ds.setting("max_returned_rows") == DATASETTE_SETTINGS["max_returned_rows"]
    config = ds.plugin_config("mlopsmortem-search")
    assert config["database"] == "kb" and config["model"] == settings.model_name
    assert config["max_query_chars"] == settings.max_query_chars
    assert "stories_similar_to_text" in ds.metadata("queries", database="kb")


def test_load_metadata_renames_the_database_entry(tmp_path) -> None:
    metadata = load_metadata(Settings(db_path=tmp_path / "failures.db"))
    assert set(metadata["databases"]) == {"failures"}
    assert metadata["plugins"]["mlopsmortem-search"]["database"] == "failures"
    untouched = load_metadata(Settings(db_path=tmp_path / "mlopsmortem.db"))
    assert set(untouched["databases"]) == {"mlopsmortem"}


def test_plain_datasette_cli_loads_the_plugin(kb_path, tmp_path) -> None:
    """`datasette DB --plugins-dir plugins` works without `mlopsmortem serve`."""
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"plugins": {"mlopsmortem-search": {"warm": False}}}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "datasette",
            str(kb_path),
            "--plugins-dir",
            str(PLUGINS),
            "-m",
            str(metadata),
            "--get",
            "/-/search.json?q=NXDOMAIN&mode=keyword",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["id"] == "ndots"


def plugin_module():
    """The plugin as Datasette registered it from --plugins-dir (not importable by name)."""
    from datasette.plugins import pm

    Datasette([], plugins_dir=str(PLUGINS))  # registers the module once per process
    return next(p for p in pm.get_plugins() if p.__name__ == "mlopsmortem_search.py")


def test_library_connection_interrupts_slow_sql_and_restores_the_connection() -> None:
    plugin = plugin_module()
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        " SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000)"
    )
    started = time.perf_counter()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        with plugin.library_connection(conn, 50):
            assert conn.row_factory is None
            conn.execute(slow).fetchone()
    assert time.perf_counter() - started < 2
    assert conn.row_factory is sqlite3.Row
    assert conn.execute("SELECT 1").fetchone()[0] == 1  # handler removed


def test_only_http_urls_become_links() -> None:
    plugin = plugin_module()
    assert plugin.safe_href("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert plugin.safe_href(" http://example.org ") == "http://example.org"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "/local", None):
        assert plugin.safe_href(bad) is None
