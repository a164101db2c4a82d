"""A knowledge base published with Datasette `allow` rules stays private on the plugin's pages:
search, similar stories and the feeds answer 403 to an actor the rules refuse, as Datasette's
own table pages do, and work for an allowed one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.serve import DATASETTE_SETTINGS, load_metadata
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
