"""Datasette plugin: similarity search over the mlopsmortem knowledge base.

Load it with `datasette kb.db --plugins-dir plugins` (or `mlopsmortem serve`). It has no search
logic of its own: every result comes from `mlopsmortem.search.run.search` / `similar`, and what the
handlers below share with plugins/mlopsmortem_feeds.py lives in `mlopsmortem.web.params` and
`mlopsmortem.web.queries` (Datasette loads each file of --plugins-dir by path as its own module,
so plugin files cannot import each other).

Routes
  /-/search                  HTML search page: query, mode, facet filters with counts, paging
  /-/search.json             the same parameters, JSON (see `search_json`)
  /-/similar/{id}            HTML: the stories nearest to one story
  /-/similar/{id}.json       the same, JSON
  /-/mlopsmortem.css         the stylesheet of the pages above
  /-/feeds/...               Atom feeds: see plugins/mlopsmortem_feeds.py

SQL functions (every connection)
  mm_cosine(a, b)   cosine similarity of two little-endian float32 vector BLOBs (NULL if either
                    is NULL, empty, or the lengths differ)
  mm_embed(text)    the query vector BLOB of text with the configured model (lazily loaded)
  mm_model()        the name embeddings of the configured model are stored under

Permissions: every route answers only an actor Datasette lets view the `stories` table (then
its database, then the instance): `allow` rules in the metadata keep these pages private too.
When no rule or plugin could refuse anyone (`mlopsmortem.web.params.nothing_can_refuse`), the check
is skipped: Datasette's answer would be "allowed" for every actor.

Plugin configuration (metadata `plugins: mlopsmortem-search:`), all optional:
  database          name of the database to search (default: the first with a `passages` table)
  model             sentence-transformers model name or path (default all-MiniLM-L6-v2)
  max_query_chars   longest accepted query (default: Settings().max_query_chars)
  time_limit_ms     time limit of one search (default: Datasette's sql_time_limit_ms)
  warm              load the model and vectors in a background thread at startup (default true)
  inline_max_passages  knowledge bases up to this many passages are queried on the event
                    loop's thread, larger ones on Datasette's SQL threads (default 2000; 0: always
                    the SQL threads; see mlopsmortem.web.queries.execute)
  direct_json       answer /-/search.json in front of Datasette's router when the router would
                    decide nothing: no cookie, credentials, rule or plugin (default true; see
                    mlopsmortem.web.direct)
"""

import hashlib
import sqlite3
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from datasette import hookimpl
from datasette.utils import urlsafe_components
from datasette.utils.asgi import Response
from jinja2 import FileSystemLoader

from mlopsmortem.errors import ModelError, NotFoundError, SearchError
from mlopsmortem.passages.embed import encode_vector, model_key
from mlopsmortem.search.run import similar
from mlopsmortem.search.types import MODES
from mlopsmortem.settings import DEFAULT_MODEL, Settings
from mlopsmortem.web.direct import direct_json_route
from mlopsmortem.web.params import (
    FACET_TITLES,
    FILTERS,
    MAX_OFFSET,
    BadRequest,
    Params,
    bounded_n,
    config_flag,
    error_response,
    feed_url,
    hit_dict,
    hit_view,
    json_response,
    kb_state,
    mm_cosine,
    parse_params,
    plugin_config,
    query_vector,
    safe_href,
    search_state,
    search_url,
    similar_path,
    story_path,
    typed_query,
    visible_state,
    with_search_state,
)
from mlopsmortem.web.queries import (
    dict_rows,
    execute,
    library_connection,
    library_db,
    run_facets,
    run_search,
    story_details,
    warm_up,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
CSS_PATH = HERE / "static" / "mlopsmortem.css"


# --------------------------------------------------------------------------- startup, templates


@hookimpl
def startup(datasette):
    async def inner() -> None:
        state = await kb_state(datasette)
        if state is None or not state.warm or state.warm_started:
            return
        state.warm_started = True
        connect = datasette.get_database(state.database).connect
        threading.Thread(target=warm_up, args=(state, connect), name="mlopsmortem-warm").start()

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


def _sql_functions(datasette: Any) -> tuple[Any, Any]:
    config = plugin_config(datasette)
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


# --------------------------------------------------------------------------- page helpers


def _css_version() -> str:
    try:
        return hashlib.sha256(CSS_PATH.read_bytes()).hexdigest()[:8]
    except OSError:
        return "0"


def _css_context(datasette: Any) -> str:
    return datasette.urls.path("-/mlopsmortem.css") + "?" + _css_version()


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


async def _no_database(datasette: Any, request: Any, as_json: bool) -> Response:
    message = (
        "No attached database has a `passages` table: build the knowledge base with "
        "`mlopsmortem crawl` and serve that file."
    )
    if as_json:
        return error_response(datasette, message, 404)
    return Response.html(
        await datasette.render_template(
            "mlopsmortem_search.html",
            {"error": message, "params": Params(), "mm_css": _css_context(datasette)},
            request=request,
        ),
        status=404,
    )


# --------------------------------------------------------------------------- views


async def search_page(datasette, request):
    return await _search(datasette, request, as_json=False)


async def search_json(datasette, request):
    return await _search(datasette, request, as_json=True)


async def _search(datasette: Any, request: Any, *, as_json: bool) -> Response:
    state = await visible_state(datasette, request)
    if state is None:
        return await _no_database(datasette, request, as_json)
    error, status = None, 200
    params = Params()
    hits: list[Any] = []
    more = False
    facets: dict[str, Any] = {}
    try:
        params = parse_params(request.args, state.settings.max_query_chars)
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
        if not params.q:  # the parameters were refused: keep what was typed in the form
            params = typed_query(request.args, state.settings.max_query_chars)
    except SearchError as exc:
        error, status = str(exc), 400
    except ModelError as exc:
        error = f"{exc} (keyword search still works: mode=keyword)"
        status = 503
    if as_json:
        if error:
            return error_response(datasette, error, status)
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
        return json_response(datasette, data)
    next_url = prev_url = None
    if more and params.offset + params.n <= MAX_OFFSET:
        next_url = search_url(datasette, params, offset=params.offset + params.n)
    if params.offset:
        prev_url = search_url(datasette, params, offset=max(0, params.offset - params.n))
    context = {
        "params": params,
        "modes": MODES,
        "error": error,
        "hits": [hit_view(datasette, state, h, params, back=params) for h in hits],
        "facet_groups": _facet_views(datasette, params, facets) if facets else [],
        "active_filters": _active_filters(datasette, params),
        "next_url": next_url,
        "prev_url": prev_url,
        "first_rank": params.offset + 1,
        "json_url": search_url(datasette, params, json=True) if params.q else None,
        # a feed of a refused search would be refused too
        "feed_url": None if error else feed_url(datasette, params),
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
    state = await visible_state(datasette, request)
    if state is None:
        return await _no_database(datasette, request, as_json)
    try:
        n = bounded_n(request.args)
    except BadRequest as exc:
        if as_json:
            return error_response(datasette, str(exc), exc.status)
        return Response.text(str(exc), status=exc.status)

    def work(conn: sqlite3.Connection) -> tuple[Any, list[Any], str | None]:
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

    try:
        story, hits, note = await execute(datasette, state, work)
    except NotFoundError as exc:
        if as_json:
            return error_response(datasette, str(exc), 404)
        context = {"error": str(exc), "story": None, "hits": [], "mm_css": _css_context(datasette)}
        html = await datasette.render_template(
            "mlopsmortem_similar.html", context, request=request, view_name="mlopsmortem-similar"
        )
        return Response.html(html, status=404)
    except BadRequest as exc:
        if as_json:
            return error_response(datasette, str(exc), exc.status)
        return Response.text(str(exc), status=exc.status)
    story["story_url"] = story_path(state, story_id)
    if as_json:
        return json_response(
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
    # the search the visitor came from: the search page's links carry it, and so on onwards
    back = search_state(request.args, state.settings.max_query_chars)
    story["story_url"] = with_search_state(story["story_url"], back)
    context = {
        "story": story,
        "hits": [hit_view(datasette, state, h, None, back=back) for h in hits],
        "note": note,
        "error": None,
        "database": state.database,
        "json_url": similar_path(state, story_id, json=True),
        "back": back,
        "back_url": search_url(datasette, back),
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
def asgi_wrapper(datasette):
    """The JSON search API answered in front of Datasette's router when the router would
    decide nothing (no cookie, no credentials, no rule or plugin that could): 0.13-0.2 ms
    less a request, the same bytes. See mlopsmortem.web.direct."""
    if not config_flag(plugin_config(datasette), "direct_json", True):
        return lambda app: app
    return lambda app: direct_json_route(
        datasette, app, path="/-/search.json", view=search_json, wrapper_hook=asgi_wrapper
    )


@hookimpl
def menu_links(datasette, actor, request):
    return [{"href": datasette.urls.path("-/search"), "label": "Search failure stories"}]


# --------------------------------------------------------------------------- story row page


@hookimpl
def extra_template_vars(template, database, table, view_name, request, datasette):
    if view_name != "row" or table != "stories" or request is None:
        return {}

    async def inner() -> dict[str, Any]:
        state = await kb_state(datasette)
        if state is None or database != state.database:
            return {}
        pks = urlsafe_components(request.url_vars.get("pks", ""))
        if len(pks) != 1:
            return {}
        story_id = pks[0]
        details = await execute(datasette, state, lambda conn: story_details(conn, state, story_id))
        if details is None:
            return {}
        back = search_state(request.args, state.settings.max_query_chars)
        details["similar"] = [
            hit_view(datasette, state, h, None, back=back) for h in details["similar"]
        ]
        details["similar_url"] = with_search_state(similar_path(state, story_id), back)
        details["search_url"] = datasette.urls.path("-/search")  # tag links: a new search
        details["back"] = back
        details["back_url"] = search_url(datasette, back)
        return {"mm_story": details, "mm_css": _css_context(datasette)}

    return inner
