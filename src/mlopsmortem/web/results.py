"""What the plugin answers: hits as JSON and as template views, facet links, JSON responses.

Every string a template shows is escaped by Jinja except `snippet_marked`, which the library
escaped already. JSON responses are compact UTF-8 with a Content-Length, and CORS headers when
Datasette serves with `--cors`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from datasette.utils import add_cors_headers
from datasette.utils.asgi import Response

from mlopsmortem.web.links import safe_href, search_url, similar_path, story_path, with_search_state
from mlopsmortem.web.params import FILTERS, Params
from mlopsmortem.web.state import State

FACET_TITLES = {
    "component": "Component",
    "impact": "Impact",
    "since": "Year",
    "source": "Source list",
    "link_status": "Link status",
}


# orjson's options that keep what json.dumps(data, default=str) accepted: keys that are not
# strings (written as strings), numpy scalars (as numbers), anything else through str()
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_response(datasette: Any, data: dict[str, Any], status: int = 200) -> Response:
    """The data as a JSON response (UTF-8, compact, encoded by orjson), with a Content-Length
    so the server frames the body by its length instead of in chunks."""
    body = orjson.dumps(data, default=str, option=JSON_OPTIONS)
    response = Response(
        body,
        status=status,
        headers={"content-length": str(len(body))},
        content_type="application/json; charset=utf-8",
    )
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


def error_response(datasette: Any, message: str, status: int) -> Response:
    return json_response(datasette, {"ok": False, "error": message, "status": status}, status)


def without_page_text(hits: list[Any]) -> list[Any]:
    """The hits (StoryHit) without their snippets, for an actor who may not read page text
    (the `passages` table): snippet, marked snippet and highlights empty, no passage id."""
    return [
        dataclasses.replace(h, snippet="", snippet_marked="", highlights=(), passage_id=None)
        for h in hits
    ]


def hit_dict(state: State, hit: Any) -> dict[str, Any]:
    """One hit of the JSON API: the library's fields and the links to its story pages."""
    data = hit.to_dict()
    data["story_url"] = story_path(state, hit.id)
    data["similar_url"] = similar_path(state, hit.id, json=True)
    return data


def hit_view(
    datasette: Any, state: State, hit: Any, params: Params | None, back: Params | None = None
) -> dict[str, Any]:
    """What the HTML templates need of one hit; every string is escaped by Jinja except
    `snippet_marked`, which the library already escaped. Tag chips refine the search `params`
    (a new search without them); the story and similar links carry the search `back`, so the
    pages they open lead back to it."""
    view = hit.to_dict()
    view["story_url"] = with_search_state(story_path(state, hit.id), back)
    view["similar_url"] = with_search_state(similar_path(state, hit.id), back)
    view["href"] = safe_href(hit.url)
    chips = []
    for kind, values in (("component", hit.components), ("impact", hit.impacts)):
        for value in values:
            link = None
            if params is not None and value.lower() not in {
                v.lower() for v in getattr(params, kind)
            }:
                link = search_url(
                    datasette, params, **{kind: [*getattr(params, kind), value], "offset": 0}
                )
            elif params is None:
                link = search_url(datasette, Params(), **{kind: [value]})
            chips.append({"kind": kind, "value": value, "url": link})
    view["chips"] = chips
    return view


def search_body(
    datasette: Any,
    request: Any,
    state: State,
    params: Params,
    hits: list[Any],
    next_url: str | None,
    facets: dict[str, Any],
) -> dict[str, Any]:
    """The JSON API's answer to a search (`next_url`: a path, made absolute here)."""
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
        "results": [hit_dict(state, h) for h in hits],
        "next": datasette.absolute_url(request, next_url) if next_url else None,
    }
    if params.facets:
        data["facets"] = facets
        data["facets_count"] = facet_scope(params, state.facet_results)
    return data


def facet_scope(params: Params, depth: int) -> str:
    """What the facet counts of this search count (web.queries.facet_counts), in words: the
    search page shows it under the facets, the JSON API as `facets_count`."""
    if not params.q:
        return "stories passing the other filters"
    if params.mode == "keyword":
        return "stories containing your words, among those passing the other filters"
    return f"stories among the first {depth} results of this search, with the other filters"


def facet_groups(datasette: Any, params: Params, facets: dict[str, Any]) -> list[dict[str, Any]]:
    """The search page's facets: per filter, its values with counts and the link that selects
    (or, when selected, drops) each, back on the first page."""
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


def active_filters(datasette: Any, params: Params) -> list[dict[str, str]]:
    """The filters in force, each with the link that drops it."""
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
