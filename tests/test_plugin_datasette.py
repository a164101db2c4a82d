"""The plugin inside Datasette: escaping, read-only serving, SQL functions, canned queries and
the wiring (menu, startup, `serve`'s Datasette, the plain `datasette` command)."""

from __future__ import annotations

import html
import json
import sqlite3
import subprocess
import sys
import time
import urllib.parse

import pytest
from datasette.app import Datasette

from mlopsmortem.passages.embed import encode_vector
from mlopsmortem.search.vectors import embed_query
from mlopsmortem.settings import Settings
from mlopsmortem.web.links import safe_href
from mlopsmortem.web.queries import library_connection
from mlopsmortem.web.serve import DATASETTE_SETTINGS, build_datasette, load_metadata
from tests.test_plugin import (
    ALL,
    DEAD,
    LIVE,
    PLUGINS,
    RECENT,
    XSS_TITLE,
    ds,
    get_html,
    get_json,
    kb_path,
    result_ids,
    search_path,
    settings,
)

__all__ = ["ds", "kb_path", "settings"]  # fixtures used below


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


def test_library_connection_interrupts_slow_sql_and_restores_the_connection() -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        " SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000)"
    )
    started = time.perf_counter()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        with library_connection(conn, 50):
            assert conn.row_factory is None
            conn.execute(slow).fetchone()
    assert time.perf_counter() - started < 2
    assert conn.row_factory is sqlite3.Row
    assert conn.execute("SELECT 1").fetchone()[0] == 1  # handler removed


def test_only_http_urls_become_links() -> None:
    assert safe_href("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert safe_href(" http://example.org ") == "http://example.org"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "/local", None):
        assert safe_href(bad) is None
