"""Exporting incident cards: every card field, its timeline and its evidence, in Parquet, JSONL
and CSV with plain types, listed in the manifest and the datasheet, and left out by --no-text
where it is prose. The knowledge base is tests/support/export_kb.py with two cards added."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlopsmortem.export.manifest import MANIFEST_NAME
from mlopsmortem.export.run import FORMATS, export_dataset
from mlopsmortem.incidents.store import write_cards
from mlopsmortem.incidents.types import FieldEvidence, IncidentCard, TimelineEntry
from tests.support.export_kb import build_kb

# Prose that exists only in the cards' prose columns: --no-text must leave every one out.
CARD_SUMMARY = "The online store expired keys before the nightly job rewrote them"
ROOT_CAUSE = "A TTL of one hour was shorter than the materialization interval"
RESOLUTION = "We raised the TTL above the job interval and backfilled"
ACTION_ITEMS = ("Alert on feature freshness", "Test TTLs against the schedule")
EVENT = "ranking engineers saw week-old features in the logs"
QUOTE = "customers reported stale recommendations first"
CARD_PROSE = (CARD_SUMMARY, ROOT_CAUSE, RESOLUTION, *ACTION_ITEMS, EVENT, QUOTE)


def add_cards(db, ids: dict[str, str]) -> None:
    """A full card for the feast story (two triggers, detection, times, duration, timeline,
    evidence) and a card of unknowns only for the etcd story; the others have none."""
    feast = IncidentCard(
        story_id=ids["feast"],
        summary=CARD_SUMMARY,
        triggers=("config-change", "bad-data"),
        detection="customer-report",
        started_at="2022-03-04 09:10",
        resolved_at="2022-03-04 11:40",
        duration_minutes=150.0,
        root_cause=ROOT_CAUSE,
        resolution=RESOLUTION,
        action_items=ACTION_ITEMS,
        timeline=(
            TimelineEntry("09:10", "2022-03-04 09:10", EVENT),
            TimelineEntry("late morning", None, "TTL raised"),
        ),
        evidence={
            "detection": FieldEvidence(2, "cue", 0.8, QUOTE),
            "summary": FieldEvidence(None, "list-summary", 0.5, CARD_SUMMARY),
        },
    )
    with db.conn:
        write_cards(db, [(feast, "h1"), (IncidentCard(story_id=ids["etcd"]), "h2")], "test-1")


@pytest.fixture
def kb(db):
    kb = build_kb(db)
    add_cards(db, kb["ids"])
    return kb


def read(out, fmt: str, table: str) -> list[dict]:
    from tests.test_export import read_back

    manifest = json.loads((out / MANIFEST_NAME).read_text())
    entry = next(f for f in manifest["files"] if f["table"] == table)
    return read_back(out / entry["name"], fmt, entry["columns"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_card_field_is_exported_in_every_format(db, kb, settings, tmp_path, fmt):
    out = tmp_path / "out"
    export_dataset(db, settings, fmt, out)
    ids = kb["ids"]
    cards = {r["story_id"]: r for r in read(out, fmt, "incident_cards")}
    assert sorted(cards) == sorted([ids["feast"], ids["etcd"]])  # stories with a card only
    assert cards[ids["feast"]] == {
        "story_id": ids["feast"],
        "summary": CARD_SUMMARY,
        "triggers": ["config-change", "bad-data"],
        "detection": "customer-report",
        "started_at": "2022-03-04 09:10",
        "resolved_at": "2022-03-04 11:40",
        "duration_minutes": 150.0,
        "duration_band": "1-6h",
        "root_cause": ROOT_CAUSE,
        "resolution": RESOLUTION,
        "action_items": list(ACTION_ITEMS),
        "extractor_version": "test-1",
    }
    unknown = cards[ids["etcd"]]
    assert unknown["triggers"] == [] and unknown["action_items"] == []
    assert all(
        unknown[k] is None
        for k in ("summary", "detection", "duration_minutes", "duration_band", "root_cause")
    )
    assert read(out, fmt, "incident_timeline") == [
        {
            "story_id": ids["feast"],
            "seq": 0,
            "time": "09:10",
            "at": "2022-03-04 09:10",
            "event": EVENT,
        },
        {
            "story_id": ids["feast"],
            "seq": 1,
            "time": "late morning",
            "at": None,
            "event": "TTL raised",
        },
    ]
    # evidence: one row per field, in the card's field order
    assert read(out, fmt, "incident_evidence") == [
        {
            "story_id": ids["feast"],
            "field": "summary",
            "passage_id": None,
            "method": "list-summary",
            "confidence": 0.5,
            "quote": CARD_SUMMARY,
        },
        {
            "story_id": ids["feast"],
            "field": "detection",
            "passage_id": 2,
            "method": "cue",
            "confidence": 0.8,
            "quote": QUOTE,
        },
    ]


def test_parquet_types_lists_are_strings_and_numbers_double(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out)
    cards = pq.read_schema(out / "incident_cards.parquet")
    assert cards.field("triggers").type == pa.list_(pa.string())
    assert cards.field("action_items").type == pa.list_(pa.string())
    assert cards.field("duration_minutes").type == pa.float64()
    assert cards.field("detection").type == pa.string()
    assert pq.read_schema(out / "incident_timeline.parquet").field("seq").type == pa.int64()
    evidence = pq.read_schema(out / "incident_evidence.parquet")
    assert evidence.field("confidence").type == pa.float64()
    assert evidence.field("passage_id").type == pa.int64()
    minutes = pq.read_table(out / "incident_cards.parquet").column("duration_minutes")
    assert minutes.null_count == 1 and minutes.to_pylist().count(150.0) == 1  # null, not NaN


def test_manifest_and_datasheet_list_the_card_files_and_counts(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    export_dataset(db, settings, "csv", out)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    files = {f["table"]: f for f in manifest["files"]}
    assert (files["incident_cards"]["rows"], files["incident_timeline"]["rows"]) == (2, 2)
    assert files["incident_evidence"]["rows"] == 2
    columns = {c["name"]: c["type"] for c in files["incident_cards"]["columns"]}
    assert columns["triggers"] == "list<string>" and columns["duration_minutes"] == "float64"
    counts = manifest["counts"]
    assert counts["incident_cards"] == 2
    assert counts["cards_by_trigger"] == {"bad-data": 1, "config-change": 1}
    assert counts["cards_by_detection"] == {"customer-report": 1, "unknown": 1}
    assert counts["cards_by_duration_band"] == {"1-6h": 1, "unknown": 1}
    sheet = (out / "datasheet.md").read_text()
    for expected in (
        "### `incident_cards.csv`",
        "### `incident_timeline.csv`",
        "### `incident_evidence.csv`",
        "| `triggers` | `list<string>` |",
        "| `duration_minutes` | `float64` |",
        "2 stories have an incident card.",
        "| config-change | 1 |",
        "| customer-report | 1 |",
    ):
        assert expected in sheet, expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_text_leaves_out_the_cards_prose_and_keeps_their_ids(db, kb, settings, tmp_path, fmt):
    out = tmp_path / "out"
    export_dataset(db, settings, fmt, out, no_text=True)
    for path in out.iterdir():  # (Parquet is compressed: its columns are checked below)
        raw = path.read_bytes()
        for phrase in CARD_PROSE:
            assert phrase.encode() not in raw, (path.name, phrase)
    ids = kb["ids"]
    feast = next(r for r in read(out, fmt, "incident_cards") if r["story_id"] == ids["feast"])
    assert set(feast) == {
        "story_id",
        "triggers",
        "detection",
        "started_at",
        "resolved_at",
        "duration_minutes",
        "duration_band",
        "extractor_version",
    }
    assert feast["triggers"] == ["config-change", "bad-data"]
    assert feast["duration_minutes"] == 150.0
    assert set(read(out, fmt, "incident_timeline")[0]) == {"story_id", "seq", "time", "at"}
    assert "quote" not in read(out, fmt, "incident_evidence")[0]
