"""bench.incidents: its labels use the card vocabularies, and its scorer counts as documented."""

from __future__ import annotations

import pytest

from bench.incidents import duration_ok, read_labels, score
from mlopsmortem.incidents.types import DETECTIONS, TRIGGERS, IncidentCard


def test_the_labels_cover_the_37_articles_with_the_card_vocabularies() -> None:
    labels = read_labels()
    assert len(labels) == 37 and len({row["file"] for row in labels}) == 37
    for row in labels:
        assert row["triggers"].split() and set(row["triggers"].split()) <= set(TRIGGERS)
        assert row["detection"] in {*DETECTIONS, "unstated"}
        assert not row["duration_minutes"] or float(row["duration_minutes"]) > 0
        assert len([t for t in row["topic_terms"].split("|") if t.strip()]) >= 3


def test_duration_is_right_within_ten_percent_or_five_minutes() -> None:
    assert duration_ok(109, 100) and duration_ok(1090, 1000)
    assert not duration_ok(111, 100) and not duration_ok(None, 100)
    assert duration_ok(24, 20) and not duration_ok(26, 20)


def test_the_scorer_by_hand() -> None:
    def label(triggers: str, detection: str, minutes: str, terms: str) -> dict[str, str]:
        return {
            "triggers": triggers,
            "detection": detection,
            "duration_minutes": minutes,
            "topic_terms": terms,
        }

    pairs = [
        (
            label("expiry deploy", "alert", "60", "certificate|tls|x509"),
            IncidentCard("a", summary="The TLS certificate expired.", triggers=("expiry",),
                         detection="alert", duration_minutes=62),
        ),
        (
            label("traffic-surge", "unstated", "", "traffic|load|spike"),
            IncidentCard("b", summary="We moved offices.", triggers=("traffic-surge", "attack"),
                         detection="customer-report"),
        ),
        (label("latent-bug", "customer-report", "30", "bug|crash"), None),
    ]  # fmt: skip
    figures = score(pairs)
    # triggers: 2 right, 1 wrong, 2 missed
    assert figures["triggers P"] == pytest.approx(2 / 3)
    assert figures["triggers R"] == pytest.approx(2 / 4)
    assert figures["detection n"] == "1/2" and figures["unknown kept"] == "0/1"
    assert figures["duration n"] == "1/2"
    assert figures["summary on topic"] == pytest.approx(1 / 3)
