"""What the plugin's pages run on Datasette's connections to the knowledge base.

Library calls (`mlopsmortem.search.run`) and the pages' own queries (facet counts, story details)
run in Datasette's SQL executor threads under a time limit, on plain tuple rows; a time-limit
hit becomes a 503 `BadRequest`. Request parsing and result shapes are in `mlopsmortem.web.params`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlite_utils

from mlopsmortem.errors import SearchError
from mlopsmortem.passages.embed import model_key
from mlopsmortem.search.filters import story_filter_sql
from mlopsmortem.search.keyword import stories_containing
from mlopsmortem.search.run import search, similar
from mlopsmortem.search.vectors import cached_query_vector, vector_index
from mlopsmortem.web.params import (
    SIMILAR_ON_ROW_PAGE,
    BadRequest,
    Params,
    State,
    query_vector,
    safe_href,
)

T = TypeVar("T")

# the plugin's logger: its warm-up runs here
log = logging.getLogger("mlopsmortem.plugin")


# --------------------------------------------------------------------------- library calls


@contextlib.contextmanager
def library_connection(conn: sqlite3.Connection, time_limit_ms: int) -> Iterator[None]:
    """Datasette's read connection, set up for a library call and restored afterwards.

    The call is interrupted after `time_limit_ms` (a progress handler, as Datasette's own
    sqlite_timelimit, checked every 10,000 SQLite instructions: about a millisecond); rows
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


# How often a knowledge base served inline is counted again: a crawl may grow it while it
# is served.
INLINE_RECHECK_SECONDS = 30.0
# An inline call slower than this sends the following INLINE_RECHECK_SECONDS of work to the
# SQL threads: whatever made it slow (a table the counts do not bound, a busy disk) blocked
# every other request meanwhile.
INLINE_SLOW_SECONDS = 0.025


def inline_connection(datasette: Any, state: State) -> sqlite3.Connection:
    """This thread's connection to the knowledge base, opened on first use and prepared the
    way Datasette opens and prepares its own: read-only (immutable for a file served with
    `-i`), its text decoding, cache size and every plugin's `prepare_connection`."""
    conn = getattr(state.local, "conn", None)
    if conn is None:
        conn = datasette.get_database(state.database).connect()
        datasette._prepare_connection(conn, state.database)  # what execute_fn's threads do
        state.local.conn = conn
    return conn


def runs_inline(datasette: Any, state: State) -> bool:
    """Whether the knowledge base is small enough to query on the event loop's thread: at
    most inline_max_passages passages and as many stories (the facet and feed queries scan
    stories). The counts stop at the limit, so the check is cheap at any size; it is repeated
    every INLINE_RECHECK_SECONDS."""
    if state.inline_max_passages <= 0:
        return False
    now = time.monotonic()
    if now - state.inline_checked_at >= INLINE_RECHECK_SECONDS:
        conn = inline_connection(datasette, state)
        limit = state.inline_max_passages
        state.inline = all(
            conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT ?)", (limit + 1,)
            ).fetchone()[0]
            <= limit
            for table in ("passages", "stories")  # constants, not input
        )
        state.inline_checked_at = now
    return state.inline


def strict_utf8_first(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """fn, run with SQLite's own UTF-8 decoding, and once more with Datasette's if some text in
    the database is not valid UTF-8.

    Datasette's connections decode text with a Python function that replaces bad bytes; called
    for each of the 250 or so strings a cached search reads on the demo database, it costs
    0.08 ms, a twentieth of the search. The calls run here are read-only, so running one again
    is safe; a knowledge base holding bad bytes (crawled pages are stored decoded, so it takes a
    hand edit) pays for its searches twice and still gets Datasette's replacement characters."""

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
    """fn(conn) on a read connection of the knowledge base; a time-limit hit is a 503.

    Usually on one of Datasette's SQL threads. A small knowledge base (`runs_inline`) is
    queried on the calling (event loop) thread instead: its searches are a few milliseconds of
    mostly GIL-holding Python, which a worker thread would not run concurrently anyway, and
    the hop there and back (0.3-0.7 ms on a loaded 2-core machine) is a quarter of a cached
    search. The time limit applies on both paths; a slow inline call (INLINE_SLOW_SECONDS)
    moves the next calls to the SQL threads."""
    fn = strict_utf8_first(fn)
    try:
        if runs_inline(datasette, state):
            started = time.monotonic()
            try:
                return fn(inline_connection(datasette, state))
            finally:
                finished = time.monotonic()
                if finished - started > INLINE_SLOW_SECONDS:
                    state.inline = False
                    state.inline_checked_at = finished
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
    """Embed the query outside the SQL threads; search() then finds the vector in its cache.

    A query whose vector is cached already (a repeated search, the next page) skips the hop
    to a worker thread and back."""
    if params.q and params.mode != "keyword":
        if cached_query_vector(params.q, state.settings.model_name) is not None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, query_vector, params.q, state.settings.model_name)


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


async def run_facets(datasette: Any, state: State, params: Params) -> dict[str, Any]:
    def work(conn: sqlite3.Connection) -> dict[str, Any]:
        with library_connection(conn, state.time_limit_ms):
            return facet_counts(conn, params)

    return await execute(datasette, state, work)


_ARRAY = "CASE WHEN json_valid(s.{col}) THEN s.{col} ELSE '[]' END"


def _chosen(rows: list[Any], selected: list[str]) -> list[dict[str, Any]]:
    chosen = {v.lower() for v in selected}
    return [{"value": r[0], "count": r[1], "selected": r[0].lower() in chosen} for r in rows]


def facet_counts(conn: sqlite3.Connection, params: Params) -> dict[str, list[dict[str, Any]]]:
    """Counts of live stories per filter value, given the other active filters: of the stories
    the search can return.

    Components and impacts combine with AND, so their counts apply every active filter; a
    story has one year, one link status and some sources, so those counts leave out their own
    filter (choosing another value widens or moves the selection). A keyword search returns
    only the stories containing its words, so its counts are of those; hybrid and semantic
    searches rank every story passing the filters (by meaning when not by words), so theirs
    are of all of them."""
    filters = params.filters()
    # found once, passed to each count as a JSON array: the five counts re-running the FTS5
    # query took 180 ms at 100k passages, this 100
    found = stories_containing(conn, params.q) if params.mode == "keyword" else None
    found_json = None if found is None else json.dumps(found)

    def where(**drop: Any) -> tuple[str, list[Any]]:
        clause, args = story_filter_sql(conn, **{**filters, **drop})
        if found_json is None:
            return clause, args
        return f"{clause} AND s.id IN (SELECT value FROM json_each(?))", [*args, found_json]

    out: dict[str, list[dict[str, Any]]] = {}
    clause, args = where()
    for name, column, selected in (
        ("component", "components", params.component),
        ("impact", "impacts", params.impact),
    ):
        rows = conn.execute(
            f"SELECT j.value, count(DISTINCT s.id) FROM stories s,"
            f" json_each({_ARRAY.format(col=column)}) j"
            f" WHERE {clause} AND j.type = 'text' GROUP BY j.value ORDER BY 2 DESC, 1",
            args,
        ).fetchall()
        out[name] = _chosen(rows, selected)
    clause, args = where(since=None)
    years = conn.execute(
        f"SELECT s.year, count(*) FROM stories s WHERE {clause} AND s.year IS NOT NULL"
        " GROUP BY s.year ORDER BY s.year DESC",
        args,
    ).fetchall()
    running = 0
    out["since"] = []
    for year, count in years:
        running += count
        out["since"].append(
            {"value": year, "count": running, "selected": params.since == year, "year_count": count}
        )
    clause, args = where(sources=())
    rows = conn.execute(
        "SELECT so.name, count(DISTINCT s.id) FROM stories s"
        " JOIN story_sources ss ON ss.story_id = s.id AND ss.removed_at IS NULL"
        " JOIN sources so ON so.id = ss.source_id"
        f" WHERE {clause} AND so.name IS NOT NULL GROUP BY so.name ORDER BY 2 DESC, 1",
        args,
    ).fetchall()
    out["source"] = _chosen(rows, params.source)
    clause, args = where(link_status=())
    rows = conn.execute(
        "SELECT pg.link_status, count(DISTINCT s.id) FROM stories s"
        " JOIN pages pg ON pg.story_id = s.id"
        f" WHERE {clause} AND pg.link_status IS NOT NULL"
        " GROUP BY pg.link_status ORDER BY 2 DESC, 1",
        args,
    ).fetchall()
    out["link_status"] = _chosen(rows, params.link_status)
    return out


# --------------------------------------------------------------------------- story row page


def dict_rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{name: row[i] for i, name in enumerate(names)} for row in cursor.fetchall()]


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


def warm_up(state: State, connect: Callable[[], sqlite3.Connection]) -> None:
    """Background thread at startup: load the model, embed once, read the vectors into memory,
    so that the first searches do not wait for them."""
    try:
        query_vector("warm up the model", state.settings.model_name)
    except Exception as exc:  # noqa: BLE001 - a warm-up failure must never kill the server
        log.warning("mlopsmortem: could not load the embedding model: %s", exc)
    try:
        conn = connect()  # as Datasette opens its own: read-only, or immutable with -i
        try:
            vector_index(library_db(conn), model_key(state.settings.model_name)).refresh(conn)
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("mlopsmortem: could not preload the vectors: %s", exc)
