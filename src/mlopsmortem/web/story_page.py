"""What a story's page shows above Datasette's row: the story's facts, its incident card and
its tags, one row per (kind, tag) with each method's evidence said in a sentence.

`story_extras` runs on one of Datasette's connections (plain SELECTs); the rest is pure and
returns plain dicts for `templates/row.html`. Unknown card fields are left out of the view
(None or empty), never shown as "unknown"; a story without a card gets `card` None.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from mlopsmortem.incidents.show import TagMethod, group_tags
from mlopsmortem.incidents.store import read_card
from mlopsmortem.incidents.types import (
    DETECTIONS,
    DURATION_BAND_LABELS,
    TRIGGERS,
    IncidentCard,
    duration_text,
)

# How each card field is named on the page, in the order the evidence list shows them.
FIELD_LABELS = {
    "summary": "Summary",
    "triggers": "What set it off",
    "detection": "How it was found",
    "started_at": "Started",
    "resolved_at": "Resolved",
    "duration_minutes": "Duration",
    "root_cause": "Root cause",
    "resolution": "Resolution",
    "action_items": "Action items",
    "timeline": "Timeline",
}

# What the taggers store in tags.evidence (tagging/listtags.py, rules.py, semantic.py).
_LIST = re.compile(r"^(?:involved|impact): (?P<item>.+)$", re.S)
_TITLE = re.compile(r"^title: (?P<quote>.+)$", re.S)
_MENTIONS = re.compile(r"^(?P<n>\d+) mentions?; first: (?P<quote>.+)$", re.S)
_STATEMENT = re.compile(r"^statement: (?P<quote>.+)$", re.S)
_SECTION = re.compile(r"^impact section: (?P<quote>.+)$", re.S)
_FALLBACK = "fallback, the best-scored impact of a story without one: "
_SEMANTIC = re.compile(r"^score -?[\d.]+ >= -?[\d.]+ \([^)]*\): (?P<quote>.*)$", re.S)
QUOTE_CHARS = 220
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def confidence_word(confidence: float | None) -> str:
    """high (>= 0.8), medium (>= 0.5) or low."""
    if confidence is None:
        return "unknown"
    return "high" if confidence >= 0.8 else "medium" if confidence >= 0.5 else "low"


def _quote(text: str) -> str:
    """A quote from a tagger's snippet: one line, at most QUOTE_CHARS characters; a snippet
    cut inside a word (the taggers mark a cut with …) loses that part-word."""
    flat = " ".join(text.split())
    head = flat.startswith("…")
    tail = flat.endswith("…") or len(flat) > QUOTE_CHARS
    flat = flat.strip("…").strip()
    if head and " " in flat:
        flat = flat.split(" ", 1)[1]
    if tail and " " in flat:
        flat = flat[:QUOTE_CHARS].rsplit(" ", 1)[0]
    return f"“{'…' if head else ''}{flat}{'…' if tail else ''}”"


def evidence_sentence(kind: str, tag_name: str, method: TagMethod) -> str:
    """One method's evidence for a tag as a sentence ("Named 4 times in the text, e.g. “…”").
    Evidence in a shape the taggers do not write is shown as it is."""
    text = method.evidence.strip()
    if method.method == "list":
        match = _LIST.match(text)
        item = method.original or (match.group("item") if match else text)
        return f"The list says so: “{item}”." if item else "The list says so."
    if method.method == "rule":
        if match := _TITLE.match(text):
            return f"The title names it: {_quote(match.group('quote'))}."
        if match := _MENTIONS.match(text):
            n = int(match.group("n"))
            times = "once" if n == 1 else "twice" if n == 2 else f"{n} times"
            return f"Named {times} in the text, e.g. {_quote(match.group('quote'))}."
        if match := _STATEMENT.match(text):
            return f"The text says it happened: {_quote(match.group('quote'))}."
        if match := _SECTION.match(text):
            return f"Named where the text describes the impact: {_quote(match.group('quote'))}."
    if method.method == "semantic":
        fallback = text.startswith(_FALLBACK)
        match = _SEMANTIC.match(text.removeprefix(_FALLBACK))
        quote = f": {_quote(match.group('quote'))}" if match and match.group("quote") else ""
        what = f"{kind} “{tag_name}”"
        if fallback:
            return (
                f"No method found an impact; the text is closest in meaning to {what} "
                f"(confidence {confidence_word(method.confidence)}){quote}."
            )
        return (
            f"The text is close in meaning to {what} "
            f"(confidence {confidence_word(method.confidence)}){quote}."
        )
    return text


def tag_rows(
    tags: Iterable[Mapping[str, Any]],
    search_url: str,
    impact_names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The story's tag rows (as story_details reads them) grouped to one per (kind, tag):
    its search link, its methods with their confidences, and one evidence sentence each."""
    names = impact_names or {}
    rows = []
    for row in group_tags(tags):
        label = names.get(row.tag, row.tag) if row.kind == "impact" else row.tag
        rows.append(
            {
                "kind": row.kind,
                "tag": row.tag,
                "url": f"{search_url}?{urllib.parse.urlencode({row.kind: row.tag})}",
                "methods": [{"method": m.method, "confidence": m.confidence} for m in row.methods],
                "evidence": [evidence_sentence(row.kind, label, m) for m in row.methods],
            }
        )
    return rows


def _strings(value: Any) -> list[str]:
    try:
        data = json.loads(value) if value else []
    except (TypeError, json.JSONDecodeError):
        return []
    return [str(v) for v in data] if isinstance(data, list) else []


def story_extras(conn: sqlite3.Connection, story_id: str) -> dict[str, Any]:
    """The story's publisher, year, kind, components and impacts, and its card (or None)."""
    row = conn.execute(
        "SELECT publisher, year, kind, components, impacts FROM stories WHERE id = ?",
        [story_id],
    ).fetchone()
    if row is None:
        return {"card": None}
    return {
        "publisher": row[0],
        "year": row[1],
        "kind": row[2],
        "components": _strings(row[3]),
        "impacts": _strings(row[4]),
        "card": read_card(conn, story_id),
    }


def _field_label(name: str) -> str:
    """An evidence key as the page names it: a card field, or "trigger:ID" for one trigger."""
    kind, _, value = name.partition(":")
    if kind == "trigger" and value:
        return f"{FIELD_LABELS['triggers']}: {TRIGGERS.get(value, value).split(' (')[0]}"
    return FIELD_LABELS.get(name, name)


def _field_order(name: str) -> tuple[int, str]:
    field = "triggers" if name.startswith("trigger:") else name
    order = list(FIELD_LABELS)
    return (order.index(field) if field in order else len(order), name)


def card_view(card: IncidentCard, search_url: str, *, with_timeline: bool = True) -> dict[str, Any]:
    """The card as the template shows it: only its known fields, triggers and detection with
    their labels and search links, the duration in words, the evidence per field."""
    view: dict[str, Any] = {
        "summary": card.summary,
        "triggers": [
            {
                "id": t,
                "label": TRIGGERS.get(t, t),
                "short": TRIGGERS.get(t, t).split(" (")[0],
                "url": f"{search_url}?{urllib.parse.urlencode({'trigger': t})}",
            }
            for t in card.triggers
        ],
        "detection": None,
        "duration": duration_text(card.duration_minutes),
        "duration_band": DURATION_BAND_LABELS.get(card.duration_band or ""),
        "started_at": card.started_at,
        "resolved_at": card.resolved_at,
        # the incident's date, when the start is dated (it may be a time of day alone)
        "date": card.started_at[:10] if _DATE.match(card.started_at or "") else None,
        "root_cause": card.root_cause,
        "resolution": card.resolution,
        "action_items": list(card.action_items),
        "timeline": list(card.timeline) if with_timeline else [],
    }
    if card.detection:
        view["detection"] = {
            "id": card.detection,
            "label": DETECTIONS.get(card.detection, card.detection),
            "url": f"{search_url}?{urllib.parse.urlencode({'detection': card.detection})}",
        }
    view["evidence"] = [
        {
            "field": _field_label(name),
            "method": ev.method,
            "confidence": confidence_word(ev.confidence),
            "quote": ev.quote,
        }
        for name, ev in sorted(card.evidence.items(), key=lambda item: _field_order(item[0]))
        if ev.quote
    ]
    view["facts"] = bool(
        card.triggers
        or card.detection
        or card.duration_minutes is not None
        or card.started_at
        or card.resolved_at
    )
    view["empty"] = not (
        view["facts"]
        or card.summary
        or card.root_cause
        or card.resolution
        or card.action_items
        or view["timeline"]
    )
    return view
