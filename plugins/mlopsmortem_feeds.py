"""Datasette plugin: Atom 1.0 feeds of new failure stories, to follow a component, an impact or
a saved search in a feed reader.

Routes (each entry: a live story, newest first by first_seen; at most `n`, default and cap 50)
  /-/feeds/new.atom                  every new story
  /-/feeds/component/{name}.atom     stories tagged with this component (e.g. Kafka)
  /-/feeds/impact/{id}.atom          stories tagged with this impact (e.g. data-loss)
  /-/feeds/search.atom?q=&mode=&component=&impact=&source=&link_status=&since=
                                     a saved search: the parameters of /-/search.json, bounded
                                     the same way; its best `n` matches, newest first (offset and
                                     facets are accepted and ignored: a feed has no pages). No q:
                                     the newest stories passing the filters.

A tag is matched case-insensitively; one the taxonomy defines but no story carries yet is an
empty feed, anything else a 404. Selection and the XML are in `mlopsmortem.web.feeds`; this module
only routes. It shares the knowledge-base state with plugins/mlopsmortem_search.py through
`mlopsmortem.web.state` (plugin files cannot import each other); its queries run on Datasette's
SQL threads (`mlopsmortem.web.queries.execute`) and every feed asks Datasette whether the actor
may view the stories table, and takes nothing from the fetched pages (a summary from a page's
text, a title from its metadata: the `documents` table) unless the actor may view `documents`
too (`mlopsmortem.web.state.can_view`).
"""

import dataclasses
import sqlite3
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import sqlite_utils
from datasette import hookimpl
from datasette.utils import add_cors_headers
from datasette.utils.asgi import Response

from mlopsmortem.errors import ModelError, NotFoundError, SearchError
from mlopsmortem.search.cards import trigger_label
from mlopsmortem.web.feeds import (
    CONTENT_TYPE,
    FEED_LIMIT,
    TAG_PREFIX,
    FeedInfo,
    FeedStory,
    atom_feed,
    canonical_tag,
    newest_stories,
    search_stories,
    tag_stories,
)
from mlopsmortem.web.links import safe_href, search_url, story_path
from mlopsmortem.web.params import (
    DEFAULT_N,
    MAX_FILTER_CHARS,
    BadRequest,
    Params,
    bounded_n,
    parse_params,
)
from mlopsmortem.web.queries import embed_first, execute, library_connection, library_db
from mlopsmortem.web.results import detection_phrase, duration_phrase
from mlopsmortem.web.state import State, can_view, visible_state

SITE = "mlopsmortem"
T = TypeVar("T")


def _feed_id(path: str, pairs: list[tuple[str, str]] | None = None) -> str:
    """A tag: URI naming the selection, not the host: the same under any host name or proxy.
    Filter values are case-folded and sorted, so equivalent URLs name one feed."""
    tail = urllib.parse.quote(path, safe="/")
    if pairs:
        canonical = sorted((k, v if k == "q" else v.casefold()) for k, v in pairs)
        tail += "?" + urllib.parse.urlencode(canonical)
    return f"{TAG_PREFIX}feed/{tail}"


def _stories_table(datasette: Any, state: State, **filters: str) -> str:
    """The stories table, newest first, live stories only, with Datasette column filters."""
    query = {"_sort_desc": "first_seen", "removed_at__isnull": "1", **filters}
    table = datasette.urls.table(state.database, "stories")
    return f"{table}?{urllib.parse.urlencode(query)}"


def _error(datasette: Any, message: str, status: int) -> Response:
    response = Response.text(message, status=status)
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


async def _run(datasette: Any, state: State, select: Callable[[sqlite_utils.Database], T]) -> T:
    """select(library db) under the plugin's time limit, on a read connection."""

    def work(conn: sqlite3.Connection) -> T:
        with library_connection(conn, state.time_limit_ms):
            return select(library_db(conn))

    return await execute(datasette, state, work, what="feed")


async def _respond(
    datasette: Any,
    request: Any,
    state: State,
    info: FeedInfo,
    select: Callable[[sqlite_utils.Database, bool], list[FeedStory]],
) -> Response:
    """The feed of select(library db, whether the actor may read page text)."""
    page_text = await can_view(datasette, request, state, "documents")
    try:
        stories = await _run(datasette, state, lambda db: select(db, page_text))
    except BadRequest as exc:
        return _error(datasette, str(exc), exc.status)
    except NotFoundError as exc:
        return _error(datasette, str(exc), 404)
    except SearchError as exc:
        return _error(datasette, str(exc), 400)
    except ModelError as exc:
        return _error(datasette, f"{exc} (keyword feeds still work: mode=keyword)", 503)

    def absolute(path: str) -> str:
        return datasette.absolute_url(request, path)

    info = FeedInfo(
        id=info.id,
        title=info.title,
        subtitle=info.subtitle,
        self_url=absolute(info.self_url),
        html_url=absolute(info.html_url) if info.html_url else None,
    )
    body = atom_feed(
        info,
        stories,
        story_page=lambda story_id: absolute(story_path(state, story_id)),
        safe_href=safe_href,
    )
    response = Response(body, content_type=CONTENT_TYPE)
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


_NO_DATABASE = "No attached database has a `passages` table: nothing to publish."


async def new_feed(datasette, request):
    state = await visible_state(datasette, request)
    if state is None:
        return _error(datasette, _NO_DATABASE, 404)
    try:
        n = bounded_n(request.args, FEED_LIMIT)
    except BadRequest as exc:
        return _error(datasette, str(exc), exc.status)
    info = FeedInfo(
        id=_feed_id("new"),
        title=f"{SITE}: new failure stories",
        subtitle="Postmortems and incident write-ups about MLOps and infrastructure, newest first.",
        self_url=datasette.urls.path("-/feeds/new.atom"),
        html_url=_stories_table(datasette, state),
    )
    return await _respond(
        datasette,
        request,
        state,
        info,
        lambda db, text: newest_stories(db.conn, limit=n, page_text=text),
    )


async def tag_feed(datasette, request):
    kind = request.url_vars["kind"]  # the route allows only component and impact
    name = urllib.parse.unquote(request.url_vars["name"]).strip()
    state = await visible_state(datasette, request)
    if state is None:
        return _error(datasette, _NO_DATABASE, 404)
    try:
        if not name or len(name) > MAX_FILTER_CHARS:
            raise BadRequest(f"a {kind} name has 1 to {MAX_FILTER_CHARS} characters")
        n = bounded_n(request.args, FEED_LIMIT)
    except BadRequest as exc:
        return _error(datasette, str(exc), exc.status)
    taxonomy_file = state.settings.taxonomy_file
    # The tag is resolved first (its canonical spelling names the feed), then its stories.
    try:
        tag, used = await _run(
            datasette,
            state,
            lambda db: canonical_tag(db.conn, kind, name, taxonomy_file),
        )
    except NotFoundError as exc:
        return _error(datasette, str(exc), 404)
    except BadRequest as exc:
        return _error(datasette, str(exc), exc.status)
    quoted = urllib.parse.quote(tag, safe="")
    column = "components" if kind == "component" else "impacts"
    info = FeedInfo(
        id=_feed_id(f"{kind}/{tag}"),
        title=f"{SITE}: new stories with {kind} {tag}",
        self_url=datasette.urls.path(f"-/feeds/{kind}/{quoted}.atom"),
        html_url=_stories_table(datasette, state, **{f"{column}__arraycontains": tag}),
    )
    return await _respond(
        datasette,
        request,
        state,
        info,
        lambda db, text: tag_stories(db.conn, kind, tag, limit=n, page_text=text) if used else [],  # type: ignore[arg-type]
    )


def _describe(params: Params) -> str:
    """The feed's title after the site's name: the query, then each filter value, e.g.
    "stories, component kafka, trigger expiry, detected by an alert, lasting < 1 h or 1–6 h"."""
    parts = [f"“{params.q}” ({params.mode})"] if params.q else ["stories"]
    for name in ("component", "impact", "source", "link_status"):
        parts.extend(f"{name.replace('_', ' ')} {v}" for v in getattr(params, name))
    parts.extend(f"trigger {trigger_label(v.lower())}" for v in params.trigger)
    if params.detection:  # alternatives, as the search page's heading says them
        parts.append(detection_phrase(params.detection))
    if params.duration:
        parts.append(duration_phrase(params.duration))
    if params.since is not None:
        parts.append(f"since {params.since}")
    return ", ".join(parts)


async def search_feed(datasette, request):
    state = await visible_state(datasette, request)
    if state is None:
        return _error(datasette, _NO_DATABASE, 404)
    try:
        params = parse_params(request.args, state.settings.max_query_chars, default_n=FEED_LIMIT)
        await embed_first(state, params)
    except BadRequest as exc:
        return _error(datasette, str(exc), exc.status)
    except ModelError as exc:
        return _error(datasette, f"{exc} (keyword feeds still work: mode=keyword)", 503)
    # the selection without paging: it names the feed and its HTML page
    page = dataclasses.replace(params, n=DEFAULT_N, offset=0, facets=False)
    pairs = page.pairs()
    self_pairs = pairs + ([("n", str(params.n))] if params.n != FEED_LIMIT else [])
    self_url = datasette.urls.path("-/feeds/search.atom")
    if self_pairs:
        self_url += "?" + urllib.parse.urlencode(self_pairs)
    info = FeedInfo(
        id=_feed_id("search", pairs),
        title=f"{SITE}: {_describe(params)}",
        subtitle="A saved search: its best matches, newest first.",
        self_url=self_url,
        html_url=search_url(datasette, page),
    )
    settings = state.settings
    return await _respond(
        datasette,
        request,
        state,
        info,
        lambda db, text: search_stories(
            db,
            params.q,
            settings=settings,
            mode=params.mode,
            filters=params.filters(),
            limit=params.n,
            page_text=text,
        ),
    )


async def unknown_feed(datasette, request):
    # Without this, Datasette 0.65 resolves /-/feeds/a/b.atom as database "-", table "feeds",
    # and with `rich` installed its exception hook fails before answering 404.
    return _error(
        datasette,
        "no such feed; feeds: /-/feeds/new.atom, /-/feeds/component/{name}.atom,"
        " /-/feeds/impact/{id}.atom, /-/feeds/search.atom?q=...",
        404,
    )


@hookimpl
def register_routes(datasette):
    return [  # first match wins: the catch-all last
        (r"^/-/feeds/new\.atom$", new_feed),
        (r"^/-/feeds/(?P<kind>component|impact)/(?P<name>[^/]+)\.atom$", tag_feed),
        (r"^/-/feeds/search\.atom$", search_feed),
        (r"^/-/feeds(/.*)?$", unknown_feed),
    ]
