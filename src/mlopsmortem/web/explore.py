"""The explore page's figures: stories per year by component category, impact and trigger;
the component x impact matrix; the median duration per trigger.

`explore_data` runs on one of Datasette's connections (one SELECT over the live stories and
their cards) and counts in Python; `explore_view` turns the counts into the page's charts
(server-side SVG from `mlopsmortem.web.charts`) with the search links of each cell. A story
counts once per category, impact or trigger it has; a component the taxonomy does not know
counts under "other"; stories without a year are left out of the per-year charts only.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlopsmortem.incidents.types import TRIGGERS, duration_text
from mlopsmortem.tagging.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from mlopsmortem.web.charts import duration_bars, matrix_svg, year_bars

OTHER = "other"
MATRIX_COMPONENTS = 20  # the matrix's rows: the components most stories name
MATRIX_IMPACTS = 16


@dataclass
class ExploreData:
    """Counts over the live stories; the trigger and duration figures only with `cards`."""

    stories: int = 0
    with_year: int = 0
    with_card: int = 0
    with_duration: int = 0
    cards: bool = True
    years: list[int] = field(default_factory=list)
    by_category: dict[str, Counter[int]] = field(default_factory=dict)
    by_impact: dict[str, Counter[int]] = field(default_factory=dict)
    by_trigger: dict[str, Counter[int]] = field(default_factory=dict)
    components: Counter[str] = field(default_factory=Counter)
    impacts: Counter[str] = field(default_factory=Counter)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    durations: dict[str, list[float]] = field(default_factory=dict)


@lru_cache(maxsize=4)
def _taxonomy(path: str, mtime_ns: int) -> Taxonomy:
    return load_taxonomy(Path(path))


def taxonomy_at(path: Path) -> Taxonomy | None:
    """The taxonomy file at `path`, loaded once per version of the file; None when it cannot
    be read (the page then counts every component under "other")."""
    try:
        return _taxonomy(str(path), path.stat().st_mtime_ns)
    except (OSError, TaxonomyError):
        return None


def _strings(value: Any) -> list[str]:
    try:
        data = json.loads(value) if value else []
    except (TypeError, json.JSONDecodeError):
        return []
    return list(dict.fromkeys(str(v) for v in data)) if isinstance(data, list) else []


def explore_data(
    conn: sqlite3.Connection, taxonomy: Taxonomy | None, *, cards: bool = True
) -> ExploreData:
    """The counts of every live story. `cards` False: the incident cards are not read (an
    actor who may not view them sees no trigger or duration figure)."""
    categories = {c.name.casefold(): c.category for c in taxonomy.components} if taxonomy else {}
    sql = "SELECT s.year, s.components, s.impacts"
    if cards:
        sql += ", c.story_id, c.triggers, c.duration_minutes FROM stories s"
        sql += " LEFT JOIN incident_cards c ON c.story_id = s.id"
    else:
        sql += ", NULL, NULL, NULL FROM stories s"
    data = ExploreData(cards=cards)
    for year, components_json, impacts_json, card, triggers_json, minutes in conn.execute(
        sql + " WHERE s.removed_at IS NULL"
    ):
        data.stories += 1
        components = _strings(components_json)
        impacts = _strings(impacts_json)
        triggers = _strings(triggers_json)
        data.with_card += card is not None
        data.components.update(components)
        data.impacts.update(impacts)
        data.pairs.update((c, i) for c in components for i in impacts)
        if minutes is not None:
            data.with_duration += 1
            for trigger in triggers:
                data.durations.setdefault(trigger, []).append(float(minutes))
        if not isinstance(year, int):
            continue
        data.with_year += 1
        for category in dict.fromkeys(categories.get(c.casefold(), OTHER) for c in components):
            data.by_category.setdefault(category, Counter())[year] += 1
        for impact in impacts:
            data.by_impact.setdefault(impact, Counter())[year] += 1
        for trigger in triggers:
            data.by_trigger.setdefault(trigger, Counter())[year] += 1
    years = [y for series in data.by_category.values() for y in series]
    years += [y for series in data.by_impact.values() for y in series]
    years += [y for series in data.by_trigger.values() for y in series]
    if years:
        data.years = list(range(min(years), max(years) + 1))
    return data


def _search(search_path: str, **filters: str) -> str:
    return f"{search_path}?{urllib.parse.urlencode(filters)}"


def _panels(
    series: dict[str, Counter[int]],
    order: list[str],
    labels: dict[str, str],
    years: list[int],
    colour: str,
    link: Any,
) -> list[dict[str, Any]]:
    """One small chart per series (in `order`, then the rest by total), on one shared scale."""
    rest = sorted((k for k in series if k not in order), key=lambda k: -sum(series[k].values()))
    keys = [k for k in order if k in series] + rest
    top = max((max(series[k].values()) for k in keys), default=0)
    return [
        {
            "key": key,
            "label": labels.get(key, key),
            "total": sum(series[key].values()),
            "url": link(key),
            "svg": year_bars(series[key], years, top, colour, labels.get(key, key)),
        }
        for key in keys
    ]


def explore_view(data: ExploreData, taxonomy: Taxonomy | None, search_path: str) -> dict[str, Any]:
    """The page's context: panels of small charts per dimension, the matrix and the duration
    chart (SVG markup, safe to insert: every text in it is escaped), and the counts behind."""
    impact_names = {i.id: i.name for i in taxonomy.impacts} if taxonomy else {}
    categories = [*(taxonomy.categories if taxonomy else ()), OTHER]
    view: dict[str, Any] = {
        "stories": data.stories,
        "with_year": data.with_year,
        "with_card": data.with_card,
        "with_duration": data.with_duration,
        "cards": data.cards,
        "first_year": data.years[0] if data.years else None,
        "last_year": data.years[-1] if data.years else None,
    }
    view["categories"] = _panels(
        data.by_category, categories, {}, data.years, "#3b4fb8", lambda key: None
    )
    view["impacts"] = _panels(
        data.by_impact,
        [i.id for i in taxonomy.impacts] if taxonomy else [],
        impact_names,
        data.years,
        "#b8324b",
        lambda key: _search(search_path, impact=key),
    )
    view["triggers"] = _panels(
        data.by_trigger,
        list(TRIGGERS),
        {t: label.split(" (")[0] for t, label in TRIGGERS.items()},
        data.years,
        "#a05a00",
        lambda key: _search(search_path, trigger=key),
    )
    rows = [c for c, _ in sorted(data.components.items(), key=lambda kv: (-kv[1], kv[0].lower()))]
    cols = [i for i, _ in sorted(data.impacts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows, cols = rows[:MATRIX_COMPONENTS], cols[:MATRIX_IMPACTS]
    view["matrix"] = (
        matrix_svg(
            [(r, data.components[r]) for r in rows],
            [(c, impact_names.get(c, c), data.impacts[c]) for c in cols],
            data.pairs,
            lambda r, c: _search(search_path, component=r, impact=c),
        )
        if rows and cols
        else None
    )
    view["matrix_rows"], view["matrix_cols"] = len(rows), len(cols)
    medians = sorted(
        (
            (statistics.median(values), trigger, len(values))
            for trigger, values in data.durations.items()
        ),
        key=lambda m: (-m[0], m[1]),
    )
    view["durations"] = (
        duration_bars(
            [
                (TRIGGERS.get(trigger, trigger), median, n, duration_text(median) or "")
                for median, trigger, n in medians
            ],
            [_search(search_path, trigger=trigger) for _, trigger, _ in medians],
        )
        if medians
        else None
    )
    return view
