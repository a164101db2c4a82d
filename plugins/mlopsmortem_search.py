"""Datasette plugin: similarity search over the mlopsmortem knowledge base.

Load it with `datasette kb.db --plugins-dir plugins` (or `mlopsmortem serve`). It has no search
logic of its own: every result comes from `mlopsmortem.search.run.search` / `similar` (or, for
filters without a query, `mlopsmortem.search.browse.browse`), and each view only parses the
request (`mlopsmortem.web.params`), runs its queries on Datasette's SQL threads
(`mlopsmortem.web.queries`) and renders (`mlopsmortem.web.results`, the templates). What
the views share with plugins/mlopsmortem_feeds.py lives in `mlopsmortem.web` (Datasette loads
each file of --plugins-dir by path as its own module, so plugin files cannot import each other).

Routes
  /-/search                  HTML search page: query, mode, facet filters with counts, paging
  /-/search.json             the same parameters, JSON (see `search_json`)
                             (filters without q: the stories passing them, newest first,
                             from `mlopsmortem.search.browse`; JSON `mode` "browse")
  /-/similar/{id}            HTML: the stories nearest to one story
  /-/similar/{id}.json       the same, JSON
  /-/mlopsmortem.css         the stylesheet of the pages above
  /-/feeds/...               Atom feeds: see plugins/mlopsmortem_feeds.py

SQL functions (every connection)
  mm_cosine(a, b)   cosine similarity of two little-endian float32 vector BLOBs (NULL if either
                    is NULL, empty, or the lengths differ)
  mm_embed(text)    the query vector BLOB of text with the configured model (lazily loaded)
  mm_model()        the name embeddings of the configured model are stored under

Metadata: the `source` shown in every page's footer names the lists of the served database
(`get_metadata`, from its `sources` table, read when the plugin first finds it).

Templates: the files in plugins/templates (the search and similar pages, and the row page
of a story, which extends Datasette's default row.html) are looked up after the instance's
`--template-dir` and ahead of Datasette's own, through the `prepare_jinja2_environment` hook.

Permissions: every route answers only an actor Datasette lets view the `stories` table (then
its database, then the instance), asked through `datasette.ensure_permissions` on every
request: `allow` rules in the metadata and permission plugins keep these pages private too.
What a response draws from another table is shown only to an actor who may view that table
too (`can_view`): snippets need `passages`; a hit's incident-card fields and the counts by
trigger, detection and duration `incident_cards`; a story page's tags `tags`, its page and
history `pages` and `page_history`, its lists `story_sources` and `sources`.

Plugin configuration (metadata `plugins: mlopsmortem-search:`), all optional:
  database          name of the database to search (default: the first with a `passages` table)
  model             sentence-transformers model name or path (default all-MiniLM-L6-v2)
  max_query_chars   longest accepted query (default: Settings().max_query_chars)
  time_limit_ms     time limit of one search (default: Datasette's sql_time_limit_ms)
  facet_results     facet counts of a hybrid or semantic search are of its first N results
                    (default 20, at most 1000)
  warm              load the model and vectors in a background thread at startup (default true)
"""

import hashlib
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from datasette import hookimpl
from datasette.utils import urlsafe_components
from datasette.utils.asgi import Response
from jinja2 import ChoiceLoader, FileSystemLoader

from mlopsmortem.errors import ModelError, NotFoundError, SearchError
from mlopsmortem.search.types import MODES
from mlopsmortem.settings import DEFAULT_MODEL, Settings
from mlopsmortem.web.facets import run_facets
from mlopsmortem.web.links import (
    feed_url,
    safe_href,
    search_url,
    similar_path,
    story_path,
    with_search_state,
)
from mlopsmortem.web.model import mm_cosine, text_functions
from mlopsmortem.web.params import (
    FILTERS,
    MAX_OFFSET,
    BadRequest,
    Params,
    bounded_n,
    parse_params,
    search_state,
    typed_query,
)
from mlopsmortem.web.queries import (
    execute,
    run_browse,
    run_search,
    similar_stories,
    story_details,
    warm_up,
)
from mlopsmortem.web.results import (
    active_filters,
    browse_heading,
    error_response,
    facet_groups,
    facet_scope,
    hit_dict,
    hit_view,
    json_response,
    search_body,
    visible_cards,
    without_page_text,
)
from mlopsmortem.web.state import (
    State,
    can_view,
    kb_state,
    metadata_credit,
    plugin_config,
    visible_state,
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
        threading.Thread(target=warm_up, args=(datasette, state), name="mlopsmortem-warm").start()

    return inner


@hookimpl
def prepare_jinja2_environment(env, datasette):
    """Look templates up in the instance's own template directory (`--template-dir`: a user's
    templates win, as in Datasette), then in plugins/templates, then wherever Datasette looks."""
    paths = [str(datasette.template_dir)] if datasette.template_dir else []
    paths.append(str(TEMPLATES))
    if isinstance(env.loader, ChoiceLoader) and env.loader.loaders:
        first = env.loader.loaders[0]
        if isinstance(first, FileSystemLoader) and first.searchpath == paths:
            return  # already in front
    env.loader = ChoiceLoader([FileSystemLoader(paths), env.loader])


@hookimpl
def get_metadata(datasette, key, database, table):
    """The footer's "Data source": the lists the served database was read from (its `sources`
    table), never a fixed credit (the demo's stories are invented). Metadata that sets
    `source` itself wins, as Datasette merges the instance's own metadata last."""
    return metadata_credit(datasette)


# --------------------------------------------------------------------------- SQL functions


@hookimpl
def prepare_connection(conn, database, datasette):
    config = plugin_config(datasette)
    served = datasette.databases.get(database)
    base = Settings()
    mm_embed, mm_model = text_functions(
        str(config.get("model") or DEFAULT_MODEL),
        int(config.get("max_query_chars") or base.max_query_chars),
        # mm_embed embeds with the query encoder stored in this connection's database file
        str(served.path) if served is not None and served.path else "",
        base.query_encoder,
        served is not None and not served.is_mutable,
    )
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
        elif params.has_filters():  # filters alone: the stories passing them, newest first
            hits, more = await run_browse(datasette, state, params)
        elif as_json:
            raise BadRequest(
                "empty query: pass q, e.g. /-/search.json?q=lost+logs, or a filter such as"
                " component=kubernetes"
            )
        if any(h.passage_id is not None for h in hits) and not await can_view(
            datasette, request, state, "passages"
        ):
            hits = without_page_text(hits)
        if not as_json or params.facets:
            try:
                facets = await run_facets(datasette, state, params)
            except BadRequest:
                if as_json:
                    raise
                facets = {}  # too slow: the page still shows the results, without counts
        hits, facets = await visible_cards(datasette, request, state, hits, facets)
    except BadRequest as exc:
        error, status = str(exc), exc.status
        if not params.q:  # the parameters were refused: keep what was typed in the form
            params = typed_query(request.args, state.settings.max_query_chars)
    except SearchError as exc:
        error, status = str(exc), 400
    except ModelError as exc:
        error = f"{exc} (keyword search still works: mode=keyword)"
        status = 503
    next_url = None
    if more and params.offset + params.n <= MAX_OFFSET:
        next_url = search_url(datasette, params, json=as_json, offset=params.offset + params.n)
    if as_json:
        if error:
            return error_response(datasette, error, status)
        return json_response(
            datasette, search_body(datasette, request, state, params, hits, next_url, facets)
        )
    prev_url = None
    if params.offset:
        prev_url = search_url(datasette, params, offset=max(0, params.offset - params.n))
    context = {
        "params": params,
        "modes": MODES,
        "error": error,
        "hits": [hit_view(datasette, state, h, params, back=params) for h in hits],
        "facet_groups": facet_groups(datasette, params, facets) if facets else [],
        "facet_scope": facet_scope(params, state.facet_results),
        "active_filters": active_filters(datasette, params),
        "next_url": next_url,
        "prev_url": prev_url,
        "first_rank": params.offset + 1,
        "browsing": params.browsing(),
        "browse_heading": browse_heading(params) if params.browsing() else None,
        "json_url": search_url(datasette, params, json=True)
        if params.q or params.browsing()
        else None,
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

    try:
        story, hits, note = await execute(
            datasette, state, lambda conn: similar_stories(conn, state, story_id, n)
        )
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
    if hits and not await can_view(datasette, request, state, "passages"):
        hits = without_page_text(hits)
    hits, _ = await visible_cards(datasette, request, state, hits, {})
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
                "results": [hit_dict(state, h) for h in hits],
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


async def unknown_similar(datasette, request):
    # /-/similar/a/b: without this route Datasette 0.65 resolves it as database "-", table
    # "similar" and fails before answering (a 500); a story id never holds a slash
    message = "no such page: similar stories are at /-/similar/{story id}"
    if request.path.endswith(".json"):
        return error_response(datasette, message, 404)
    return Response.text(message, status=404)


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
        (r"^/-/similar(/.*)?$", unknown_similar),  # after the one above: first match wins
        (r"^/-/mlopsmortem\.css$", stylesheet),
    ]


@hookimpl
def menu_links(datasette, actor, request):
    return [{"href": datasette.urls.path("-/search"), "label": "Search failure stories"}]


# --------------------------------------------------------------------------- story row page


async def _hide_what_the_actor_may_not_view(
    datasette: Any, request: Any, state: State, details: dict[str, Any]
) -> None:
    """Drop from a story's details what comes from a table the actor may not view: tags with
    their evidence (`tags`), the page and its history (`pages`, `page_history`), the source
    lists (`story_sources`, `sources`)."""

    async def viewable(*tables: str) -> bool:
        for table in tables:
            if not await can_view(datasette, request, state, table):
                return False
        return True

    if not await viewable("tags"):
        details["tags"] = []
    if not await viewable("pages"):
        details["page"] = None
    if not await viewable("page_history"):
        details["history"] = []
    if not await viewable("story_sources", "sources"):
        details["sources"] = []
    # the similar stories show no snippet here: nothing of `passages` to hide


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
        # the card, the story's facts and the tag rows: mlopsmortem.web.story_page
        from mlopsmortem.web.explore import taxonomy_at
        from mlopsmortem.web.story_page import card_view, story_extras, tag_rows

        details, extras = await execute(
            datasette,
            state,
            lambda conn: (story_details(conn, state, story_id), story_extras(conn, story_id)),
        )
        if details is None:
            return {}
        await _hide_what_the_actor_may_not_view(datasette, request, state, details)
        search_path = datasette.urls.path("-/search")
        card = extras.pop("card")
        if card is not None and await can_view(datasette, request, state, "incident_cards"):
            timeline = await can_view(datasette, request, state, "incident_timeline")
            details["card"] = card_view(card, search_path, with_timeline=timeline)
        else:
            details["card"] = None
        details["facts"] = extras
        taxonomy = taxonomy_at(state.settings.taxonomy_file) if details["tags"] else None
        names = {i.id: i.name for i in taxonomy.impacts} if taxonomy else {}
        details["tag_rows"] = tag_rows(details["tags"], search_path, names)
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
