"""Incident cards: sections, timelines, stated durations, cues, and the incremental stage.

The postmortem texts here are written for the tests (invented services, invented times)."""

from __future__ import annotations

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.incidents.durations import stated_durations
from mlopsmortem.incidents.extract import PassageSpan, build_card
from mlopsmortem.incidents.run import build_cards
from mlopsmortem.incidents.sections import split_sections
from mlopsmortem.incidents.store import read_card
from mlopsmortem.incidents.timeline import read_timeline, timeline_span
from mlopsmortem.incidents.types import TRIGGERS, duration_band

POSTMORTEM = """Ledger API outage of 12 March 2024

Summary

On 12 March 2024 the ledger API returned errors to every client for most of an afternoon. \
The TLS certificate of the internal gateway had expired, and every call between services \
failed its handshake. Payments queued and were replayed once the gateway was fixed.

Timeline

All times in UTC

| Time | Event |
|---|---|
| 2024-03-12 13:05 | Gateway certificate expires; handshakes start failing |
| 2024-03-12 13:09 | PagerDuty alert fired for the payment error rate |
| 2024-03-12 14:20 | New certificate issued and rolled to the gateway |
| 2024-03-12 14:41 | Error rate back to normal, incident resolved |

Root cause

The gateway certificate was issued by hand two years ago and nobody renewed it. Its expiry \
date was not monitored.

Resolution

We issued a new certificate from the internal CA and restarted the gateway pods.

Action items

- Issue gateway certificates from cert-manager with automatic renewal
- Alert 30 days before any certificate expires
- Add a handshake check to the synthetic probes
"""


def test_sections_are_found_by_heading_shape_and_name() -> None:
    kinds = [(s.kind, s.heading) for s in split_sections(POSTMORTEM)]
    assert kinds == [
        ("summary", "Summary"),
        ("timeline", "Timeline"),
        ("timeline", "All times in UTC"),  # a sub-heading stays in the section it divides
        ("root_cause", "Root cause"),
        ("resolution", "Resolution"),
        ("action_items", "Action items"),
    ]


def test_a_table_timeline_gives_its_rows_and_the_span_to_the_line_that_ends_it() -> None:
    lines = read_timeline(POSTMORTEM, split_sections(POSTMORTEM))
    assert [line.entry.at for line in lines] == [
        "2024-03-12 13:05",
        "2024-03-12 13:09",
        "2024-03-12 14:20",
        "2024-03-12 14:41",
    ]
    assert lines[1].entry.event == "PagerDuty alert fired for the payment error rate"
    span = timeline_span(lines)
    assert span is not None and span.minutes == 96


def test_stamps_alone_on_their_line_take_the_next_lines_and_roll_past_midnight() -> None:
    text = (
        "Night outage\n\nTimeline\n\n2023-06-01 23:40\n\nDisk on the primary fills up.\n\n"
        "23:58\n\nFailover attempted.\n\n00:25\n\nReplica promoted.\nService restored.\n"
    )
    lines = read_timeline(text, split_sections(text))
    assert [line.entry.at for line in lines] == [
        "2023-06-01 23:40",
        "2023-06-01 23:58",
        "2023-06-02 00:25",
    ]
    assert lines[2].entry.event == "Replica promoted. Service restored."
    assert timeline_span(lines).minutes == 45


@pytest.mark.parametrize(
    ("sentence", "minutes"),
    [
        ("The outage lasted 1 hour and 48 minutes for all users.", 108),
        ("Checkout was down for about 3 hours, from 15:30 to 18:10 UTC.", 160),
        ("2021-04-03, 30min outage during the node pool upgrade", 30),
        ("- Time to recovery: 84 minutes", 84),
        ("Ingestion was degraded from May 3, 10:00 PM UTC to May 4, 1:30 AM UTC.", 210),
        ("Search results were stale for approximately 2 weeks.", 20160),
        ("- Duration: 8+ days (Jan 8-15)", 11520),
    ],
)
def test_stated_durations_are_read(sentence: str, minutes: float) -> None:
    found = stated_durations(sentence, year=2024)
    assert found and min(found, key=lambda d: (not d.exact, d.start)).minutes == minutes


@pytest.mark.parametrize(
    "sentence",
    [
        "We lowered the connection timeout to 300 ms and retry every 5 minutes after an outage.",
        "Investigation Time: ~6 hours, the outage is understood now.",
        "This incident happened once previously and lasted 24 hours.",
        "Warning BackOff 7m (x163 over 42m) kubelet restarting failed container",
        "The cache keeps 4 hours of data on local disk.",
    ],
)
def test_other_durations_are_not_the_incidents(sentence: str) -> None:
    assert stated_durations(sentence) == []


def test_a_postmortem_gives_a_full_card_with_evidence_passages() -> None:
    cut = POSTMORTEM.index("Root cause")
    passages = [PassageSpan(7, 0, cut), PassageSpan(8, cut, len(POSTMORTEM))]
    card = build_card("s1", "Ledger API outage", POSTMORTEM, "", passages)
    assert card is not None
    assert card.summary.startswith("On 12 March 2024 the ledger API returned errors")
    assert card.summary.count(". ") == 2  # three sentences of the Summary section
    assert card.triggers == ("expiry",)
    assert card.detection == "alert"
    assert card.duration_minutes == 96
    assert (card.started_at, card.resolved_at) == ("2024-03-12 13:05", "2024-03-12 14:41")
    assert card.root_cause.startswith("The gateway certificate was issued by hand")
    assert card.resolution.startswith("We issued a new certificate")
    assert (
        card.action_items[0]
        == "Issue gateway certificates from cert-manager with automatic renewal"
    )
    assert len(card.action_items) == 3 and len(card.timeline) == 4
    assert card.evidence["summary"].passage_id == 7
    assert card.evidence["root_cause"].passage_id == 8
    assert card.evidence["detection"].method == "word cues in timeline"
    assert "PagerDuty" in card.evidence["detection"].quote
    assert card.duration_band == "1-6h"


def test_a_text_that_states_nothing_gets_unknowns_not_guesses() -> None:
    text = (
        "Notes from our platform team\n\nWe moved offices this spring and the new kitchen is "
        "lovely. The team grew by two people and we now have a weekly demo on Fridays.\n"
    )
    card = build_card("s2", "Notes", text)
    assert card.summary.startswith("We moved offices this spring")
    assert card.triggers == ()
    assert card.detection is None
    assert card.duration_minutes is None and card.duration_band is None
    assert card.root_cause is None and card.resolution is None
    assert card.action_items == () and card.timeline == ()


def test_a_summary_of_background_only_reaches_what_went_wrong() -> None:
    text = (
        "Ingest stall\n\nSummary\n\nOn Monday we moved the ingest workers to a new node pool. "
        "The pool uses larger machines with local disks. We planned the move for a month. "
        "During the afternoon the workers stopped consuming from the queue for two hours. "
        "We rolled back.\n"
    )
    card = build_card("s6", "Ingest stall", text)
    assert card.summary == (
        "On Monday we moved the ingest workers to a new node pool. During the afternoon the "
        "workers stopped consuming from the queue for two hours."
    )
    header = "Report\n\nInvestigation Date: 2026-01-16 Status: complete Severity: P0\n\n"
    card = build_card("s7", "Report", header + "The scorer degraded for a week.\n")
    assert card.summary == "The scorer degraded for a week."


def test_negated_and_planned_cues_do_not_count() -> None:
    text = (
        "Queue stall\n\nSummary\n\nThe worker queue stalled after a deploy of the scheduler "
        "caused a deadlock. No alert fired; a customer reported the stall on the forum.\n\n"
        "Action items\n\n- Add an alert when the queue stops moving\n"
    )
    card = build_card("s3", "Queue stall", text)
    assert "deploy" in card.triggers
    assert card.detection == "customer-report"


def test_a_story_without_text_gets_a_card_from_its_list_summary() -> None:
    card = build_card("s4", "Acme", "", "A certificate expired and took down the API for 2 hours.")
    assert card.triggers == ("expiry",)
    assert card.duration_minutes == 120
    assert card.evidence["summary"].passage_id is None
    assert card.evidence["summary"].method.startswith("list-summary")
    assert build_card("s5", "Acme", "", "") is None


def test_every_trigger_id_has_cues_and_bands_cover_every_duration() -> None:
    from mlopsmortem.incidents.cues import TRIGGER_CUES

    assert set(TRIGGER_CUES) == set(TRIGGERS)
    assert [duration_band(m) for m in (5, 60, 359, 360, 1439, 1440, 99999)] == [
        "under-1h",
        "1-6h",
        "1-6h",
        "6-24h",
        "6-24h",
        "over-24h",
        "over-24h",
    ]


def test_cards_are_derived_incrementally(kb_copy) -> None:
    path, _ = kb_copy
    db = open_db(path)
    first = build_cards(db)
    assert first.built == first.stories > 0
    again = build_cards(db)
    assert again.built == 0 and again.unchanged == first.stories
    story = db.execute(
        "SELECT story_id FROM documents WHERE text <> '' ORDER BY story_id LIMIT 1"
    ).fetchone()[0]
    with db.conn:
        db.execute(
            "UPDATE documents SET text = ?, text_hash = 'changed' WHERE story_id = ?",
            [POSTMORTEM, story],
        )
    changed = build_cards(db)
    assert changed.built == 1
    assert read_card(db.conn, story).triggers == ("expiry",)
    with db.conn:
        db.execute("UPDATE stories SET removed_at = '2024-01-01' WHERE id = ?", [story])
    removed = build_cards(db)
    assert removed.removed == 1 and read_card(db.conn, story) is None
    assert build_cards(db, rebuild=True).built == removed.stories
    db.close()
