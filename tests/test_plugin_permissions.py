"""A knowledge base published with Datasette `allow` rules stays private on the plugin's pages:
search, similar stories and the feeds answer 403 to an actor the rules refuse, as Datasette's
own table pages do, and work for an allowed one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from datasette import hookimpl
from datasette.app import Datasette
from datasette.plugins import pm

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
