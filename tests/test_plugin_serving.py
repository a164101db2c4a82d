"""How the plugin's queries meet the served file: through Datasette's own connections, so an
immutable file, text that is not UTF-8, a crawl writing meanwhile and the time limit behave as
they do for Datasette's own pages."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from datasette.app import Datasette

import mlopsmortem.web.queries as web_sql
from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.web.params import BadRequest
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from mlopsmortem.web.state import kb_state
from tests.support.knowledge_base import kb_settings
from tests.test_plugin import PLUGINS, kb_path, settings

__all__ = ["kb_path", "settings"]  # fixtures used below

QUERY = "/-/search.json?q=lost+logs"


def datasette(kb_path: Path, settings) -> Datasette:
    return Datasette(
        [str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )


def copy_kb(kb_path: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "kb.db"
    with sqlite3.connect(kb_path) as source, sqlite3.connect(copied) as target:
        source.backup(target)
    return copied


@pytest.mark.asyncio
async def test_an_immutable_file_is_served(kb_path, settings, tmp_path):
    # `datasette publish` serves the file with -i: nothing may be written beside it
    copied = copy_kb(kb_path, tmp_path)
    ds = Datasette(
        immutables=[str(copied)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )
    for path in (QUERY, "/-/feeds/new.atom", "/-/similar/fluentbit.json"):
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    assert (await ds.client.get(QUERY)).json()["results"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.db"]


@pytest.mark.asyncio
async def test_text_that_is_not_utf8_reads_as_datasette_reads_it(kb_path, settings, tmp_path):
    copied = copy_kb(kb_path, tmp_path)
    with sqlite3.connect(copied) as conn:
        conn.execute("UPDATE stories SET publisher = CAST(X'4f6bff21' AS TEXT)")
    response = await datasette(copied, settings).client.get(QUERY)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["results"][0]["publisher"] == "Ok\ufffd!"


SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000)"
)


@pytest.mark.asyncio
async def test_the_time_limit_is_a_503(kb_path, settings):
    ds = datasette(kb_path, settings)
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
    assert (await ds.client.get(QUERY)).status_code == 200  # the connection still serves


@pytest.mark.asyncio
async def test_a_story_a_crawl_adds_while_serving_is_found(kb_path, settings, tmp_path):
    # Datasette's connections stay open between requests: they must not pin an old snapshot
    copied = copy_kb(kb_path, tmp_path)
    ds = datasette(copied, settings)
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
