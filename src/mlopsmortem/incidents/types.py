"""The incident card and its fixed vocabularies (a leaf module: imports nothing of ours).

Trigger, detection and duration-band ids are stable: they are stored, filtered on in URLs and
exported. A field the text does not state stays unknown (None, or an empty tuple).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What set the incident off; several may apply.
TRIGGERS: dict[str, str] = {
    "deploy": "deploy",
    "config-change": "config change",
    "upgrade-or-migration": "upgrade or migration",
    "expiry": "expiry (certificate, credential, domain)",
    "traffic-surge": "traffic surge",
    "resource-exhaustion": "resource exhaustion (disk, memory, quota, IPs)",
    "dependency-failure": "dependency failure (cloud, third party, upstream)",
    "hardware-or-power": "hardware or power",
    "latent-bug": "latent bug",
    "bad-data": "bad data (input, schema, drift)",
    "human-error": "human error (a manual action)",
    "attack": "attack (compromise, abuse)",
    "automation": "automation (a job, autoscaler or cleanup)",
}

# How it was first noticed.
DETECTIONS: dict[str, str] = {
    "alert": "an alert",
    "customer-report": "a customer report",
    "internal-report": "someone inside noticed",
}

# Duration bands for filters and facets: (id, label, upper bound in minutes, exclusive).
DURATION_BANDS: tuple[tuple[str, str, float], ...] = (
    ("under-1h", "< 1 h", 60),
    ("1-6h", "1–6 h", 360),
    ("6-24h", "6–24 h", 1440),
    ("over-24h", "> 24 h", float("inf")),
)
DURATION_BAND_LABELS: dict[str, str] = {band: label for band, label, _ in DURATION_BANDS}

# The card's fields, in the order a reader (and an export) meets them.
CARD_FIELDS = (
    "summary",
    "triggers",
    "detection",
    "started_at",
    "resolved_at",
    "duration_minutes",
    "root_cause",
    "resolution",
    "action_items",
)


def duration_band(minutes: float | None) -> str | None:
    """The band id of a duration in minutes; None when the duration is unknown."""
    if minutes is None:
        return None
    for band, _label, upper in DURATION_BANDS:
        if minutes < upper:
            return band
    return DURATION_BANDS[-1][0]


def duration_text(minutes: float | None) -> str | None:
    """A duration for people: "< 1 min", "47 min", "2 h 5 min", "3 d 4 h"; None if unknown."""
    if minutes is None:
        return None
    if minutes < 1:
        return "< 1 min"
    whole = round(minutes)
    if whole < 60:
        return f"{whole} min"
    if whole < 24 * 60:
        hours, rest = divmod(whole, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(round(whole / 60), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@dataclass(frozen=True)
class FieldEvidence:
    """Where a card field came from: the passage holding it (None for the list's summary),
    how it was found, how sure the extractor is (0-1) and the words it read."""

    passage_id: int | None
    method: str
    confidence: float
    quote: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "passage_id": self.passage_id,
            "method": self.method,
            "confidence": round(self.confidence, 2),
            "quote": self.quote,
        }


@dataclass(frozen=True)
class TimelineEntry:
    """One timestamped line of the text's timeline: the time as written, read as
    YYYY-MM-DD HH:MM (or HH:MM without a date; None when unreadable), and the event."""

    time: str
    at: str | None
    event: str


@dataclass(frozen=True)
class IncidentCard:
    story_id: str
    summary: str | None = None
    triggers: tuple[str, ...] = ()
    detection: str | None = None
    started_at: str | None = None
    resolved_at: str | None = None
    duration_minutes: float | None = None
    root_cause: str | None = None
    resolution: str | None = None
    action_items: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    evidence: dict[str, FieldEvidence] = field(default_factory=dict)

    @property
    def duration_band(self) -> str | None:
        return duration_band(self.duration_minutes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every card field, the band, the timeline and the evidence."""
        return {
            "summary": self.summary,
            "triggers": list(self.triggers),
            "detection": self.detection,
            "started_at": self.started_at,
            "resolved_at": self.resolved_at,
            "duration_minutes": self.duration_minutes,
            "duration_band": self.duration_band,
            "root_cause": self.root_cause,
            "resolution": self.resolution,
            "action_items": list(self.action_items),
            "timeline": [{"time": e.time, "at": e.at, "event": e.event} for e in self.timeline],
            "evidence": {name: ev.as_dict() for name, ev in self.evidence.items()},
        }
