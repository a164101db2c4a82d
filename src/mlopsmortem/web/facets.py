"""The search page's facet counts (and `facets=1` of the JSON API): per filter value, how many
of the stories a visitor pages through carry it, given the other filters. Runs on Datasette's
SQL threads like every query of the plugin (`mlopsmortem.web.queries.execute`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from mlopsmortem.incidents.types import DETECTIONS, DURATION_BAND_LABELS, DURATION_BANDS, TRIGGERS
from mlopsmortem.search.cards import CARDS_TABLE, has_cards
from mlopsmortem.search.filters import story_filter_sql
from mlopsmortem.search.keyword import stories_containing
from mlopsmortem.search.run import search
from mlopsmortem.settings import Settings
from mlopsmortem.web.params import Params
from mlopsmortem.web.queries import execute, library_connection, library_db
from mlopsmortem.web.state import FACET_RESULTS, State

CARD_FACETS = ("trigger", "detection", "duration")  # drawn from the incident_cards table
_BAND_ORDER = {band: i for i, (band, _label, _upper) in enumerate(DURATION_BANDS)}


async def run_facets(datasette: Any, state: State, params: Params) -> dict[str, Any]:
    def work(conn: sqlite3.Connection) -> dict[str, Any]:
        with library_connection(conn, state.time_limit_ms):
            return facet_counts(conn, params, settings=state.settings, depth=state.facet_results)

    return await execute(datasette, state, work, what="facet count")


_ARRAY = "CASE WHEN json_valid(s.{col}) THEN s.{col} ELSE '[]' END"


def _chosen(rows: list[Any], selected: list[str]) -> list[dict[str, Any]]:
    chosen = {v.lower() for v in selected}
    return [{"value": r[0], "count": r[1], "selected": r[0].lower() in chosen} for r in rows]


def facet_counts(
    conn: sqlite3.Connection,
    params: Params,
    *,
    settings: Settings | None = None,
    depth: int = FACET_RESULTS,
) -> dict[str, list[dict[str, Any]]]:
    """Counts of live stories per filter value, given the other active filters: of the
    results a visitor pages through (`facet_scope` says it in words).

    Components, impacts and triggers combine with AND, so their counts apply every active
    filter; a story has one year, one link status, one detection, one duration band and some
    sources, so those counts leave out their own filter (choosing another value widens or
    moves the selection). Without a query: every
    story passing the filters. A keyword search returns only the stories containing its
    words: its counts are of those. Hybrid and semantic searches rank every story passing the
    filters (by meaning when not by words), so their counts are of the first `depth` results
    (the library's `search` with those filters, `settings` required): a value's count is how
    many of them carry it. That is at most one search more than the page's own, plus one per
    active year, source, link-status, detection or duration filter (each count leaving its
    filter out), each bounded by `depth`. Trigger, detection and duration values carry a
    `label` (mlopsmortem.incidents.types); a knowledge base without cards has none."""
    filters = params.filters()
    ranked = bool(params.q) and params.mode != "keyword"
    if ranked and settings is None:
        raise ValueError("facet counts of a hybrid or semantic search need the settings")
    # found once, passed to each count as a JSON array, instead of each count re-running the
    # FTS5 query (keyword) or the search (hybrid, semantic; once per set of filters)
    keyword = stories_containing(conn, params.q) if params.q and not ranked else None
    searched: dict[str, str] = {}

    def found(applied: dict[str, Any]) -> str | None:
        if keyword is not None:
            return json.dumps(keyword)
        if not ranked:
            return None
        key = json.dumps(applied, sort_keys=True, default=list)
        if key not in searched:
            hits = search(
                library_db(conn),
                params.q,
                settings=settings,  # type: ignore[arg-type]  # checked above
                mode=params.mode,  # type: ignore[arg-type]
                limit=depth,
                **applied,
            )
            searched[key] = json.dumps([h.id for h in hits])
        return searched[key]

    def where(**drop: Any) -> tuple[str, list[Any]]:
        applied = {**filters, **drop}
        clause, args = story_filter_sql(conn, **applied)
        ids = found(applied)
        if ids is None:
            return clause, args
        return f"{clause} AND s.id IN (SELECT value FROM json_each(?))", [*args, ids]

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
    out.update(_card_facets(conn, params, where))
    return out


def _labelled(rows: list[Any], selected: list[str], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Facet items of card values, each with its label; ids outside the vocabulary (which the
    filter would refuse) are left out."""
    chosen = {v.lower() for v in selected}
    return [
        {"value": value, "label": labels[value], "count": count, "selected": value in chosen}
        for value, count in rows
        if value in labels
    ]


def _card_facets(
    conn: sqlite3.Connection, params: Params, where: Callable[..., tuple[str, list[Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Counts by trigger (every filter applied: AND), detection and duration band (each
    leaving its own filter out), from the stories' incident cards."""
    if not has_cards(conn):
        return {name: [] for name in CARD_FACETS}
    cards = f"stories s JOIN {CARDS_TABLE} ic ON ic.story_id = s.id"
    clause, args = where()
    rows = conn.execute(
        f"SELECT j.value, count(DISTINCT s.id) FROM {cards},"
        " json_each(CASE WHEN json_valid(ic.triggers) THEN ic.triggers ELSE '[]' END) j"
        f" WHERE {clause} AND j.type = 'text' GROUP BY j.value ORDER BY 2 DESC, 1",
        args,
    ).fetchall()
    out = {"trigger": _labelled(rows, params.trigger, TRIGGERS)}
    for name, column, drop, labels in (
        ("detection", "detection", "detections", DETECTIONS),
        ("duration", "duration_band", "durations", DURATION_BAND_LABELS),
    ):
        clause, args = where(**{drop: ()})
        rows = conn.execute(
            f"SELECT ic.{column}, count(*) FROM {cards}"
            f" WHERE {clause} AND ic.{column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1",
            args,
        ).fetchall()
        out[name] = _labelled(rows, getattr(params, name), labels)
    out["duration"].sort(key=lambda item: _BAND_ORDER[item["value"]])  # bands in their order
    return out
