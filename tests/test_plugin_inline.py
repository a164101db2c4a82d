"""Where the plugin's queries run: a small knowledge base on the event loop's thread, a large
one (more than `inline_max_passages`) on Datasette's SQL threads. Both answer alike."""

from __future__ import annotations

import copy
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from datasette.app import Datasette

import mlopsmortem.web.queries as web_sql
from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.web.params import BadRequest, kb_state
from mlopsmortem.web.serve import DATASETTE_SETTINGS, PLUGIN_NAME, load_metadata
from tests.support.knowledge_base import kb_settings
from tests.test_plugin import PLUGINS, kb_path, settings

__all__ = ["kb_path", "settings"]  # fixtures used below

PAGES = (
    "/-/search.json?q=lost+logs",
    "/-/search.json?q=lost+logs&mode=keyword&facets=1",
    "/-/search.json?q=kafka+consumer+lag&mode=semantic&n=3&offset=2",
    "/-/search.json?q=dns&component=Kubernetes",
    "/-/feeds/new.atom",
    "/-/feeds/search.atom?q=lost+logs",
    "/-/similar/fluentbit.json",
)
HTML_PAGES = ("/-/search?q=lost+logs", "/-/similar/fluentbit")
ROW_PAGE = "/kb/stories/fluentbit"  # its similar stories and tags come from the plugin


def datasette(kb_path: Path, settings, inline_max_passages: int | None) -> Datasette:
    metadata = copy.deepcopy(load_metadata(settings))
    if inline_max_passages is not None:
        metadata["plugins"][PLUGIN_NAME]["inline_max_passages"] = inline_max_passages
    return Datasette(
        [str(kb_path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )


def passages(kb_path: Path) -> int:
    with sqlite3.connect(kb_path) as conn:
        return conn.execute("SELECT count(*) FROM passages").fetchone()[0]


def threads_of(ds: Datasette) -> list[int]:
    """Records the thread of every query the plugin runs on Datasette's SQL threads."""
    seen: list[int] = []
    db = ds.databases[kb_path_name(ds)]
    real = db.execute_fn

    async def recording(fn):
        def traced(conn):
            seen.append(threading.get_ident())
            return fn(conn)

        return await real(traced)

    db.execute_fn = recording  # type: ignore[method-assign]
    return seen


def kb_path_name(ds: Datasette) -> str:
    return next(name for name, db in ds.databases.items() if not db.is_memory)


def inline_calls(monkeypatch) -> list[int]:
    """Records the thread of every inline query."""
    seen: list[int] = []
    real = web_sql.inline_connection

    def recording(datasette, state):
        seen.append(threading.get_ident())
        return real(datasette, state)

    monkeypatch.setattr(web_sql, "inline_connection", recording)
    return seen


async def bodies(ds: Datasette, *, row_page: bool = True) -> list[bytes]:
    out = []
    for path in PAGES:
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        out.append(response.content)
    for path in (*HTML_PAGES, ROW_PAGE) if row_page else HTML_PAGES:
        # these carry a fresh CSRF token: compared by their story links
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        out.append(" ".join(re.findall(r'href="(/kb/stories/[^"]+)"', response.text)).encode())
    return out


@pytest.mark.asyncio
async def test_a_small_knowledge_base_is_queried_on_the_event_loop(kb_path, settings, monkeypatch):
    ds = datasette(kb_path, settings, None)  # the default limit: 2,000 passages
    state = await kb_state(ds)  # finding the knowledge base asks Datasette once
    on_sql_threads = threads_of(ds)
    await bodies(ds, row_page=False)
    assert on_sql_threads == []
    # Datasette's own row page queries on its SQL threads; the plugin's part of it does not
    inline = inline_calls(monkeypatch)
    assert (await ds.client.get(ROW_PAGE)).status_code == 200
    assert inline
    assert state is not None and state.inline
    assert passages(kb_path) <= state.inline_max_passages


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [0, 1])
async def test_over_the_limit_or_switched_off_queries_use_the_sql_threads(kb_path, settings, limit):
    assert passages(kb_path) > 1
    threaded = datasette(kb_path, settings, limit)
    await kb_state(threaded)
    on_sql_threads = threads_of(threaded)
    await bodies(threaded, row_page=False)
    assert len(on_sql_threads) >= len(PAGES) + len(HTML_PAGES)
    assert threading.get_ident() not in on_sql_threads
    assert await bodies(threaded) == await bodies(datasette(kb_path, settings, None))


@pytest.mark.asyncio
async def test_the_size_is_checked_again_as_a_crawl_grows_the_knowledge_base(
    kb_path, settings, monkeypatch
):
    ds = datasette(kb_path, settings, None)
    await bodies(ds)
    state = await kb_state(ds)
    assert state is not None and state.inline
    # the knowledge base "grows" past the limit; once the recheck interval has passed, the
    # next request goes to the SQL threads
    state.inline_max_passages = 1
    on_sql_threads = threads_of(ds)
    monkeypatch.setattr(web_sql, "INLINE_RECHECK_SECONDS", 1e9)
    await ds.client.get(PAGES[0])
    assert on_sql_threads == []  # within the interval: the last verdict stands
    monkeypatch.setattr(web_sql, "INLINE_RECHECK_SECONDS", 0.0)
    await ds.client.get(PAGES[0])
    assert on_sql_threads and not state.inline


@pytest.mark.asyncio
async def test_an_immutable_file_is_opened_as_datasette_opens_it(kb_path, settings):
    # `datasette publish` serves the file with -i: no -shm/-wal may be created beside it, so
    # the inline connection must be Datasette's immutable one, not a mode=ro of our own
    ds = Datasette(
        immutables=[str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )
    state = await kb_state(ds)
    assert state is not None
    assert (await ds.client.get(PAGES[0])).json()["results"]
    assert state.inline
    conn = state.local.conn
    assert conn in ds.databases[state.database]._all_file_connections
    assert not ds.databases[state.database].is_mutable


def copy_kb(kb_path: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "kb.db"
    with sqlite3.connect(kb_path) as source, sqlite3.connect(copied) as target:
        source.backup(target)
    return copied


@pytest.mark.asyncio
async def test_many_stories_without_passages_are_queried_on_the_sql_threads(
    kb_path, settings, tmp_path
):
    # dead links have stories but no passages: the facet and feed queries scan stories
    copied = copy_kb(kb_path, tmp_path)
    limit = passages(kb_path)
    with sqlite3.connect(copied) as conn:
        conn.executemany(
            "INSERT INTO stories (id, title, components, impacts) VALUES (?, ?, '[]', '[]')",
            [(f"dead-{i}", f"A dead link {i}") for i in range(limit + 1)],
        )
    ds = datasette(copied, settings, limit)
    await ds.client.get(PAGES[0])
    state = await kb_state(ds)
    assert state is not None and not state.inline
    original = datasette(kb_path, settings, limit)  # the same limit without those stories
    await original.client.get(PAGES[0])
    original_state = await kb_state(original)
    assert original_state is not None and original_state.inline


@pytest.mark.asyncio
async def test_text_that_is_not_utf8_reads_alike_on_both_paths(kb_path, settings, tmp_path):
    # Datasette's connections replace undecodable bytes; the inline one is prepared alike
    copied = copy_kb(kb_path, tmp_path)
    with sqlite3.connect(copied) as conn:
        conn.execute("UPDATE stories SET publisher = CAST(X'4f6bff21' AS TEXT)")
    inline = datasette(copied, settings, None)
    threaded = datasette(copied, settings, 0)
    answers = []
    for ds in (inline, threaded):
        response = await ds.client.get(PAGES[0])
        assert response.status_code == 200, response.text[:300]
        answers.append(response.json())
    assert answers[0] == answers[1]
    assert answers[0]["results"][0]["publisher"] == "Ok\ufffd!"


SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000)"
)


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [None, 0])
async def test_the_time_limit_is_a_503_on_both_paths(kb_path, settings, limit):
    ds = datasette(kb_path, settings, limit)
    state = await kb_state(ds)
    assert state is not None
    state.time_limit_ms = 30

    def slow(conn: sqlite3.Connection) -> None:
        with web_sql.library_connection(conn, state.time_limit_ms):
            conn.execute(SLOW_SQL).fetchone()

    started = time.perf_counter()
    with pytest.raises(BadRequest, match="took longer than 30 ms") as raised:
        await web_sql.execute(ds, state, slow)
    assert raised.value.status == 503
    assert time.perf_counter() - started < 5
    assert not state.inline  # inline, the slow call moved the next ones to the SQL threads


@pytest.mark.asyncio
async def test_a_slow_inline_call_sends_the_next_ones_to_the_sql_threads(kb_path, settings):
    ds = datasette(kb_path, settings, None)
    state = await kb_state(ds)
    assert state is not None
    assert await web_sql.execute(ds, state, lambda conn: threading.get_ident()) == (
        threading.get_ident()
    )

    def slow(conn: sqlite3.Connection) -> int:
        time.sleep(web_sql.INLINE_SLOW_SECONDS * 2)
        return threading.get_ident()

    assert await web_sql.execute(ds, state, slow) == threading.get_ident()  # this one inline
    assert not state.inline
    assert await web_sql.execute(ds, state, lambda conn: threading.get_ident()) != (
        threading.get_ident()
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [None, 0])
async def test_a_story_a_crawl_adds_while_serving_is_found(kb_path, settings, tmp_path, limit):
    # the inline connection stays open between requests: it must not pin an old snapshot
    copied = copy_kb(kb_path, tmp_path)
    ds = datasette(copied, settings, limit)
    query = "/-/search.json?q=quetzal+turbine+telemetry"
    before = (await ds.client.get(query)).json()["results"]
    assert "quetzal" not in {h["id"] for h in before}
    db = open_db(copied)  # the crawl: another connection writes and commits
    try:
        with db.conn:
            db["stories"].insert(
                {
                    "id": "quetzal",
                    "url": "https://example.org/quetzal",
                    "title": "Quetzal turbine telemetry lost",
                    "components": '["monitoring"]',
                    "impacts": '["data-loss"]',
                }
            )
            db["pages"].insert(
                {"story_id": "quetzal", "url": "https://example.org/quetzal", "link_status": "live"}
            )
            db["documents"].insert(
                {
                    "story_id": "quetzal",
                    "title": "Quetzal turbine telemetry lost",
                    "text": "The quetzal turbine telemetry pipeline dropped every reading for a "
                    "day when its collector ran out of disk.",
                    "word_count": 18,
                }
            )
        crawl_settings = kb_settings(copied)
        sync_passages(db, settings=crawl_settings)
        embed_passages(db, crawl_settings, progress=False)
    finally:
        db.close()
    after = (await ds.client.get(query)).json()["results"]
    assert after[0]["id"] == "quetzal"
