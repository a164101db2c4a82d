"""A knowledge base published with Datasette `allow` rules stays private on the plugin's pages:
search, similar stories and the feeds answer 403 to an actor the rules refuse, as Datasette's
own table pages do, and work for an allowed one; text drawn from fetched pages needs the tables
holding it. Hostile requests (a NUL in the query, a similar path with a slash) are 4xx."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from datasette import hookimpl
from datasette.app import Datasette
from datasette.plugins import pm

from mlopsmortem.search import keyword
from mlopsmortem.web import feeds, queries
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.test_plugin import PLUGINS, kb_path, settings

__all__ = ["kb_path", "settings"]  # fixtures used below

PAGES = (
    "/-/search.json?q=lost+logs",
    "/-/search?q=lost+logs",
    "/-/feeds/new.atom",
    "/-/feeds/search.atom?q=lost+logs",
)


def datasette_with(kb_path: Path, settings, rule_at: str) -> Datasette:
    """The served metadata with `allow: {id: admin}` on the instance, the database or the
    stories table."""
    metadata = copy.deepcopy(load_metadata(settings))
    rule = {"id": "admin"}
    database = kb_path.stem
    if rule_at == "instance":
        metadata["allow"] = rule
    elif rule_at == "database":
        metadata.setdefault("databases", {}).setdefault(database, {})["allow"] = rule
    else:
        tables = metadata.setdefault("databases", {}).setdefault(database, {})
        tables.setdefault("tables", {}).setdefault("stories", {})["allow"] = rule
    return Datasette(
        [str(kb_path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("rule_at", ["instance", "database", "stories"])
async def test_pages_refuse_an_actor_the_allow_rules_refuse(kb_path, settings, rule_at):
    ds = datasette_with(kb_path, settings, rule_at)
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    first = (await ds.client.get("/-/search.json?q=lost+logs", cookies=admin)).json()["results"][0]
    story_id, title = first["id"], first["title"]
    for path in (*PAGES, f"/-/similar/{story_id}.json", f"/-/similar/{story_id}"):
        refused = await ds.client.get(path)
        assert refused.status_code == 403, (rule_at, path, refused.status_code)
        assert title not in refused.text
        allowed = await ds.client.get(path, cookies=admin)
        assert allowed.status_code == 200, (rule_at, path, allowed.text[:300])


def plain_datasette(kb_path: Path, settings, metadata: dict | None = None) -> Datasette:
    return Datasette(
        [str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=metadata if metadata is not None else load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )


@pytest.mark.asyncio
async def test_a_rule_on_any_spelling_of_the_table_still_refuses(kb_path, settings):
    # Datasette folds table names in `allow` rules (0.65.5): the plugin asks Datasette, so a
    # rule spelled differently refuses as well
    metadata = copy.deepcopy(load_metadata(settings))
    database = metadata.setdefault("databases", {}).setdefault(kb_path.stem, {})
    database.setdefault("tables", {})["STORIES"] = {"allow": {"id": "admin"}}
    ds = plain_datasette(kb_path, settings, metadata)
    assert (await ds.client.get("/-/search.json?q=lost+logs")).status_code == 403


class DenyEveryone:
    """A permission plugin, as an auth plugin would install one."""

    @hookimpl
    def permission_allowed(self, datasette, actor, action, resource):
        if action in ("view-table", "view-database", "view-instance"):
            return False
        return None


class MetadataWithRule:
    """A plugin supplying metadata: an `allow` rule on a database, given only when Datasette
    asks about that database (so reading the instance's metadata does not show it)."""

    @hookimpl
    def get_metadata(self, datasette, key, database, table):
        if database is None:
            return {}
        return {"databases": {database: {"allow": {"id": "admin"}}}}


@pytest.mark.asyncio
@pytest.mark.parametrize("plugin", [DenyEveryone, MetadataWithRule])
async def test_a_permission_or_metadata_plugin_is_asked(kb_path, settings, plugin):
    ds = plain_datasette(kb_path, settings)
    pm.register(plugin(), name="test-permissions-plugin")
    try:
        for path in PAGES:
            assert (await ds.client.get(path)).status_code == 403, path
    finally:
        pm.unregister(name="test-permissions-plugin")
    assert (await ds.client.get(PAGES[0])).status_code == 200


class RecordingChecks:
    """A permission plugin with no opinion that records what Datasette asks it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, object]] = []

    @hookimpl
    def permission_allowed(self, datasette, actor, action, resource):
        self.asked.append((action, resource))
        return None


@pytest.mark.asyncio
async def test_every_page_asks_datasette_about_the_stories_table(kb_path, settings):
    # no rule and no plugin that refuses: allowed, but asked on every request all the same
    ds = plain_datasette(kb_path, settings)
    recorder = RecordingChecks()
    pm.register(recorder, name="test-recording-plugin")
    try:
        for path in (*PAGES, "/-/similar/fluentbit.json", "/-/similar/fluentbit"):
            recorder.asked.clear()
            assert (await ds.client.get(path)).status_code == 200, path
            assert ("view-table", (kb_path.stem, "stories")) in recorder.asked, path
            assert ("view-instance", None) in recorder.asked, path
    finally:
        pm.unregister(name="test-recording-plugin")


@pytest.mark.asyncio
async def test_a_datasette_that_decides_itself_is_asked(kb_path, settings):
    class Private(Datasette):
        async def permission_allowed(self, actor, action, resource=None, default=False):
            return False

    ds = Private(
        [str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )
    assert (await ds.client.get(PAGES[0])).status_code == 403


# --------------------------------------------------------------------------- page text


def kb_without_list_summary(kb_path: Path, tmp_path: Path) -> Path:
    """A copy of the knowledge base where fluentbit has no list summary: its feed entry's
    summary can only come from its page text."""
    copy_path = tmp_path / kb_path.name
    shutil.copyfile(kb_path, copy_path)
    with sqlite3.connect(copy_path) as conn:
        conn.execute("UPDATE stories SET summary = NULL WHERE id = 'fluentbit'")
    return copy_path


PAGE_TEXT = "During an Elasticsearch outage"  # fluentbit's page text, never in its list entry
PAGE_TEXT_TABLES = ("passages", "documents", "page_bodies")


@pytest.mark.asyncio
@pytest.mark.parametrize("tables", [PAGE_TEXT_TABLES, ("passages",), ("documents",)])
async def test_page_text_needs_the_tables_it_is_drawn_from(kb_path, settings, tmp_path, tables):
    # snippets are drawn from `passages`, a feed summary taken from a page from `documents`
    path = kb_without_list_summary(kb_path, tmp_path)
    metadata = copy.deepcopy(load_metadata(settings))
    rules = metadata.setdefault("databases", {}).setdefault(path.stem, {})
    for table in tables:
        rules.setdefault("tables", {}).setdefault(table, {})["allow"] = {"id": "admin"}
    ds = plain_datasette(path, settings, metadata)
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    snippets_hidden, summaries_hidden = "passages" in tables, "documents" in tables

    async def get(url: str, cookies=None) -> str:
        response = await ds.client.get(url, cookies=cookies)
        assert response.status_code == 200, (url, response.text[:300])
        return response.text

    search = "/-/search.json?q=elasticsearch+outage+logs&mode={}"
    for mode in ("hybrid", "semantic", "keyword"):
        hits = json.loads(await get(search.format(mode)))["results"]
        empty = [h["snippet"] == h["snippet_marked"] == "" for h in hits]
        assert hits and all(empty) == snippets_hidden and any(empty) == snippets_hidden, mode
        if snippets_hidden:
            assert all(h["highlights"] == [] and h["passage_id"] is None for h in hits)
        allowed = json.loads(await get(search.format(mode), admin))["results"]
        assert any(PAGE_TEXT in h["snippet"] for h in allowed), mode
    page = await get("/-/search?q=elasticsearch+outage")
    assert ('class="mm-snippet"' not in page) == snippets_hidden
    assert ("Fluent Bit daemonset" not in page) == snippets_hidden
    page = await get("/-/search?q=elasticsearch+outage", admin)
    assert 'class="mm-snippet"' in page and "Fluent Bit daemonset" in page
    similar = json.loads(await get("/-/similar/logstash.json"))["results"]
    assert similar and all(h["snippet"] == "" for h in similar) == snippets_hidden
    for feed in ("/-/feeds/new.atom", "/-/feeds/search.atom?q=elasticsearch+outage"):
        assert (PAGE_TEXT not in await get(feed)) == summaries_hidden, feed
        assert PAGE_TEXT in await get(feed, admin), feed


@pytest.mark.asyncio
async def test_a_nul_in_the_query_is_a_400_before_any_search(kb_path, settings, monkeypatch):
    ds = plain_datasette(kb_path, settings)
    calls = []

    def no_search(*args, **kwargs):
        calls.append(args)
        raise AssertionError("searched")

    for module in (queries, feeds, keyword):
        for name in ("search", "stories_containing"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no_search)
    for path in (
        "/-/search.json?q=lost%00logs",
        "/-/search.json?q=lost%00logs&mode=keyword",
        "/-/search.json?q=lost%00logs&mode=semantic",
        "/-/search?q=lost%00logs",
        "/-/search?q=lost%00logs&mode=keyword",
        "/-/feeds/search.atom?q=lost%00logs",
        "/-/search.json?q=logs&component=dns%00",
    ):
        response = await ds.client.get(path)
        assert response.status_code == 400, (path, response.text[:200])
        assert "control character" in response.text
    assert calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/-/similar/a/b", "/-/similar/a/b.json", "/-/similar/"])
async def test_a_similar_path_with_a_slash_is_a_404(kb_path, settings, path):
    ds = plain_datasette(kb_path, settings)
    response = await ds.client.get(path)
    assert response.status_code == 404, response.text[:200]
    if path.endswith(".json"):
        assert response.json()["ok"] is False


@pytest.mark.asyncio
async def test_a_story_page_shows_only_the_tables_the_actor_may_view(kb_path, settings):
    metadata = copy.deepcopy(load_metadata(settings))
    rules = metadata.setdefault("databases", {}).setdefault(kb_path.stem, {})
    for table in ("tags", "page_history"):
        rules.setdefault("tables", {}).setdefault(table, {})["allow"] = {"id": "admin"}
    ds = plain_datasette(kb_path, settings, metadata)
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    evidence = "our Fluent Bit daemonset kept tailing"  # a tag's evidence (the tags table)
    history = "redirected"  # fluentbit's page history has one redirected state
    refused = (await ds.client.get("/kb/stories/fluentbit")).text
    allowed = (await ds.client.get("/kb/stories/fluentbit", cookies=admin)).text
    assert evidence in allowed and evidence not in refused
    assert history in allowed and history not in refused
    assert "awesome-mlops-failures" in refused  # the source lists stay: no rule on them
