"""Datasette plugin: the incident pages of the mlopsmortem knowledge base.

Routes
  /-/explore       HTML: stories per year by component category, impact and trigger; the
                   component x impact matrix (cells link to that search); median duration
                   by trigger. Charts are server-side SVG (mlopsmortem.web.charts).
  /-/like          GET: a form to paste a draft postmortem or an alert text; POST (the form,
                   with Datasette's csrftoken): the nearest public stories, what they share,
                   how they were resolved. The text is never in a URL, a log or the database.
  /-/like.json     POST {"text": "..."}: the same answer as JSON; GET is a 405.

Like plugins/mlopsmortem_search.py (whose stylesheet /-/mlopsmortem.css these pages use), each
view parses the request, calls `mlopsmortem.web` and renders; every route first asks
Datasette whether the actor may view the `stories` table, and shows what it draws from the
cards (`incident_cards`) or passages (`passages`) only to an actor who may view those too.
"""

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from datasette import hookimpl
from datasette.utils.asgi import Response

from mlopsmortem.errors import ModelError, SearchError
from mlopsmortem.search.like import MAX_LIKE_CHARS
from mlopsmortem.web.explore import ExploreData, explore_data, explore_view, taxonomy_at
from mlopsmortem.web.like_page import answer_like, like_body, like_view, posted_text
from mlopsmortem.web.params import BadRequest
from mlopsmortem.web.queries import execute, library_connection
from mlopsmortem.web.results import error_response, json_response
from mlopsmortem.web.state import can_view, visible_state

CSS_PATH = Path(__file__).resolve().parent / "static" / "mlopsmortem.css"
NO_KB = (
    "No attached database has a `passages` table: build the knowledge base with "
    "`mlopsmortem crawl` and serve that file."
)
# the answer echoes the pasted text: no cache may keep it
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _css(datasette: Any) -> str:
    try:
        version = hashlib.sha256(CSS_PATH.read_bytes()).hexdigest()[:8]
    except OSError:
        version = "0"
    return datasette.urls.path("-/mlopsmortem.css") + "?" + version


async def _render(
    datasette: Any, request: Any, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    context = {"mm_css": _css(datasette), "metadata": datasette.metadata(), **context}
    html = await datasette.render_template(
        template, context, request=request, view_name=template.removesuffix(".html")
    )
    private = template == "mlopsmortem_like.html"
    return Response.html(html, status=status, headers=dict(PRIVATE) if private else None)


# --------------------------------------------------------------------------- explore


async def explore_page(datasette: Any, request: Any) -> Response:
    state = await visible_state(datasette, request)
    if state is None:
        return await _render(
            datasette, request, "mlopsmortem_explore.html", {"error": NO_KB}, status=404
        )
    cards = await can_view(datasette, request, state, "incident_cards")
    taxonomy = taxonomy_at(state.settings.taxonomy_file)

    def work(conn: sqlite3.Connection) -> ExploreData:
        with library_connection(conn, state.time_limit_ms):
            return explore_data(conn, taxonomy, cards=cards)

    try:
        data = await execute(datasette, state, work, what="count")
    except BadRequest as exc:
        return await _render(
            datasette, request, "mlopsmortem_explore.html", {"error": str(exc)}, exc.status
        )
    context = {
        "error": None,
        "view": explore_view(data, taxonomy, datasette.urls.path("-/search")),
        "search_url": datasette.urls.path("-/search"),
        "like_url": datasette.urls.path("-/like"),
    }
    return await _render(datasette, request, "mlopsmortem_explore.html", context)


# --------------------------------------------------------------------------- incidents like mine


async def like_page(datasette: Any, request: Any) -> Response:
    state = await visible_state(datasette, request)
    context: dict[str, Any] = {
        "error": None,
        "text": "",
        "answer": None,
        "max_chars": MAX_LIKE_CHARS,
        "action": datasette.urls.path("-/like"),
        "search_url": datasette.urls.path("-/search"),
    }
    if state is None:
        return await _render(
            datasette, request, "mlopsmortem_like.html", {**context, "error": NO_KB}, 404
        )
    if request.method != "POST":  # a text in the query string is never read
        return await _render(datasette, request, "mlopsmortem_like.html", context)
    status = 200
    try:
        text = await posted_text(request, as_json=False)
        context["text"] = text
        answer = await answer_like(datasette, state, text)
        context["answer"] = like_view(
            state,
            answer,
            context["search_url"],
            passages=await can_view(datasette, request, state, "passages"),
            cards=await can_view(datasette, request, state, "incident_cards"),
        )
    except BadRequest as exc:
        context["error"], status = str(exc), exc.status
    except SearchError as exc:
        context["error"], status = str(exc), 400
    except ModelError as exc:
        context["error"], status = str(exc), 503
    return await _render(datasette, request, "mlopsmortem_like.html", context, status)


async def like_json(datasette: Any, request: Any) -> Response:
    state = await visible_state(datasette, request)
    if state is None:
        return error_response(datasette, NO_KB, 404)
    if request.method != "POST":
        message = 'POST the text as JSON: {"text": "..."} (a text is never read from a URL)'
        response = error_response(datasette, message, 405)
        response.headers["Allow"] = "POST"
        return response
    try:
        text = await posted_text(request, as_json=True)
        answer = await answer_like(datasette, state, text)
    except BadRequest as exc:
        return error_response(datasette, str(exc), exc.status)
    except SearchError as exc:
        return error_response(datasette, str(exc), 400)
    except ModelError as exc:
        return error_response(datasette, str(exc), 503)
    body = like_body(
        state,
        answer,
        passages=await can_view(datasette, request, state, "passages"),
        cards=await can_view(datasette, request, state, "incident_cards"),
    )
    response = json_response(datasette, body)
    response.headers.update(PRIVATE)
    return response


# --------------------------------------------------------------------------- hooks


@hookimpl
def register_routes(datasette):
    return [
        (r"^/-/explore$", explore_page),
        (r"^/-/like$", like_page),
        (r"^/-/like\.json$", like_json),
    ]


@hookimpl
def skip_csrf(datasette, scope):
    """A JSON POST to /-/like.json needs no CSRF token: a browser sends a JSON body to
    another site only after a CORS preflight that Datasette never grants, and the endpoint
    changes nothing. Forms (the /-/like page) still carry Datasette's csrftoken."""
    if scope.get("type") != "http" or not scope.get("path", "").endswith("/-/like.json"):
        return False
    headers = dict(scope.get("headers") or [])
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip() == b"application/json"


@hookimpl
def menu_links(datasette, actor, request):
    return [
        {"href": datasette.urls.path("-/explore"), "label": "Explore failure stories"},
        {"href": datasette.urls.path("-/like"), "label": "Incidents like mine"},
    ]
