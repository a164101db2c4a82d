"""One story as `mlopsmortem show` prints it: what the lists say, its incident card, its tags
grouped per (kind, tag) with the methods that found each, and which lists name it.

Read-only: `show_story` only runs SELECTs, on any connection to a knowledge base (the CLI's
read-only one, Datasette's). `group_tags` and `duration_text` are what the story page shares
with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlopsmortem.errors import NotFoundError
from mlopsmortem.incidents.store import read_card
from mlopsmortem.incidents.types import (
    DETECTIONS,
    DURATION_BAND_LABELS,
    TRIGGERS,
    IncidentCard,
    duration_text,
)


@dataclass(frozen=True)
class TagMethod:
    """One method's word on a tag: its confidence and the evidence it stored (tags.evidence)."""

    method: str
    confidence: float | None
    evidence: str
    original: str | None = None
    passage_id: int | None = None


@dataclass(frozen=True)
class TagRow:
    """A (kind, tag) of a story with every method that found it, most confident first."""

    kind: str
    tag: str
    methods: tuple[TagMethod, ...]

    @property
    def method_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.method for m in self.methods))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tag": self.tag,
            "methods": [
                {"method": m.method, "confidence": m.confidence, "evidence": m.evidence}
                for m in self.methods
            ],
        }


@dataclass(frozen=True)
class Listing:
    """Where a list names the story: the list, its section and line, the entry's own title."""

    source: str
    section: str | None
    line: int | None
    list_title: str | None
    removed_at: str | None


@dataclass(frozen=True)
class StoryReport:
    id: str
    title: str | None
    url: str
    publisher: str | None
    year: int | None
    link_status: str | None
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    card: IncidentCard | None
    tags: tuple[TagRow, ...]
    listings: tuple[Listing, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the story, `card` (its fields, timeline and evidence, or null), `tags`
        (kind, tag, methods) and `sources` (the lists naming it)."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "publisher": self.publisher,
            "year": self.year,
            "link_status": self.link_status,
            "components": list(self.components),
            "impacts": list(self.impacts),
            "card": self.card.as_dict() if self.card else None,
            "tags": [t.as_dict() for t in self.tags],
            "sources": [
                {
                    "source": s.source,
                    "section": s.section,
                    "line": s.line,
                    "list_title": s.list_title,
                    "removed_at": s.removed_at,
                }
                for s in self.listings
            ],
        }

    def text_lines(self) -> list[str]:
        """The report for people: unknown card fields are left out, not printed as unknown."""
        lines = [self.title or self.url, self.url]
        facts = [f"id {self.id}", self.publisher, str(self.year) if self.year else None]
        facts.append(f"link {self.link_status or 'not fetched yet'}")
        lines.append(" · ".join(f for f in facts if f))
        lines.append("")
        lines.extend(card_lines(self.card) if self.card else ["No incident card yet."])
        if self.tags:
            lines += ["", "Tags:"]
            width = max(len(t.tag) for t in self.tags)
            for t in self.tags:
                lines.append(f"  {t.kind:<9}  {t.tag:<{width}}  {', '.join(t.method_names)}")
        if self.listings:
            lines += ["", "Listed in:"]
            for s in self.listings:
                where = ", ".join(
                    p
                    for p in (
                        f"section {s.section}" if s.section else None,
                        f"line {s.line}" if s.line else None,
                        f"removed {s.removed_at}" if s.removed_at else None,
                    )
                    if p
                )
                lines.append(f"  {s.source}" + (f" ({where})" if where else ""))
        return lines


def card_lines(card: IncidentCard) -> list[str]:
    """The known fields of a card as "Field: value" lines, in the order a reader meets them."""
    lines = []
    if card.summary:
        lines.append(f"Summary: {card.summary}")
    if card.triggers:
        lines.append("Triggers: " + ", ".join(TRIGGERS.get(t, t) for t in card.triggers))
    if card.detection:
        lines.append(f"Detected by: {DETECTIONS.get(card.detection, card.detection)}")
    if card.duration_minutes is not None:
        band = DURATION_BAND_LABELS.get(card.duration_band or "", "")
        lines.append(f"Duration: {duration_text(card.duration_minutes)} ({band})")
    if card.started_at:
        lines.append(f"Started: {card.started_at}")
    if card.resolved_at:
        lines.append(f"Resolved: {card.resolved_at}")
    if card.root_cause:
        lines.append(f"Root cause: {card.root_cause}")
    if card.resolution:
        lines.append(f"Resolution: {card.resolution}")
    if card.action_items:
        lines.append("Action items:")
        lines.extend(f"  - {item}" for item in card.action_items)
    if card.timeline:
        lines.append("Timeline:")
        width = max(len(e.time) for e in card.timeline)
        lines.extend(f"  {e.time:<{width}}  {e.event}" for e in card.timeline)
    return lines or ["The incident card states nothing the text did not say: every field unknown."]


def group_tags(rows: Iterable[Mapping[str, Any]]) -> list[TagRow]:
    """Tag rows (kind, tag, method, confidence, evidence[, original, passage_id]) as one row
    per (kind, tag), in the order first met, each with its methods most confident first."""
    grouped: dict[tuple[str, str], list[TagMethod]] = {}
    for row in rows:
        confidence = row.get("confidence")
        grouped.setdefault((str(row["kind"]), str(row["tag"])), []).append(
            TagMethod(
                str(row["method"]),
                float(confidence) if confidence is not None else None,
                str(row.get("evidence") or ""),
                row.get("original"),
                row.get("passage_id"),
            )
        )
    return [
        TagRow(kind, tag, tuple(sorted(methods, key=lambda m: -(m.confidence or 0.0))))
        for (kind, tag), methods in grouped.items()
    ]


def _strings(value: Any) -> tuple[str, ...]:
    try:
        data = json.loads(value) if value else []
    except (TypeError, json.JSONDecodeError):
        return ()
    return tuple(str(v) for v in data) if isinstance(data, list) else ()


def show_story(conn: sqlite3.Connection, story_id: str) -> StoryReport:
    """The story with id `story_id`; NotFoundError when there is none."""
    row = conn.execute(
        "SELECT s.id, s.title, s.url, s.publisher, s.year, pg.link_status, s.components,"
        " s.impacts FROM stories s LEFT JOIN pages pg ON pg.story_id = s.id WHERE s.id = ?",
        [story_id],
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no story with id {story_id!r}")
    names = ("kind", "tag", "method", "confidence", "evidence", "original", "passage_id")
    tags = group_tags(
        dict(zip(names, r, strict=True))
        for r in conn.execute(
            f"SELECT {', '.join(names)} FROM tags WHERE story_id = ?"
            " ORDER BY kind, confidence DESC, tag",
            [story_id],
        )
    )
    listings = tuple(
        Listing(*r)
        for r in conn.execute(
            "SELECT coalesce(so.name, so.location), ss.section, ss.line, ss.list_title,"
            " ss.removed_at FROM story_sources ss JOIN sources so ON so.id = ss.source_id"
            " WHERE ss.story_id = ? ORDER BY so.name, ss.occurrence",
            [story_id],
        )
    )
    return StoryReport(
        id=row[0],
        title=row[1],
        url=row[2],
        publisher=row[3],
        year=row[4],
        link_status=row[5],
        components=_strings(row[6]),
        impacts=_strings(row[7]),
        card=read_card(conn, story_id),
        tags=tuple(tags),
        listings=listings,
    )
