"""Search filters: the SQL condition on `stories s` for components, impacts, year, sources and
link status, with the requested values checked against those in the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from mlopsmortem.errors import SearchError

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


def _canonical(kind: str, requested: Sequence[str], valid: Iterable[str]) -> list[str]:
    by_lower = {v.lower(): v for v in valid if v}
    unknown = [r for r in requested if r.lower() not in by_lower]
    if unknown:
        choices = ", ".join(sorted(by_lower.values(), key=str.lower)) or "(none yet)"
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
) -> tuple[str, list[Any]]:
    """A WHERE condition on `stories s` for live stories passing every filter, with params.

    Every requested component and impact must be present (AND); sources and link statuses are
    alternatives (OR: a story has one link status). Values are matched case-insensitively
    against those in the database; an unknown one raises SearchError listing the valid ones."""
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
    return " AND ".join(clauses), params
