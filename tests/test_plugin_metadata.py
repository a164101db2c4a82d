"""The metadata Datasette shows follows the database being served: every page's footer credits
the lists that database was read from (its `sources` table), so the demo's invented stories are
never credited to the real lists, and a real knowledge base names its own."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.knowledge_base import SOURCES
from tests.test_plugin import PLUGINS, kb_path

__all__ = ["kb_path"]  # fixture used below

REAL_LISTS = ("awful-mlops", "k8s.af", "danluu", "mlops.af")


def served(path: Path) -> Datasette:
    settings = Settings(db_path=path, quiet=True)
    return Datasette(
        [str(path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )


def footer(page: str) -> str:
    return page[page.index("<footer") :]


@pytest.mark.asyncio
async def test_a_demo_database_credits_its_own_list_not_the_real_ones(kb_path, tmp_path):
    demo = tmp_path / "demo.db"
    shutil.copyfile(kb_path, demo)
    with sqlite3.connect(demo) as conn:  # as `mlopsmortem demo` builds it: one invented list
        conn.execute("UPDATE story_sources SET source_id = 1")
        conn.execute("DELETE FROM sources WHERE id <> 1")
        conn.execute(
            "UPDATE sources SET name = 'mlopsmortem-demo', location = '/x/data/demo/list.md'"
        )
    ds = served(demo)
    for path in ("/", "/demo/stories", "/-/search?q=logs"):
        response = await ds.client.get(path)
        assert response.status_code == 200, path
        credit = footer(response.text)
        assert "Data source:" in credit and "mlopsmortem-demo" in credit, path
        assert 'href="/demo/sources"' in credit, path
        for real in REAL_LISTS:
            assert real not in credit, (path, real)
    metadata = (await ds.client.get("/-/metadata.json")).json()
    assert metadata["source"] == "mlopsmortem-demo"


@pytest.mark.asyncio
async def test_a_knowledge_base_credits_every_list_it_was_read_from(kb_path):
    ds = served(kb_path)
    credit = footer((await ds.client.get("/")).text)
    assert ", ".join(SOURCES.values()) in credit
    for real in REAL_LISTS:
        assert real not in credit, real
