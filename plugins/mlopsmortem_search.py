"""Datasette plugin: similarity search over the mlopsmortem knowledge base.

Load it with `datasette kb.db --plugins-dir plugins` (or `mlopsmortem serve`). It has no search
logic of its own: every result comes from `mlopsmortem.search.search` / `similar`.

Routes
  /-/search                  HTML search page: query, mode, facet filters with counts, paging
  /-/search.json             the same parameters, JSON (see `search_json`)
  /-/similar/{id}            HTML: the stories nearest to one story
  /-/similar/{id}.json       the same, JSON
  /-/mlopsmortem.css         the stylesheet of the pages above

SQL functions (every connection)
  mm_cosine(a, b)   cosine similarity of two little-endian float32 vector BLOBs (NULL if either
                    is NULL, empty, or the lengths differ)
  mm_embed(text)    the query vector BLOB of text with the configured model (lazily loaded)
  mm_model()        the name embeddings of the configured model are stored under

Plugin configuration (metadata `plugins: mlopsmortem-search:`), all optional:
  database          name of the database to search (default: the first with a `passages` table)
  model             sentence-transformers model name or path (default all-MiniLM-L6-v2)
  max_query_chars   longest accepted query (default: Settings().max_query_chars)
  time_limit_ms     time limit of one search (default: Datasette's sql_time_limit_ms)
  warm              load the model and vectors in a background thread at startup (default true)
"""

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from datasette import hookimpl
from datasette.utils import add_cors_headers, tilde_encode, urlsafe_components
from datasette.utils.asgi import Response
from jinja2 import FileSystemLoader

from mlopsmortem.embed import decode_vector, encode_vector, load_model, model_key
from mlopsmortem.errors import ModelError, NotFoundError, SearchError
from mlopsmortem.search import MODES, embed_query, search, similar, story_filter_sql
from mlopsmortem.settings import DEFAULT_MODEL, Settings

PLUGIN = "mlopsmortem-search"
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
CSS_PATH = HERE / "static" / "mlopsmortem.css"

DEFAULT_N = 10
MAX_N = 50
MAX_OFFSET = 1000
MAX_FILTER_VALUES = 20
SIMILAR_ON_ROW_PAGE = 5
FILTERS = ("component", "impact", "source", "link_status")  # repeatable parameters
FACET_TITLES = {
    "component": "Component",
    "impact": "Impact",
    "since": "Year",
    "source": "Source list",
    "link_status": "Link status",
}

log = logging.getLogger("mlopsmortem.plugin")


# --------------------------------------------------------------------------- per-instance state


@dataclass
class State:
    """What the plugin knows about one Datasette instance."""

    database: str  # Datasette's name for the knowledge base
    path: str
    settings: Settings
    time_limit_ms: int
    warm: bool
    warm_started: bool = False


_STATES: weakref.WeakKeyDictionary[Any, State] = weakref.WeakKeyDictionary()


def _config(datasette: Any) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN) or {}


async def _state(datasette: Any) -> State | None:
    """The knowledge base of this instance: configured, else the first with `passages`."""
    state = _STATES.get(datasette)
    if state is not None:
        return state
    config = _config(datasette)
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
        warm=bool(config.get("warm", True)),
    )
    _STATES[datasette] = state
    return state


# --------------------------------------------------------------------------- model, warm-up

_MODEL_LOCK = threading.Lock()
_LOADED: set[str] = set()


def ensure_model(model_name: str) -> None:
    """Load the model once per process; concurrent callers wait for the one loading it."""
    if model_name in _LOADED:
        return
    with _MODEL_LOCK:
        if model_name not in _LOADED:
            load_model(model_name)
            _LOADED.add(model_name)


def query_vector(text: str, model_name: str) -> np.ndarray:
    ensure_model(model_name)
    return embed_query(text, model_name)


def _warm(state: State) -> None:
    """Background thread: load the model, embed once, read the vectors into memory."""
    try:
        query_vector("warm up the model", state.settings.model_name)
    except Exception as exc:  # noqa: BLE001 - a warm-up failure must never kill the server
        log.warning("mlopsmortem: could not load the embedding model: %s", exc)
    try:
        from mlopsmortem.search import vector_index

        uri = Path(state.path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
            vector_index(db, model_key(state.settings.model_name)).refresh(conn)
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("mlopsmortem: could not preload the vectors: %s", exc)


@hookimpl
def startup(datasette):
    async def inner() -> None:
        state = await _state(datasette)
        if state is None or not state.warm or state.warm_started:
            return
        state.warm_started = True
        threading.Thread(target=_warm, args=(state,), name="mlopsmortem-warm").start()

    return inner


@hookimpl
def prepare_jinja2_environment(env, datasette):
    """Make the templates beside this module visible, ahead of Datasette's defaults."""
    path = str(TEMPLATES)
    loaders = getattr(env.loader, "loaders", None)
    if not loaders:
        return
    first = loaders[0]
    if isinstance(first, FileSystemLoader):
        if path not in first.searchpath:
            first.searchpath.insert(max(0, len(first.searchpath) - 1), path)
    else:
        loaders.insert(0, FileSystemLoader([path]))


# --------------------------------------------------------------------------- SQL functions


def mm_cosine(a: Any, b: Any) -> float | None:
    if not isinstance(a, bytes | memoryview) or not isinstance(b, bytes | memoryview):
        return None
    if len(a) != len(b) or not len(a) or len(a) % 4:
        return None
    va, vb = decode_vector(bytes(a)), decode_vector(bytes(b))
    norms = float(np.sqrt(np.dot(va, va) * np.dot(vb, vb)))
    if norms == 0.0:
        return None
    return float(np.dot(va, vb)) / norms


def _sql_functions(datasette: Any) -> tuple[Any, Any]:
    config = _config(datasette)
    model_name = str(config.get("model") or DEFAULT_MODEL)
    max_chars = int(config.get("max_query_chars") or Settings().max_query_chars)

    def mm_embed(text: Any) -> bytes | None:
        if text is None:
            return None
        text = str(text).strip()
        if not text:
            return None
        if len(text) > max_chars:
            raise ValueError(f"mm_embed: text is longer than {max_chars} characters")
        return encode_vector(query_vector(text, model_name))

    def mm_model() -> str:
        return model_key(model_name)

    return mm_embed, mm_model


@hookimpl
def prepare_connection(conn, database, datasette):
    mm_embed, mm_model = _sql_functions(datasette)
    conn.create_function("mm_cosine", 2, mm_cosine, deterministic=True)
    conn.create_function("mm_embed", 1, mm_embed, deterministic=True)
    conn.create_function("mm_model", 0, mm_model, deterministic=True)


# --------------------------------------------------------------------------- request parsing


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Params:
    q: str = ""
    mode: str = "hybrid"
    component: list[str] = field(default_factory=list)
    impact: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    link_status: list[str] = field(default_factory=list)
    since: int | None = None
    n: int = DEFAULT_N
    offset: int = 0
    facets: bool = False

    def filters(self) -> dict[str, Any]:
        return {
            "components": self.component,
            "impacts": self.impact,
            "since": self.since,
            "sources": self.source,
            "link_status": self.link_status,
        }

    def pairs(self, **changes: Any) -> list[tuple[str, str]]:
        """Query-string pairs of these parameters (defaults left out), with changes applied."""
        values = {
            "q": self.q,
            "mode": self.mode,
            **{name: list(getattr(self, name)) for name in FILTERS},
            "since": self.since,
            "n": self.n,
            "offset": self.offset,
        }
        values.update(changes)
        out: list[tuple[str, str]] = []
        if values["q"]:
            out.append(("q", values["q"]))
        if values["mode"] != "hybrid":
            out.append(("mode", values["mode"]))
        for name in FILTERS:
            out.extend((name, v) for v in values[name])
        if values["since"] is not None:
            out.append(("since", str(values["since"])))
        if values["n"] != DEFAULT_N:
            out.append(("n", str(values["n"])))
        if values["offset"]:
            out.append(("offset", str(values["offset"])))
        if self.facets:
            out.append(("facets", "1"))
        return out


def _int_arg(request: Any, name: str, default: int | None) -> int | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None


def parse_params(request: Any, state: State) -> Params:
    args = request.args
    q = (args.get("q") or "").strip()
    limit = state.settings.max_query_chars
    if len(q) > limit:
        raise BadRequest(
            f"The query is {len(q):,} characters long; the limit is {limit:,}. "
            "Shorten it to a few distinctive words or an error message."
        )
    mode = (args.get("mode") or "hybrid").strip().lower()
    if mode not in MODES:
        raise BadRequest(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    params = Params(q=q, mode=mode)
    for name in FILTERS:
        values = list(dict.fromkeys(v.strip() for v in args.getlist(name) if v and v.strip()))
        if len(values) > MAX_FILTER_VALUES:
            raise BadRequest(f"at most {MAX_FILTER_VALUES} values of {name}")
        if any(len(v) > 200 for v in values):
            raise BadRequest(f"a {name} value is too long")
        setattr(params, name, values)
    since = _int_arg(request, "since", None)
    if since is not None and not 1900 <= since <= 9999:
        raise BadRequest("since must be a four-digit year")
    params.since = since
    n = _int_arg(request, "n", DEFAULT_N)
    if n is None or n < 1:
        raise BadRequest(f"n must be between 1 and {MAX_N}")
    params.n = min(n, MAX_N)
    offset = _int_arg(request, "offset", 0) or 0
    if offset < 0 or offset > MAX_OFFSET:
        raise BadRequest(
            f"offset must be between 0 and {MAX_OFFSET}; narrow the search with filters instead"
        )
    params.offset = offset
    params.facets = (args.get("facets") or "").lower() in ("1", "true", "yes", "on")
    return params


# --------------------------------------------------------------------------- running searches


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


def _library_db(conn: sqlite3.Connection) -> sqlite_utils.Database:
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


async def run_search(datasette: Any, state: State, params: Params) -> tuple[list[Any], bool]:
    """(hits of this page, whether another page follows)."""
    if params.mode != "keyword":
        loop = asyncio.get_running_loop()
        # embed outside the SQL threads; search() then finds the vector in its cache
        await loop.run_in_executor(None, query_vector, params.q, state.settings.model_name)

    def work(conn: sqlite3.Connection) -> list[Any]:
        with library_connection(conn, state.time_limit_ms):
            return search(
                _library_db(conn),
                params.q,
                settings=state.settings,
                mode=params.mode,  # type: ignore[arg-type]
                limit=params.n + 1,
                offset=params.offset,
                **params.filters(),
            )

    hits = await _execute(datasette, state, work)
    return hits[: params.n], len(hits) > params.n


async def _execute(datasette: Any, state: State, fn: Any) -> Any:
    try:
        return await datasette.get_database(state.database).execute_fn(fn)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise BadRequest(
                f"the search took longer than {state.time_limit_ms} ms; try fewer words or "
                "add filters",
                status=503,
            ) from exc
        raise


_ARRAY = "CASE WHEN json_valid(s.{col}) THEN s.{col} ELSE '[]' END"


def facet_counts(conn: sqlite3.Connection, params: Params) -> dict[str, list[dict[str, Any]]]:
    """Counts of live stories per filter value, given the other active filters.

    Components and impacts combine with AND, so their counts apply every active filter; a
    story has one year, one link status and some sources, so those counts leave out their own
    filter (choosing another value widens or moves the selection). The query text does not
    change the counts: they describe the filtered collection the results are ranked in."""
    filters = params.filters()

    def where(**drop: Any) -> tuple[str, list[Any]]:
        return story_filter_sql(conn, **{**filters, **drop})

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
        chosen = {v.lower() for v in selected}
        out[name] = [
            {"value": r[0], "count": r[1], "selected": r[0].lower() in chosen} for r in rows
        ]
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
    chosen = {v.lower() for v in params.source}
    out["source"] = [
        {"value": r[0], "count": r[1], "selected": r[0].lower() in chosen} for r in rows
    ]
    clause, args = where(link_status=())
    rows = conn.execute(
        "SELECT pg.link_status, count(DISTINCT s.id) FROM stories s"
        " JOIN pages pg ON pg.story_id = s.id"
        f" WHERE {clause} AND pg.link_status IS NOT NULL"
        " GROUP BY pg.link_status ORDER BY 2 DESC, 1",
        args,
    ).fetchall()
    chosen = {v.lower() for v in params.link_status}
    out["link_status"] = [
        {"value": r[0], "count": r[1], "selected": r[0].lower() in chosen} for r in rows
    ]
    return out


async def run_facets(datasette: Any, state: State, params: Params) -> dict[str, Any]:
    def work(conn: sqlite3.Connection) -> dict[str, Any]:
        with library_connection(conn, state.time_limit_ms):
            return facet_counts(conn, params)

    return await _execute(datasette, state, work)


# --------------------------------------------------------------------------- presentation


def safe_href(url: Any) -> str | None:
    """An http(s) URL to link to, or None (no javascript:, data: or relative links)."""
    if not isinstance(url, str):
        return None
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme.lower() in ("http", "https") and parsed.netloc:
        return url.strip()
    return None


def story_path(datasette: Any, state: State, story_id: str) -> str:
    return datasette.urls.row(state.database, "stories", tilde_encode(story_id))


def similar_path(datasette: Any, story_id: str, json: bool = False) -> str:
    quoted = urllib.parse.quote(story_id, safe="")
    return datasette.urls.path(f"-/similar/{quoted}" + (".json" if json else ""))


def hit_dict(datasette: Any, state: State, hit: Any) -> dict[str, Any]:
    data = hit.to_dict()
    data["story_url"] = story_path(datasette, state, hit.id)
    data["similar_url"] = similar_path(datasette, hit.id, json=True)
    return data


def hit_view(datasette: Any, state: State, hit: Any, params: Params | None) -> dict[str, Any]:
    """What the HTML templates need of one hit; every string is escaped by Jinja except
    `snippet_marked`, which the library already escaped."""
    view = hit.to_dict()
    view["story_url"] = story_path(datasette, state, hit.id)
    view["similar_url"] = similar_path(datasette, hit.id)
    view["href"] = safe_href(hit.url)
    chips = []
    for kind, name, values in (
        ("component", "component", hit.components),
        ("impact", "impact", hit.impacts),
    ):
        for value in values:
            link = None
            if params is not None and value.lower() not in {
                v.lower() for v in getattr(params, name)
            }:
                link = search_url(
                    datasette, params, **{name: [*getattr(params, name), value], "offset": 0}
                )
            elif params is None:
                link = search_url(datasette, Params(), **{name: [value]})
            chips.append({"kind": kind, "value": value, "url": link})
    view["chips"] = chips
    return view


def search_url(datasette: Any, params: Params, *, json: bool = False, **changes: Any) -> str:
    path = datasette.urls.path("-/search" + (".json" if json else ""))
    query = urllib.parse.urlencode(params.pairs(**changes))
    return f"{path}?{query}" if query else str(path)


def _css_version() -> str:
    try:
        return hashlib.sha256(CSS_PATH.read_bytes()).hexdigest()[:8]
    except OSError:
        return "0"


def _facet_views(datasette: Any, params: Params, facets: dict[str, Any]) -> list[dict[str, Any]]:
    groups = []
    for name, items in facets.items():
        entries = []
        for item in items:
            if name == "since":
                change = {"since": None if item["selected"] else item["value"]}
                label = f"{item['value']} or later"
            else:
                current = getattr(params, name)
                if item["selected"]:
                    kept = [v for v in current if v.lower() != str(item["value"]).lower()]
                else:
                    kept = [*current, item["value"]]
                change = {name: kept}
                label = str(item["value"])
            entries.append(
                {
                    **item,
                    "label": label,
                    "url": search_url(datasette, params, offset=0, **change),
                }
            )
        if entries:
            groups.append({"name": name, "title": FACET_TITLES[name], "items": entries})
    return groups


def _active_filters(datasette: Any, params: Params) -> list[dict[str, str]]:
    active = []
    for name in FILTERS:
        for value in getattr(params, name):
            kept = [v for v in getattr(params, name) if v != value]
            active.append(
                {
                    "name": FACET_TITLES[name],
                    "value": value,
                    "url": search_url(datasette, params, offset=0, **{name: kept}),
                }
            )
    if params.since is not None:
        active.append(
            {
                "name": "Year",
                "value": f"{params.since} or later",
                "url": search_url(datasette, params, offset=0, since=None),
            }
        )
    return active


def _error_response(datasette: Any, message: str, status: int) -> Response:
    response = Response.json({"ok": False, "error": message, "status": status}, status=status)
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


def _json_response(datasette: Any, data: dict[str, Any]) -> Response:
    response = Response.json(data, default=str)
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


async def _no_database(datasette: Any, request: Any, as_json: bool) -> Response:
    message = (
        "No attached database has a `passages` table: build the knowledge base with "
        "`mlopsmortem crawl` and serve that file."
    )
    if as_json:
        return _error_response(datasette, message, 404)
    return Response.html(
        await datasette.render_template(
            "mlopsmortem_search.html",
            {"error": message, "params": Params(), "mm_css": _css_context(datasette)},
            request=request,
        ),
        status=404,
    )


def _css_context(datasette: Any) -> str:
    return datasette.urls.path("-/mlopsmortem.css") + "?" + _css_version()


# --------------------------------------------------------------------------- views


async def search_page(datasette, request):
    return await _search(datasette, request, as_json=False)


async def search_json(datasette, request):
    return await _search(datasette, request, as_json=True)


async def _search(datasette: Any, request: Any, *, as_json: bool) -> Response:
    state = await _state(datasette)
    if state is None:
        return await _no_database(datasette, request, as_json)
    error, status = None, 200
    params = Params()
    hits: list[Any] = []
    more = False
    facets: dict[str, Any] = {}
    try:
        params = parse_params(request, state)
        if params.q:
            hits, more = await run_search(datasette, state, params)
        elif as_json:
            raise BadRequest("empty query: pass q, e.g. /-/search.json?q=lost+logs")
        if not as_json or params.facets:
            try:
                facets = await run_facets(datasette, state, params)
            except BadRequest:
                if as_json:
                    raise
                facets = {}  # too slow: the page still shows the results, without counts
    except BadRequest as exc:
        error, status = str(exc), exc.status
    except SearchError as exc:
        error, status = str(exc), 400
    except ModelError as exc:
        error = f"{exc} (keyword search still works: mode=keyword)"
        status = 503
    if as_json:
        if error:
            return _error_response(datasette, error, status)
        next_url = None
        if more and params.offset + params.n <= MAX_OFFSET:
            next_url = datasette.absolute_url(
                request, search_url(datasette, params, json=True, offset=params.offset + params.n)
            )
        data: dict[str, Any] = {
            "ok": True,
            "database": state.database,
            "query": params.q,
            "mode": params.mode,
            "filters": {
                "component": params.component,
                "impact": params.impact,
                "since": params.since,
                "source": params.source,
                "link_status": params.link_status,
            },
            "n": params.n,
            "offset": params.offset,
            "count": len(hits),
            "results": [hit_dict(datasette, state, h) for h in hits],
            "next": next_url,
        }
        if params.facets:
            data["facets"] = facets
        return _json_response(datasette, data)
    next_url = prev_url = None
    if more and params.offset + params.n <= MAX_OFFSET:
        next_url = search_url(datasette, params, offset=params.offset + params.n)
    if params.offset:
        prev_url = search_url(datasette, params, offset=max(0, params.offset - params.n))
    context = {
        "params": params,
        "modes": MODES,
        "error": error,
        "hits": [hit_view(datasette, state, h, params) for h in hits],
        "facet_groups": _facet_views(datasette, params, facets) if facets else [],
        "active_filters": _active_filters(datasette, params),
        "next_url": next_url,
        "prev_url": prev_url,
        "first_rank": params.offset + 1,
        "json_url": search_url(datasette, params, json=True) if params.q else None,
        "clear_url": search_url(datasette, Params(q=params.q, mode=params.mode)),
        "max_query_chars": state.settings.max_query_chars,
        "database": state.database,
        "stories_url": datasette.urls.table(state.database, "stories"),
        "filter_names": FILTERS,
        "mm_css": _css_context(datasette),
        "metadata": datasette.metadata(),
    }
    html = await datasette.render_template(
        "mlopsmortem_search.html", context, request=request, view_name="mlopsmortem-search"
    )
    return Response.html(html, status=status)


async def similar_view(datasette, request):
    story_id = urllib.parse.unquote(request.url_vars["story_id"])
    as_json = bool(request.url_vars.get("ext"))
    state = await _state(datasette)
    if state is None:
        return await _no_database(datasette, request, as_json)
    try:
        n = _int_arg(request, "n", DEFAULT_N)
        if n is None or n < 1:
            raise BadRequest(f"n must be between 1 and {MAX_N}")
        n = min(n, MAX_N)
    except BadRequest as exc:
        if as_json:
            return _error_response(datasette, str(exc), exc.status)
        return Response.text(str(exc), status=exc.status)

    def work(conn: sqlite3.Connection) -> tuple[Any, list[Any], str | None]:
        rows = _dicts(
            conn,
            "SELECT s.id, s.title, s.url, s.publisher, s.year, pg.link_status"
            " FROM stories s LEFT JOIN pages pg ON pg.story_id = s.id WHERE s.id = ?",
            [story_id],
        )
        if not rows:
            raise NotFoundError(f"no story with id {story_id!r}")
        try:
            with library_connection(conn, state.time_limit_ms):
                hits = similar(_library_db(conn), story_id, settings=state.settings, limit=n)
        except SearchError as exc:
            return rows[0], [], str(exc)
        return rows[0], hits, None

    try:
        story, hits, note = await _execute(datasette, state, work)
    except NotFoundError as exc:
        if as_json:
            return _error_response(datasette, str(exc), 404)
        context = {"error": str(exc), "story": None, "hits": [], "mm_css": _css_context(datasette)}
        html = await datasette.render_template(
            "mlopsmortem_similar.html", context, request=request, view_name="mlopsmortem-similar"
        )
        return Response.html(html, status=404)
    except BadRequest as exc:
        if as_json:
            return _error_response(datasette, str(exc), exc.status)
        return Response.text(str(exc), status=exc.status)
    story["story_url"] = story_path(datasette, state, story_id)
    if as_json:
        return _json_response(
            datasette,
            {
                "ok": True,
                "database": state.database,
                "story": story,
                "n": n,
                "count": len(hits),
                "results": [hit_dict(datasette, state, h) for h in hits],
                "note": note,
            },
        )
    story["href"] = safe_href(story["url"])
    context = {
        "story": story,
        "hits": [hit_view(datasette, state, h, None) for h in hits],
        "note": note,
        "error": None,
        "database": state.database,
        "json_url": similar_path(datasette, story_id, json=True),
        "search_url": datasette.urls.path("-/search"),
        "mm_css": _css_context(datasette),
        "metadata": datasette.metadata(),
    }
    html = await datasette.render_template(
        "mlopsmortem_similar.html", context, request=request, view_name="mlopsmortem-similar"
    )
    return Response.html(html)


async def stylesheet(datasette, request):
    try:
        body = CSS_PATH.read_text(encoding="utf-8")
    except OSError:
        body = ""
    return Response(
        body,
        content_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@hookimpl
def register_routes(datasette):
    return [
        (r"^/-/search$", search_page),
        (r"^/-/search\.json$", search_json),
        (r"^/-/similar/(?P<story_id>[^/]+?)(?P<ext>\.json)?$", similar_view),
        (r"^/-/mlopsmortem\.css$", stylesheet),
    ]


@hookimpl
def menu_links(datasette, actor, request):
    return [{"href": datasette.urls.path("-/search"), "label": "Search failure stories"}]


# --------------------------------------------------------------------------- story row page


def _dicts(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{name: row[i] for i, name in enumerate(names)} for row in cursor.fetchall()]


def story_details(conn: sqlite3.Connection, state: State, story_id: str) -> dict[str, Any] | None:
    """Tags with evidence, page and link status, page history, list entries, neighbours."""
    stories = _dicts(
        conn, "SELECT id, title, url, archive_url, removed_at FROM stories WHERE id = ?", [story_id]
    )
    if not stories:
        return None
    story = stories[0]
    story["href"] = safe_href(story["url"])
    story["archive_href"] = safe_href(story["archive_url"])
    details: dict[str, Any] = {"story": story}
    details["tags"] = _dicts(
        conn,
        "SELECT kind, tag, method, confidence, evidence, original, passage_id FROM tags"
        " WHERE story_id = ? ORDER BY kind, confidence DESC, tag",
        [story_id],
    )
    pages = _dicts(
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
    details["history"] = _dicts(
        conn,
        "SELECT link_status, fetched_at, replaced_at, content_hash, text_hash"
        " FROM page_history WHERE story_id = ? ORDER BY replaced_at DESC, id DESC LIMIT 50",
        [story_id],
    )
    details["sources"] = _dicts(
        conn,
        "SELECT so.name, ss.section, ss.line, ss.list_title, ss.removed_at"
        " FROM story_sources ss JOIN sources so ON so.id = ss.source_id"
        " WHERE ss.story_id = ? ORDER BY so.name, ss.occurrence",
        [story_id],
    )
    try:
        with library_connection(conn, state.time_limit_ms):
            details["similar"] = similar(
                _library_db(conn), story_id, settings=state.settings, limit=SIMILAR_ON_ROW_PAGE
            )
        details["similar_note"] = None
    except (SearchError, sqlite3.OperationalError) as exc:
        details["similar"] = []
        details["similar_note"] = str(exc)
    return details


@hookimpl
def extra_template_vars(template, database, table, view_name, request, datasette):
    if view_name != "row" or table != "stories" or request is None:
        return {}

    async def inner() -> dict[str, Any]:
        state = await _state(datasette)
        if state is None or database != state.database:
            return {}
        pks = urlsafe_components(request.url_vars.get("pks", ""))
        if len(pks) != 1:
            return {}
        story_id = pks[0]
        details = await _execute(
            datasette, state, lambda conn: story_details(conn, state, story_id)
        )
        if details is None:
            return {}
        details["similar"] = [hit_view(datasette, state, h, None) for h in details["similar"]]
        details["similar_url"] = similar_path(datasette, story_id)
        details["search_url"] = datasette.urls.path("-/search")
        return {"mm_story": details, "mm_css": _css_context(datasette)}

    return inner
