"""The Datasette plugin (plugins/mlopsmortem_search.py), metadata and serve settings, end to end.

One real knowledge base per session (the invented stories of tests/support/knowledge_base.py plus a
hostile one, with tags, page history and dead links; passages embedded with the real model),
served by a real `Datasette([path], plugins_dir=..., metadata=...)` and queried through its
in-process client.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.knowledge_base import STORIES, Story, build_kb, kb_settings

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
        "summary",
        "triggers",
        "detection",
        "duration_minutes",
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
