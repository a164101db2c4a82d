"""The incident-card fields a hit carries (summary, triggers, detection, duration), read for a
page of results in one query, and the few words the CLI and the pages say them in.

A story without a card (or a knowledge base served from before the cards existed) has the
unknowns: no summary, no triggers, no detection, no duration.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from mlopsmortem.incidents.types import (
    DETECTIONS,
    DURATION_BAND_LABELS,
    TRIGGERS,
    duration_text,
)

CARDS_TABLE = "incident_cards"


@dataclass(frozen=True)
class CardFields:
    """What a hit shows of its story's incident card; unknown is None, or () for triggers."""

    summary: str | None = None
    triggers: tuple[str, ...] = ()
    detection: str | None = None
    duration_minutes: float | None = None


NO_CARD = CardFields()


def has_cards(conn: sqlite3.Connection) -> bool:
    """Whether the knowledge base has the incident_cards table (a served file may predate it)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [CARDS_TABLE]
    ).fetchone()
    return row is not None


def _triggers(raw: object) -> tuple[str, ...]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _minutes(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    minutes = float(raw)
    return minutes if math.isfinite(minutes) and minutes >= 0 else None


def card_fields(conn: sqlite3.Connection, story_ids: Iterable[str]) -> dict[str, CardFields]:
    """The card fields of these stories, in one query; a story without a card is absent."""
    ids = list(dict.fromkeys(story_ids))
    if not ids or not has_cards(conn):
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT story_id, summary, triggers, detection, duration_minutes"
        f" FROM {CARDS_TABLE} WHERE story_id IN ({marks})",
        ids,
    ).fetchall()
    return {
        str(sid): CardFields(
            summary=summary if isinstance(summary, str) and summary.strip() else None,
            triggers=_triggers(triggers),
            detection=detection if isinstance(detection, str) and detection else None,
            duration_minutes=_minutes(minutes),
        )
        for sid, summary, triggers, detection, minutes in rows
    }


# --------------------------------------------------------------------------- in words


def trigger_label(trigger: str) -> str:
    """A trigger id in words, without its examples: "expiry", "resource exhaustion"."""
    return TRIGGERS.get(trigger, trigger).split(" (", 1)[0]


def detection_label(detection: str) -> str:
    """A detection id in words: "found by an alert", "someone inside noticed"."""
    label = DETECTIONS.get(detection, detection)
    return f"found by {label}" if label.startswith(("a ", "an ")) else label


def duration_band_label(band: str) -> str:
    return DURATION_BAND_LABELS.get(band, band)


def card_line(
    triggers: Iterable[str], detection: str | None, duration_minutes: float | None
) -> str | None:
    """One line of what the card knows: "deploy, config change · found by an alert · lasted
    47 min"; None when it knows none of the three."""
    parts = []
    labels = [trigger_label(t) for t in triggers]
    if labels:
        parts.append(", ".join(labels))
    if detection:
        parts.append(detection_label(detection))
    duration = duration_text(duration_minutes)
    if duration:
        parts.append(f"lasted {duration}")
    return " · ".join(parts) or None
