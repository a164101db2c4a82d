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

from mlopsmortem.web.params import nothing_can_refuse
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
    # Datasette folds table names in `allow` rules (0.65.5); the plugin's shortcut must not
    # miss a rule spelled differently, so it steps aside for any `allow` block at all
    metadata = copy.deepcopy(load_metadata(settings))
    database = metadata.setdefault("databases", {}).setdefault(kb_path.stem, {})
    database.setdefault("tables", {})["STORIES"] = {"allow": {"id": "admin"}}
    ds = plain_datasette(kb_path, settings, metadata)
    assert not nothing_can_refuse(ds)
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
    assert nothing_can_refuse(ds)
    pm.register(plugin(), name="test-permissions-plugin")
    try:
        assert not nothing_can_refuse(ds)
        for path in PAGES:
            assert (await ds.client.get(path)).status_code == 403, path
    finally:
        pm.unregister(name="test-permissions-plugin")
    assert (await ds.client.get(PAGES[0])).status_code == 200


@pytest.mark.asyncio
async def test_without_rules_the_pages_skip_datasettes_view_checks(kb_path, settings):
    # No rule, no permission plugin: Datasette's checks would allow anyone, and in 0.65.5
    # they cost about 0.45 ms a request (a metadata deep copy, a sqlite_master read)
    ds = plain_datasette(kb_path, settings)
    asked = []
    real = ds.ensure_permissions

    async def counting(actor, permissions):
        asked.append(permissions)
        return await real(actor, permissions)

    ds.ensure_permissions = counting  # type: ignore[method-assign]
    for path in PAGES:
        assert (await ds.client.get(path)).status_code == 200, path
    assert asked == []


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
    assert not nothing_can_refuse(ds)
    assert (await ds.client.get(PAGES[0])).status_code == 403


@pytest.mark.asyncio
async def test_metadata_given_anew_is_read_anew(kb_path, settings):
    # the metadata walk is kept per metadata object; metadata given anew (as a test or a
    # plugin may hand an instance) is walked again, and its rule refuses
    ds = plain_datasette(kb_path, settings)
    assert (await ds.client.get(PAGES[0])).status_code == 200
    ruled = copy.deepcopy(ds._metadata_local)
    ruled["allow"] = {"id": "admin"}
    ds._metadata_local = ruled
    assert not nothing_can_refuse(ds)
    assert (await ds.client.get(PAGES[0])).status_code == 403
