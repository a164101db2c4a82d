"""Incident cards for the invented test knowledge base (tests/support/knowledge_base.py), written
with the store as the card stage would, into a copy of a built knowledge base.

Not a conftest: `with_cards(source, target)` copies the knowledge base at `source` to `target`
(SQLite's backup, embeddings included) and writes CARDS into the copy.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlopsmortem.db import open_db
from mlopsmortem.incidents.store import write_cards
from mlopsmortem.incidents.types import FieldEvidence, IncidentCard, TimelineEntry

FLUENTBIT = IncidentCard(
    story_id="fluentbit",
    summary="Paused tail input plus log rotation lost hours of application logs.",
    triggers=("dependency-failure", "resource-exhaustion"),
    detection="customer-report",
    started_at="2022-03-14 14:02",
    resolved_at="2022-03-14 15:50",
    duration_minutes=108,
    root_cause="The mem_buf_limit was reached within minutes and the tail input paused.",
    resolution="We now use filesystem buffering (storage.type filesystem).",
    action_items=("Alert on the fluentbit_input_paused metric.", "Keep rotated files longer."),
    timeline=(
        TimelineEntry("14:02", "14:02", "Elasticsearch cluster goes red"),
        TimelineEntry("14:09", "14:09", "tail input paused on every node"),
        TimelineEntry("15:50", "15:50", "Fluent Bit resumed from the newest files"),
    ),
    evidence={
        "summary": FieldEvidence(None, "list summary", 0.9, "Paused tail input plus log rotation"),
        "duration_minutes": FieldEvidence(1, "timeline", 0.6, "14:02 … 15:50"),
    },
)

CARDS: tuple[IncidentCard, ...] = (
    FLUENTBIT,
    IncidentCard(
        story_id="logstash",
        summary="Logstash consumers fell behind and Kafka retention deleted unread log events.",
        triggers=("latent-bug",),
        detection="internal-report",
        duration_minutes=7 * 24 * 60,
        resolution="We replaced the regex with a dissect filter and raised retention.",
    ),
    IncidentCard(
        story_id="certexpiry",
        summary="An intermediate certificate of the internal CA expired at midnight.",
        triggers=("expiry",),
        detection="alert",
        duration_minutes=360,
        resolution="cert-manager now renews certificates automatically.",
    ),
    IncidentCard(
        story_id="letsencrypt",
        triggers=("expiry",),
        duration_minutes=47,
        resolution="We served the short chain and updated client libraries.",
    ),
    IncidentCard(story_id="terraform", triggers=("human-error", "config-change")),
    IncidentCard(story_id="gpuoom", triggers=("upgrade-or-migration",), duration_minutes=30),
    # a card whose text states nothing: every field unknown
    IncidentCard(story_id="nccl"),
)


# More tags of fluentbit, as the three taggers write them, beside the plugin knowledge base's
# (component logging by rule, impact data-loss by list): two tags found by two methods each.
TAGS = (
    ("component", "logging", "list", 1.0, "involved: Fluent Bit", "Fluent Bit"),
    ("component", "kubernetes", "rule", 0.7, "2 mentions; first: …s rotated the log files", None),
    (
        "impact",
        "data-loss",
        "semantic",
        0.97,
        "score 1.38 >= -0.45 (z 2.25, alias mentions 1): several hours of application logs were "
        "gone for good",
        None,
    ),
)


def with_cards(source: Path, target: Path) -> Path:
    """A copy of the knowledge base at `source` at `target`, with CARDS and fluentbit's TAGS
    written into it."""
    src, dest = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dest)
    src.close()
    dest.close()
    db = open_db(target)
    with db.conn:
        write_cards(db, [(card, "test") for card in CARDS], "test")
        db["tags"].insert_all(
            {
                "story_id": "fluentbit",
                "kind": kind,
                "tag": tag,
                "method": method,
                "confidence": confidence,
                "evidence": evidence,
                "original": original,
            }
            for kind, tag, method, confidence, evidence, original in TAGS
        )
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return target
