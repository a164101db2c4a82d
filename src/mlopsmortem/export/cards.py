"""The incident cards as exported files: one card per story, its timeline, and the evidence of
each field, in the plain types of `export.tables` (lists as list<string>, numbers as float64).

Three files rather than more columns of `stories`: a card exists only for stories with text or
a list summary, its `summary` is the text's and not the list's (`stories.summary`), and the
timeline and the evidence have one row per line and per field. All three join on `story_id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlite_utils

from mlopsmortem.export.tables import STRINGS, Column, Table
from mlopsmortem.incidents.types import DETECTIONS, DURATION_BANDS, TRIGGERS

_BANDS = ", ".join(band for band, _label, _upper in DURATION_BANDS)

CARD_COLUMNS = (
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column(
        "summary",
        pa.string(),
        "Two or three sentences from the text saying what happened (a Summary or TL;DR "
        "section, the lead, or the list's summary); null: none found.",
        True,
    ),
    Column(
        "triggers",
        STRINGS,
        f"What set it off, ids of a fixed vocabulary ({', '.join(TRIGGERS)}); [] when unknown.",
    ),
    Column(
        "detection",
        pa.string(),
        f"How it was first noticed: {', '.join(DETECTIONS)}; null when the text does not say.",
    ),
    Column(
        "started_at",
        pa.string(),
        "When it started, as the text gives it: YYYY-MM-DD[ HH:MM] in the text's own time zone.",
    ),
    Column("resolved_at", pa.string(), "When it was resolved, as the text gives it."),
    Column(
        "duration_minutes",
        pa.float64(),
        "How long it lasted, in minutes, when the text or its timeline states it.",
    ),
    Column("duration_band", pa.string(), f"The duration as a band: {_BANDS}; null: unknown."),
    Column("root_cause", pa.string(), "The sentences of the text stating the root cause.", True),
    Column("resolution", pa.string(), "The sentences of the text stating the fix.", True),
    Column("action_items", STRINGS, "The follow-up actions the text lists.", True),
    Column("extractor_version", pa.string(), "Version of the extractor that made the card."),
)

TIMELINE_COLUMNS = (
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("seq", pa.int64(), "Position in the story's timeline (0-based)."),
    Column("time", pa.string(), "The time as the text writes it."),
    Column(
        "at",
        pa.string(),
        "The time read as YYYY-MM-DD HH:MM (HH:MM without a date); null: unreadable.",
    ),
    Column("event", pa.string(), "What happened at that time (the text's words).", True),
)

EVIDENCE_COLUMNS = (
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("field", pa.string(), "The card field (incident_cards column) it supports."),
    Column(
        "passage_id",
        pa.int64(),
        "Passage the field was found in (passages.id); null: the list's summary.",
    ),
    Column("method", pa.string(), "How the extractor found it."),
    Column("confidence", pa.float64(), "How sure the extractor is, 0 to 1."),
    Column("quote", pa.string(), "The words it read (a quote from the page).", True),
)


def _card_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    yield from db.query("SELECT * FROM incident_cards ORDER BY story_id")


def _timeline_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    yield from db.query("SELECT * FROM incident_timeline ORDER BY story_id, seq")


def _evidence_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    """One row per card field with evidence, fields in card order (then by name). Evidence
    that is not a JSON object of objects (a hand edit) is skipped, not fatal."""
    order = {column.name: i for i, column in enumerate(CARD_COLUMNS)}
    for row in db.query("SELECT story_id, evidence FROM incident_cards ORDER BY story_id"):
        try:
            evidence = json.loads(row["evidence"] or "{}")
        except (TypeError, ValueError):
            continue
        if not isinstance(evidence, dict):
            continue
        for field in sorted(evidence, key=lambda f: (order.get(f, len(order)), f)):
            item = evidence[field]
            if isinstance(item, dict):
                yield {"story_id": row["story_id"], "field": field, **item}


CARD_TABLES = (
    Table(
        "incident_cards",
        "One incident card per story with text or a list summary: what happened, what set it "
        "off, how it was found, how long it lasted and how it was fixed, from the story's own "
        "text (unknown stays null or []).",
        CARD_COLUMNS,
        _card_rows,
    ),
    Table(
        "incident_timeline",
        "The timestamped lines of each story's timeline, in the text's order.",
        TIMELINE_COLUMNS,
        _timeline_rows,
    ),
    Table(
        "incident_evidence",
        "Where each card field came from: passage, method, confidence and the words read.",
        EVIDENCE_COLUMNS,
        _evidence_rows,
    ),
)
