"""What the plugin's pages run on Datasette's connections to the knowledge base.

Library calls (`mlopsmortem.search.run`, `mlopsmortem.search.browse`) and the pages' own
queries (facet counts, in `mlopsmortem.web.facets`; story details) run through
`datasette.get_database(...).execute_fn`, on Datasette's SQL threads,
under the plugin's time limit and on plain tuple rows; a time-limit hit becomes a 503
`BadRequest`. The warm-up thread started at startup loads the model and vectors ahead of the
first search.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlite_utils

from mlopsmortem.errors import NotFoundError, SearchError
from mlopsmortem.passages.embed import model_key
from mlopsmortem.search.browse import browse
from mlopsmortem.search.run import search, similar
from mlopsmortem.search.vectors import cached_query_vector, vector_index
from mlopsmortem.web.links import safe_href
from mlopsmortem.web.model import query_vector
from mlopsmortem.web.params import BadRequest, Params
from mlopsmortem.web.state import State

T = TypeVar("T")
SIMILAR_ON_ROW_PAGE = 5  # similar stories shown on a story's row page

# the plugin's logger: its warm-up runs here
log = logging.getLogger("mlopsmortem.plugin")


# --------------------------------------------------------------------------- library calls


@contextlib.contextmanager
def library_connection(conn: sqlite3.Connection, time_limit_ms: int) -> Iterator[None]:
    """Datasette's read connection, set up for a library call and restored afterwards.

    The call is interrupted after `time_limit_ms` (a progress handler, as Datasette's own
    sqlite_timelimit, checked every 10,000 SQLite instructions); rows
    come back as plain tuples instead of Datasette's sqlite3.Row, which the library does not
    need. The connection belongs to the executor thread running this call, so nothing else
    sees the change."""
    deadline = time.perf_counter() + time_limit_ms / 1000

    def handler() -> int:
        return 1 if time.perf_counter() >= deadline else 0

    row_factory = conn.row_factory
    conn.row_factory = None
    conn.set_progress_handler(handler, 10_000)
    try:
        yield
    finally:
        conn.set_progress_handler(None, 10_000)
        conn.row_factory = row_factory


def library_db(conn: sqlite3.Connection) -> sqlite_utils.Database:
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def strict_utf8_first(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """fn, run with SQLite's own UTF-8 decoding, and once more with the connection's own
    decoding if some text in the database is not valid UTF-8.

    Datasette's connections decode text with a Python function that replaces bad bytes, which
    costs a call per string read; SQLite's decoder does the same work natively. The calls run
    here are read-only, so running one again is safe: a knowledge base holding bad bytes (it
    takes a hand edit) pays for its searches twice and still gets Datasette's replacement
    characters."""

    def run(conn: sqlite3.Connection) -> T:
        lenient = conn.text_factory
        conn.text_factory = str
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(UNDECODABLE):
                raise
        finally:
            conn.text_factory = lenient
        return fn(conn)

    return run


# How sqlite3 reports text that is not valid UTF-8 when text_factory is str.
UNDECODABLE = "Could not decode to UTF-8"


async def execute(
    datasette: Any, state: State, fn: Callable[[sqlite3.Connection], T], *, what: str = "search"
) -> T:
    """fn(conn) on one of Datasette's read connections to the knowledge base, in its SQL
    threads (`Database.execute_fn`); a time-limit hit (`library_connection`) is a 503."""
    fn = strict_utf8_first(fn)
    try:
        return await datasette.get_database(state.database).execute_fn(fn)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise BadRequest(
                f"the {what} took longer than {state.time_limit_ms} ms; try fewer words or "
                "add filters",
                status=503,
            ) from exc
        raise


async def embed_first(state: State, params: Params) -> None:
    """Embed the query on a worker thread of the event loop's default executor, so the model
    never holds one of Datasette's SQL threads; search() then finds the vector in its cache.
    A query whose vector is cached already (a repeated search, the next page) goes straight on."""
    if params.q and params.mode != "keyword":
        if cached_query_vector(params.q, state.settings.model_name) is not None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None,
            query_vector,
            params.q,
            state.settings.model_name,
            state.path,
            state.settings.query_encoder,
            state.immutable,
        )


async def run_search(datasette: Any, state: State, params: Params) -> tuple[list[Any], bool]:
    """(hits of this page, whether another page follows)."""
    await embed_first(state, params)

    def work(conn: sqlite3.Connection) -> list[Any]:
        with library_connection(conn, state.time_limit_ms):
            return search(
                library_db(conn),
                params.q,
                settings=state.settings,
                mode=params.mode,  # type: ignore[arg-type]
                limit=params.n + 1,
                offset=params.offset,
                **params.filters(),
            )

    hits = await execute(datasette, state, work)
    return hits[: params.n], len(hits) > params.n


async def run_browse(datasette: Any, state: State, params: Params) -> tuple[list[Any], bool]:
    """Filters without a query (`mlopsmortem.search.browse`): (the stories of this page, newest
    first; whether another page follows). SearchError when no filter is set."""

    def work(conn: sqlite3.Connection) -> list[Any]:
        with library_connection(conn, state.time_limit_ms):
            return browse(
                library_db(conn),
                settings=state.settings,
                limit=params.n + 1,
                offset=params.offset,
                **params.filters(),
            )

    hits = await execute(datasette, state, work, what="listing")
    return hits[: params.n], len(hits) > params.n


# --------------------------------------------------------------------------- story row page


def dict_rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{name: row[i] for i, name in enumerate(names)} for row in cursor.fetchall()]


def similar_stories(
    conn: sqlite3.Connection, state: State, story_id: str, n: int
) -> tuple[dict[str, Any], list[Any], str | None]:
    """(the story, its n nearest stories, a note when it has none to compare: no vectors).
    NotFoundError for an unknown story."""
    rows = dict_rows(
        conn,
        "SELECT s.id, s.title, s.url, s.publisher, s.year, pg.link_status"
        " FROM stories s LEFT JOIN pages pg ON pg.story_id = s.id WHERE s.id = ?",
        [story_id],
    )
    if not rows:
        raise NotFoundError(f"no story with id {story_id!r}")
    try:
        with library_connection(conn, state.time_limit_ms):
            hits = similar(library_db(conn), story_id, settings=state.settings, limit=n)
    except SearchError as exc:
        return rows[0], [], str(exc)
    return rows[0], hits, None


def story_details(conn: sqlite3.Connection, state: State, story_id: str) -> dict[str, Any] | None:
    """Tags with evidence, page and link status, page history, list entries, neighbours."""
    stories = dict_rows(
        conn, "SELECT id, title, url, archive_url, removed_at FROM stories WHERE id = ?", [story_id]
    )
    if not stories:
        return None
    story = stories[0]
    story["href"] = safe_href(story["url"])
    story["archive_href"] = safe_href(story["archive_url"])
    details: dict[str, Any] = {"story": story}
    details["tags"] = dict_rows(
        conn,
        "SELECT kind, tag, method, confidence, evidence, original, passage_id FROM tags"
        " WHERE story_id = ? ORDER BY kind, confidence DESC, tag",
        [story_id],
    )
    pages = dict_rows(
        conn,
        "SELECT link_status, final_url, archive_url, status_code, fetched_at, changed_at,"
        " dead_since, error_kind, error_message FROM pages WHERE story_id = ?",
        [story_id],
    )
    page = pages[0] if pages else None
    if page:
        page["final_href"] = safe_href(page["final_url"])
        page["archive_href"] = safe_href(page["archive_url"])
    details["page"] = page
    details["history"] = dict_rows(
        conn,
        "SELECT link_status, fetched_at, replaced_at, content_hash, text_hash"
        " FROM page_history WHERE story_id = ? ORDER BY replaced_at DESC, id DESC LIMIT 50",
        [story_id],
    )
    details["sources"] = dict_rows(
        conn,
        "SELECT so.name, ss.section, ss.line, ss.list_title, ss.removed_at"
        " FROM story_sources ss JOIN sources so ON so.id = ss.source_id"
        " WHERE ss.story_id = ? ORDER BY so.name, ss.occurrence",
        [story_id],
    )
    try:
        with library_connection(conn, state.time_limit_ms):
            details["similar"] = similar(
                library_db(conn), story_id, settings=state.settings, limit=SIMILAR_ON_ROW_PAGE
            )
        details["similar_note"] = None
    except (SearchError, sqlite3.OperationalError) as exc:
        details["similar"] = []
        details["similar_note"] = str(exc)
    return details


def warm_up(datasette: Any, state: State) -> None:
    """Load the model, embed once and read the vectors into memory, so that the first searches
    do not wait for them. Runs on a thread of its own (the startup hook starts it); a failure
    is logged, never raised: searches then load what they need themselves."""
    try:
        query_vector(
            "warm up the model",
            state.settings.model_name,
            state.path,
            state.settings.query_encoder,
            state.immutable,
        )
    except Exception as exc:  # noqa: BLE001 - a warm-up failure must never kill the server
        log.warning("mlopsmortem: could not load the embedding model: %s", exc)

    def preload(conn: sqlite3.Connection) -> None:
        row_factory, conn.row_factory = conn.row_factory, None  # plain tuples, as for searches
        try:
            vector_index(library_db(conn), model_key(state.settings.model_name)).refresh(conn)
        finally:
            conn.row_factory = row_factory

    try:
        asyncio.run(datasette.get_database(state.database).execute_fn(preload))
    except Exception as exc:  # noqa: BLE001
        log.warning("mlopsmortem: could not preload the vectors: %s", exc)
