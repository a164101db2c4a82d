"""Search filters: the SQL condition on `stories s` for components, impacts, year, sources, link
status and the incident card's triggers, detection and duration band, with the requested values
checked against those in the database (or, for the card's fixed vocabularies, against those)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from mlopsmortem.errors import SearchError
from mlopsmortem.incidents.types import DETECTIONS, DURATION_BANDS, TRIGGERS
from mlopsmortem.search.cards import CARDS_TABLE, has_cards

LINK_STATUSES: tuple[str, ...] = (
    "live",
    "redirected",
    "dead",
    "archived",
    "blocked",
    "refused",
    "error",
)


def _as_tuple(values: str | Iterable[str] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    return tuple(v.strip() for v in values if v is not None and v.strip())


_JSON_ARRAY = "CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END"


DURATION_BAND_IDS: tuple[str, ...] = tuple(band for band, _label, _upper in DURATION_BANDS)


def _canonical(
    kind: str, requested: Sequence[str], valid: Iterable[str], *, ordered: bool = False
) -> list[str]:
    """The requested values as `valid` spells them (any case); SearchError listing the valid
    values (sorted, or in their own order when `ordered`) if one is unknown."""
    by_lower = {v.lower(): v for v in valid if v}
    unknown = [r for r in requested if r.lower() not in by_lower]
    if unknown:
        names = list(by_lower.values()) if ordered else sorted(by_lower.values(), key=str.lower)
        choices = ", ".join(names) or "(none yet)"
        names = ", ".join(repr(u) for u in unknown)
        raise SearchError(f"unknown {kind} {names}; valid values: {choices}")
    return [by_lower[r.lower()] for r in requested]


def story_filter_sql(
    conn: sqlite3.Connection,
    *,
    components: str | Iterable[str] = (),
    impacts: str | Iterable[str] = (),
    since: int | None = None,
    sources: str | Iterable[str] = (),
    link_status: str | Iterable[str] = (),
    triggers: str | Iterable[str] = (),
    detections: str | Iterable[str] = (),
    durations: str | Iterable[str] = (),
) -> tuple[str, list[Any]]:
    """A WHERE condition on `stories s` for live stories passing every filter, with params.

    Every requested component, impact and trigger must be present (AND: a story has several);
    sources, link statuses, detections and duration bands are alternatives (OR: a story has one
    link status, one detection, one duration). Values are matched case-insensitively against
    those in the database (triggers, detections and bands against their fixed vocabularies of
    mlopsmortem.incidents.types); an unknown one raises SearchError listing the valid ones."""
    clauses = ["s.removed_at IS NULL"]
    params: list[Any] = []
    for kind, column, values in (
        ("component", "components", _as_tuple(components)),
        ("impact", "impacts", _as_tuple(impacts)),
    ):
        if not values:
            continue
        array = _JSON_ARRAY.format(col=f"s.{column}")
        found: list[str] = []
        for value in values:  # the first story carrying it ends the scan (no DISTINCT over all)
            row = conn.execute(
                f"SELECT j.value FROM stories s, json_each({array}) j WHERE s.removed_at IS NULL"
                " AND j.type = 'text' AND lower(j.value) = lower(?) LIMIT 1",
                [value],
            ).fetchone()
            if row is None:  # unknown: raise, listing every valid value
                valid = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT DISTINCT j.value FROM stories s, json_each({array}) j"
                        " WHERE s.removed_at IS NULL AND j.type = 'text'"
                    )
                ]
                found = _canonical(kind, values, valid)
                break
            found.append(row[0])
        for value in found:
            clauses.append(f"EXISTS (SELECT 1 FROM json_each({array}) j WHERE j.value = ?)")
            params.append(value)
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, int):
            raise SearchError(f"since must be a year (an integer), not {since!r}")
        clauses.append("s.year >= ?")
        params.append(since)
    names = _as_tuple(sources)
    if names:
        valid = [r[0] for r in conn.execute("SELECT name FROM sources WHERE name IS NOT NULL")]
        wanted = _canonical("source", names, valid)
        clauses.append(
            "EXISTS (SELECT 1 FROM story_sources ss JOIN sources so ON so.id = ss.source_id"
            f" WHERE ss.story_id = s.id AND ss.removed_at IS NULL"
            f" AND so.name IN ({','.join('?' * len(wanted))}))"
        )
        params.extend(wanted)
    statuses = _as_tuple(link_status)
    if statuses:
        in_db = [r[0] for r in conn.execute("SELECT DISTINCT link_status FROM pages")]
        wanted = _canonical("link status", statuses, {*LINK_STATUSES, *filter(None, in_db)})
        clauses.append(
            "EXISTS (SELECT 1 FROM pages pg WHERE pg.story_id = s.id"
            f" AND pg.link_status IN ({','.join('?' * len(wanted))}))"
        )
        params.extend(wanted)
    card_clauses, card_params = _card_filter_sql(conn, triggers, detections, durations)
    clauses.extend(card_clauses)
    params.extend(card_params)
    return " AND ".join(clauses), params


_CARD_TRIGGERS = _JSON_ARRAY.format(col="ic.triggers")
CARD_VOCABULARIES: dict[str, tuple[tuple[str, ...], bool]] = {  # kind: (ids, listed in order)
    "trigger": (tuple(TRIGGERS), False),
    "detection": (tuple(DETECTIONS), True),
    "duration": (DURATION_BAND_IDS, True),
}


def card_filter_values(kind: str, values: str | Iterable[str] | None) -> list[str]:
    """Requested trigger, detection or duration-band ids (kind "trigger", "detection",
    "duration") as their vocabulary spells them; SearchError listing the valid ids if one is
    unknown. Needs no database: the CLI checks its options with it."""
    valid, ordered = CARD_VOCABULARIES[kind]
    return _canonical(kind, _as_tuple(values), valid, ordered=ordered)


def _card_filter_sql(
    conn: sqlite3.Connection,
    triggers: str | Iterable[str],
    detections: str | Iterable[str],
    durations: str | Iterable[str],
) -> tuple[list[str], list[Any]]:
    """The conditions on the story's incident card: each trigger present (AND), one of the
    detections and one of the duration bands (OR). A story without a card passes none."""
    wanted_triggers = card_filter_values("trigger", triggers)
    wanted_detections = card_filter_values("detection", detections)
    wanted_bands = card_filter_values("duration", durations)
    if not (wanted_triggers or wanted_detections or wanted_bands):
        return [], []
    if not has_cards(conn):  # a knowledge base from before the cards: no story has one
        return ["0"], []
    card = f"SELECT 1 FROM {CARDS_TABLE} ic WHERE ic.story_id = s.id"
    clauses: list[str] = []
    params: list[Any] = []
    for trigger in wanted_triggers:
        clauses.append(
            f"EXISTS (SELECT 1 FROM {CARDS_TABLE} ic, json_each({_CARD_TRIGGERS}) j"
            " WHERE ic.story_id = s.id AND j.value = ?)"
        )
        params.append(trigger)
    for column, wanted in (("detection", wanted_detections), ("duration_band", wanted_bands)):
        if wanted:
            clauses.append(f"EXISTS ({card} AND ic.{column} IN ({','.join('?' * len(wanted))}))")
            params.extend(wanted)
    return clauses, params
