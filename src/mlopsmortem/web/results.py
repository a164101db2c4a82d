"""What the plugin answers: hits as JSON and as template views, facet links, JSON responses,
and what of the hits' incident cards an actor may see (`visible_cards`).

Every string a template shows is escaped by Jinja except `snippet_marked`, which the library
escaped already. JSON responses are compact UTF-8 with a Content-Length, and CORS headers when
Datasette serves with `--cors`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
from datasette.utils import add_cors_headers
from datasette.utils.asgi import Response

from mlopsmortem.incidents.types import DETECTIONS
from mlopsmortem.search.cards import (
    detection_label,
    duration_band_label,
    duration_text,
    trigger_label,
)
from mlopsmortem.web.facets import CARD_FACETS
from mlopsmortem.web.links import safe_href, search_url, similar_path, story_path, with_search_state
from mlopsmortem.web.params import FILTERS, Params
from mlopsmortem.web.state import State, can_view

FACET_TITLES = {
    "component": "Component",
    "impact": "Impact",
    "since": "Year",
    "source": "Source list",
    "link_status": "Link status",
    "trigger": "Trigger",
    "detection": "Detection",
    "duration": "Duration",
}
# how an active filter's value reads (ids otherwise)
VALUE_LABELS = {
    "trigger": trigger_label,
    "detection": detection_label,
    "duration": duration_band_label,
}


# The JSON answer's `mode` when filters come without a query (mlopsmortem.search.browse).
BROWSE_MODE = "browse"


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
    (the `passages` table): snippet, marked snippet and highlights empty, no passage id. A hit
    whose snippet names no passage (a browsed story's list summary, from `stories`) keeps it."""
    return [
        h
        if h.passage_id is None
        else dataclasses.replace(h, snippet="", snippet_marked="", highlights=(), passage_id=None)
        for h in hits
    ]


def without_cards(hits: list[Any]) -> list[Any]:
    """The hits (StoryHit) without their incident card's fields, for an actor who may not view
    the `incident_cards` table: no summary, triggers, detection or duration (the unknowns)."""
    return [
        dataclasses.replace(h, summary=None, triggers=(), detection=None, duration_minutes=None)
        for h in hits
    ]


async def visible_cards(
    datasette: Any, request: Any, state: State, hits: list[Any], facets: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Hits and facets without what comes from the `incident_cards` table (the hits' summary,
    triggers, detection and duration; the counts by them) unless the actor may view it."""
    shown = any(
        h.summary or h.triggers or h.detection or h.duration_minutes is not None for h in hits
    ) or any(facets.get(name) for name in CARD_FACETS)
    if not shown:  # nothing of the cards to hide: no permission check (about 0.5 ms) needed
        return hits, facets
    if await can_view(datasette, request, state, "incident_cards"):
        return hits, facets
    return without_cards(hits), {k: v for k, v in facets.items() if k not in CARD_FACETS}


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
    `snippet_marked`, which the library already escaped. Tag and trigger chips refine the
    search `params` (a new search without them); the story and similar links carry the
    search `back`, so the pages they open lead back to it."""
    view = hit.to_dict()
    view["story_url"] = with_search_state(story_path(state, hit.id), back)
    view["similar_url"] = with_search_state(similar_path(state, hit.id), back)
    view["href"] = safe_href(hit.url)
    view["detection_label"] = detection_label(hit.detection) if hit.detection else None
    view["duration_text"] = duration_text(hit.duration_minutes)
    chips = []
    for kind, values in (
        ("component", hit.components),
        ("impact", hit.impacts),
        ("trigger", hit.triggers),
    ):
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
            label = trigger_label(value) if kind == "trigger" else value
            chips.append({"kind": kind, "value": value, "label": label, "url": link})
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
        # filters alone list the stories passing them, newest first: nothing is ranked
        "mode": BROWSE_MODE if params.browsing() else params.mode,
        "filters": {
            "component": params.component,
            "impact": params.impact,
            "since": params.since,
            "source": params.source,
            "link_status": params.link_status,
            "trigger": params.trigger,
            "detection": params.detection,
            "duration": params.duration,
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
                label = str(item.get("label") or item["value"])
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
            known = VALUE_LABELS.get(name)
            active.append(
                {
                    "name": FACET_TITLES[name],
                    "value": known(value.lower()) if known else value,
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


# --------------------------------------------------------------------------- filters in words


def _either(values: Sequence[str]) -> str:
    return " or ".join(values)


def detection_phrase(detections: Sequence[str]) -> str:
    """Detection ids in words, any of them: "detected by an alert or someone inside"."""
    by = [DETECTIONS.get(v.lower(), v).removesuffix(" noticed") for v in detections]
    return f"detected by {_either(by)}"


def duration_phrase(bands: Sequence[str]) -> str:
    """Duration bands in words, any of them: "lasting < 1 h or 1–6 h"."""
    return f"lasting {_either([duration_band_label(v.lower()) for v in bands])}"


def filter_phrases(params: Params) -> tuple[list[str], list[str]]:
    """The active filters in words, for a heading or a feed title: (what the stories are
    "with": each component, impact and trigger (all apply), the link statuses (one applies);
    the other qualifiers: how they were detected, how long they lasted, the source lists, the
    year). Values are as typed (components, impacts, sources) or in their vocabulary's words."""
    with_parts = [f"component {v}" for v in params.component]
    with_parts += [f"impact {v}" for v in params.impact]
    with_parts += [f"trigger {trigger_label(v.lower())}" for v in params.trigger]
    if params.link_status:
        with_parts.append(f"link status {_either(params.link_status)}")
    others = []
    if params.detection:
        others.append(detection_phrase(params.detection))
    if params.duration:
        others.append(duration_phrase(params.duration))
    if params.source:
        others.append(f"from the list {_either(params.source)}")
    if params.since is not None:
        others.append(f"from {params.since} on")
    return with_parts, others


def browse_heading(params: Params) -> str:
    """What a page of filters without a query lists, e.g. "Stories with component kafka and
    impact data-loss", "Stories with trigger expiry, detected by an alert"."""
    with_parts, others = filter_phrases(params)
    heading = "Stories"
    if with_parts:
        heading += " with " + " and ".join(with_parts)
    if others:
        heading += (", " if with_parts else " ") + ", ".join(others)
    return heading
