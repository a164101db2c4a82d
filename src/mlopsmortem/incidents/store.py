"""Reading and writing incident cards (tables incident_cards and incident_timeline)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import sqlite_utils

from mlopsmortem.incidents.types import FieldEvidence, IncidentCard, TimelineEntry

CARD_COLUMNS = (
    "story_id, summary, triggers, detection, started_at, resolved_at, duration_minutes,"
    " root_cause, resolution, action_items, evidence"
)
_BATCH = 500


def _card(row: Sequence[object], timeline: tuple[TimelineEntry, ...]) -> IncidentCard:
    (sid, summary, triggers, detection, started, resolved, minutes, cause, fix, items, ev) = row
    evidence = {
        name: FieldEvidence(
            item.get("passage_id"), item["method"], float(item["confidence"]), item["quote"]
        )
        for name, item in json.loads(str(ev or "{}")).items()
    }
    return IncidentCard(
        story_id=str(sid),
        summary=summary,  # type: ignore[arg-type]
        triggers=tuple(json.loads(str(triggers or "[]"))),
        detection=detection,  # type: ignore[arg-type]
        started_at=started,  # type: ignore[arg-type]
        resolved_at=resolved,  # type: ignore[arg-type]
        duration_minutes=float(minutes) if minutes is not None else None,  # type: ignore[arg-type]
        root_cause=cause,  # type: ignore[arg-type]
        resolution=fix,  # type: ignore[arg-type]
        action_items=tuple(json.loads(str(items or "[]"))),
        timeline=timeline,
        evidence=evidence,
    )


def read_cards(conn: sqlite3.Connection, story_ids: Iterable[str]) -> dict[str, IncidentCard]:
    """The cards of these stories (a story without one is absent), timelines included."""
    ids = list(dict.fromkeys(story_ids))
    cards: dict[str, IncidentCard] = {}
    for offset in range(0, len(ids), _BATCH):
        part = ids[offset : offset + _BATCH]
        marks = ",".join("?" * len(part))
        timelines: dict[str, list[TimelineEntry]] = {}
        for sid, time, at, event in conn.execute(
            f"SELECT story_id, time, at, event FROM incident_timeline"
            f" WHERE story_id IN ({marks}) ORDER BY story_id, seq",
            part,
        ):
            timelines.setdefault(sid, []).append(TimelineEntry(time, at, event))
        for row in conn.execute(
            f"SELECT {CARD_COLUMNS} FROM incident_cards WHERE story_id IN ({marks})", part
        ):
            cards[row[0]] = _card(row, tuple(timelines.get(row[0], ())))
    return cards


def read_card(conn: sqlite3.Connection, story_id: str) -> IncidentCard | None:
    """One story's card, or None when it has none."""
    return read_cards(conn, [story_id]).get(story_id)


def stored_input_hashes(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """story id -> (input hash, extractor version) of every stored card."""
    return {
        sid: (digest or "", version or "")
        for sid, digest, version in conn.execute(
            "SELECT story_id, input_hash, extractor_version FROM incident_cards"
        )
    }


def write_cards(
    db: sqlite_utils.Database,
    cards: Sequence[tuple[IncidentCard, str]],
    version: str,
) -> None:
    """Replace these stories' cards and timelines (card, input hash), in the caller's
    transaction."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for card, input_hash in cards:
        db.execute("DELETE FROM incident_timeline WHERE story_id = ?", [card.story_id])
        db.execute(
            "INSERT OR REPLACE INTO incident_cards (story_id, summary, triggers, detection,"
            " started_at, resolved_at, duration_minutes, duration_band, root_cause, resolution,"
            " action_items, evidence, input_hash, extractor_version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                card.story_id,
                card.summary,
                json.dumps(list(card.triggers)),
                card.detection,
                card.started_at,
                card.resolved_at,
                card.duration_minutes,
                card.duration_band,
                card.root_cause,
                card.resolution,
                json.dumps(list(card.action_items)),
                json.dumps({k: v.as_dict() for k, v in card.evidence.items()}),
                input_hash,
                version,
                now,
            ],
        )
        db.conn.executemany(
            "INSERT INTO incident_timeline (story_id, seq, time, at, event) VALUES (?, ?, ?, ?, ?)",
            [(card.story_id, i, e.time, e.at, e.event) for i, e in enumerate(card.timeline)],
        )


def delete_cards(db: sqlite_utils.Database, story_ids: Iterable[str]) -> None:
    """Drop the cards of stories that no longer have text or a list summary."""
    for sid in story_ids:
        db.execute("DELETE FROM incident_timeline WHERE story_id = ?", [sid])
        db.execute("DELETE FROM incident_cards WHERE story_id = ?", [sid])
