"""What the plugin knows about one Datasette instance, and who may see it.

`kb_state` finds the knowledge base (the configured database, else the first with a `passages`
table) once per instance and keeps the plugin's settings beside it. `visible_state` adds the
permission check every route makes: the actor must be allowed to view the `stories` table
(then its database, then the instance), asked of Datasette through `ensure_permissions`, so
`allow` rules and permission plugins keep these pages private as they do Datasette's own.
`can_view` is the second check, made for each other table a response draws from: snippets
need `passages`, a feed summary taken from a page `documents` (docs/serving.md has the list).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasette import Forbidden

from mlopsmortem.settings import DEFAULT_MODEL, Settings

PLUGIN = "mlopsmortem-search"  # the plugin's configuration key in Datasette metadata
# Facet counts of a hybrid or semantic search are of its first FACET_RESULTS results (plugin
# setting `facet_results`): two pages of ten, what a visitor usually pages through.
FACET_RESULTS = 20
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


@dataclass
class State:
    """The knowledge base of one Datasette instance and the plugin's settings for it."""

    database: str  # Datasette's name for the knowledge base
    path: str
    settings: Settings
    time_limit_ms: int
    warm: bool
    # The prefixes of every hit's links, built once instead of per hit (base_url and the
    # database's route are fixed for the life of a Datasette instance)
    stories_url: str  # datasette.urls.table(database, "stories")
    similar_url: str  # datasette.urls.path("-/similar/")
    facet_results: int = FACET_RESULTS  # hybrid, semantic: facet counts of the first N results
    # the footer's "Data source": the lists this database was read from (`source_credit`)
    source: str | None = None
    source_url: str | None = None
    warm_started: bool = False
    immutable: bool = False  # served with -i: query encoders read it without writing beside it


# Keyed weakly by the Datasette instance: tests and `serve` build several in one process, and
# an instance that is gone must not keep its state (nor be confused with a new one at its id).
_STATES: weakref.WeakKeyDictionary[Any, State] = weakref.WeakKeyDictionary()


def plugin_config(datasette: Any) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN) or {}


def config_flag(config: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false plugin setting: a YAML or JSON boolean, or what people write for one when
    it comes through an environment variable ($env): "false", "0", "no", "off" and their
    opposites. Anything else is an error naming the setting, not a silent True."""
    value = config.get(name, default)
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"plugin {PLUGIN} setting {name}: expected true or false, got {value!r}")


async def kb_state(datasette: Any) -> State | None:
    """The knowledge base of this instance: configured, else the first with `passages`."""
    state = _STATES.get(datasette)
    if state is not None:
        return state
    config = plugin_config(datasette)
    wanted = config.get("database")
    found = None
    for name, db in datasette.databases.items():
        if db.is_memory or name.startswith("_") or not db.path:
            continue
        if wanted and name != wanted:
            continue
        if await db.table_exists("passages"):
            found = db
            break
    if found is None:
        return None
    base = Settings()
    settings = Settings(
        db_path=Path(found.path),
        quiet=True,
        model_name=str(config.get("model") or DEFAULT_MODEL),
        max_query_chars=int(config.get("max_query_chars") or base.max_query_chars),
    )
    state = State(
        database=found.name,
        path=str(found.path),
        settings=settings,
        time_limit_ms=int(config.get("time_limit_ms") or datasette.setting("sql_time_limit_ms")),
        warm=config_flag(config, "warm", True),
        stories_url=str(datasette.urls.table(found.name, "stories")),
        similar_url=str(datasette.urls.path("-/similar/")),
        facet_results=max(1, min(int(config.get("facet_results") or FACET_RESULTS), 1000)),
        immutable=not found.is_mutable,
    )
    state.source, state.source_url = await source_credit(datasette, found)
    _STATES[datasette] = state
    return state


CREDITED_LISTS = 4  # lists named in the credit; the sources table has them all


async def source_credit(datasette: Any, db: Any) -> tuple[str | None, str | None]:
    """(the "Data source" Datasette shows in every page's footer, its link) for the database
    `db`: the names of the lists its stories were read from, in the order they were added
    (its `sources` table, which the link opens). Read once per instance, when the plugin
    first finds the knowledge base. (None, None) without a sources table or list."""
    if not await db.table_exists("sources"):
        return None, None
    rows = await db.execute(
        "SELECT name, location FROM sources WHERE coalesce(name, location) IS NOT NULL ORDER BY id"
    )
    names = list(dict.fromkeys(str(r[0] or r[1]) for r in rows.rows))
    if not names:
        return None, None
    credit = ", ".join(names[:CREDITED_LISTS])
    if len(names) > CREDITED_LISTS:
        credit += f" and {len(names) - CREDITED_LISTS} more lists"
    return credit, str(datasette.urls.table(db.name, "sources"))


def metadata_credit(datasette: Any) -> dict[str, str]:
    """Metadata the plugin adds (the get_metadata hook): the served knowledge base's list
    credit, once `kb_state` has read it; nothing before, or when it has none."""
    state = _STATES.get(datasette)
    if state is None or not state.source:
        return {}
    return {"source": state.source, "source_url": state.source_url or ""}


async def ensure_visible(
    datasette: Any, request: Any, state: State, table: str = "stories"
) -> None:
    """Raise datasette.Forbidden (a 403) unless Datasette allows the request's actor to view
    `table` (then its database, then the instance: the first level with an opinion decides, as
    on Datasette's table pages). Every page of the plugin draws on the stories table, so a
    knowledge base published with `allow` rules stays private here too."""
    await datasette.ensure_permissions(
        request.actor,
        [
            ("view-table", (state.database, table)),
            ("view-database", state.database),
            "view-instance",
        ],
    )


async def can_view(datasette: Any, request: Any, state: State, table: str) -> bool:
    """Whether the request's actor may view `table` (as `ensure_visible` decides): a response
    shows what it draws from a table other than `stories` only if so. One check costs about
    0.5 ms (Datasette copies the metadata for each table-level check), so a response asks
    only about the tables it draws from."""
    try:
        await ensure_visible(datasette, request, state, table)
    except Forbidden:
        return False
    return True


async def visible_state(datasette: Any, request: Any) -> State | None:
    """kb_state, once `ensure_visible` passed."""
    state = await kb_state(datasette)
    if state is not None:
        await ensure_visible(datasette, request, state)
    return state
