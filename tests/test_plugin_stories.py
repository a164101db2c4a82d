"""The similar-stories pages and the story row page the plugin adds to Datasette's: the
knowledge base served as in tests/test_plugin.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasette.app import Datasette

from tests.support.knowledge_base import NEIGHBOURS
from tests.test_plugin import (
    PLUGINS,
    ds,
    get_html,
    get_json,
    kb_path,
    result_ids,
    settings,
)

__all__ = ["ds", "kb_path", "settings"]  # fixtures used below


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


# --------------------------------------------------------------------------- story row page


@pytest.mark.asyncio
async def test_story_row_page_shows_tags_status_history_and_similar(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    assert 'class="mm mm-story"' in page
    tags = page[page.index('id="tags"') : page.index('id="sources"')]
    assert "our Fluent Bit daemonset kept tailing container log files" in tags
    assert ">logging<" in tags and ">data-loss<" in tags and "0.90" in tags and "rule" in tags
    assert 'href="/-/search?component=logging"' in tags
    history = page[page.index('id="history"') : page.index("<h2>All columns</h2>")]
    assert history.count("<tr>") == 3  # header + two earlier versions
    assert "2024-01-01T00:00:00Z" in history and "mm-status-redirected" in history
    similar = page[page.index('id="similar"') : page.index('id="tags"')]
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


@pytest.mark.asyncio
async def test_a_users_template_dir_wins_over_the_plugins_templates(kb_path, tmp_path: Path):
    (tmp_path / "mlopsmortem_similar.html").write_text("the user's own similar page")
    own = Datasette([str(kb_path)], plugins_dir=str(PLUGINS), template_dir=str(tmp_path))
    page = await get_html(own, "/-/similar/conntrack")
    assert page == "the user's own similar page"
    plain = Datasette([str(kb_path)], plugins_dir=str(PLUGINS))
    assert "conntrack race" in await get_html(plain, "/-/similar/conntrack")
