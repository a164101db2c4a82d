"""What the plugin knows about one Datasette instance, and who may see it.

`kb_state` finds the knowledge base (the configured database, else the first with a `passages`
table) once per instance and keeps the plugin's settings beside it. `visible_state` adds the
permission check every route makes: the actor must be allowed to view the `stories` table
(then its database, then the instance), asked of Datasette through `ensure_permissions`, so
`allow` rules and permission plugins keep these pages private as they do Datasette's own.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsmortem.settings import DEFAULT_MODEL, Settings

PLUGIN = "mlopsmortem-search"  # the plugin's configuration key in Datasette metadata
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
    warm_started: bool = False


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
    )
    _STATES[datasette] = state
    return state


async def ensure_visible(datasette: Any, request: Any, state: State) -> None:
    """Raise datasette.Forbidden (a 403) unless Datasette allows the request's actor to view
    the stories table (then its database, then the instance): every page of the plugin draws
    on that table, so a knowledge base published with `allow` rules stays private here too."""
    await datasette.ensure_permissions(
        request.actor,
        [
            ("view-table", (state.database, "stories")),
            ("view-database", state.database),
            "view-instance",
        ],
    )


async def visible_state(datasette: Any, request: Any) -> State | None:
    """kb_state, once `ensure_visible` passed."""
    state = await kb_state(datasette)
    if state is not None:
        await ensure_visible(datasette, request, state)
    return state
