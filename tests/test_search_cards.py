"""Search by incident card: trigger, detection and duration filters in the library, the CLI and
the JSON API; facet counts by them; the card fields every hit carries (null and [] when
unknown); hiding them from an actor who may not view `incident_cards`.

Cards are written with `incidents.store.write_cards` into copies of the session knowledge
bases (tests/conftest.py's `kb`, tests/test_plugin.py's `kb_path`), once per module.
"""

from __future__ import annotations

import copy
import html
import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from datasette.app import Datasette

from mlopsmortem.cli import cli
from mlopsmortem.db import open_db
from mlopsmortem.errors import SearchError
from mlopsmortem.incidents.store import write_cards
from mlopsmortem.incidents.types import DURATION_BAND_LABELS, TRIGGERS, IncidentCard
from mlopsmortem.search.cards import card_line, duration_text
from mlopsmortem.search.run import search, similar
from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.knowledge_base import STORIES
from tests.test_plugin import LIVE, PLUGINS, get_html, get_json, kb_path, search_path

__all__ = ["kb_path"]  # fixture used below

MODES = ("keyword", "semantic", "hybrid")
CERT_SUMMARY = "The API server certificate expired and every kubectl call failed."
CARDS = (
    IncidentCard(
        "certexpiry",
        summary=CERT_SUMMARY,
        triggers=("expiry",),
        detection="alert",
        duration_minutes=47.0,
    ),
    IncidentCard(
        "letsencrypt",
        summary="Old Android devices stopped trusting the renewed certificates.",
        triggers=("expiry", "dependency-failure"),
        detection="customer-report",
        duration_minutes=2880.0,
    ),
    IncidentCard(
        "terraform",
        triggers=("human-error", "config-change"),
        detection="internal-report",
        duration_minutes=190.0,
    ),
    IncidentCard("canary", triggers=("deploy",), detection="alert", duration_minutes=600.0),
    IncidentCard("drift", triggers=("bad-data",), detection="internal-report"),
    IncidentCard("pgpool", triggers=("resource-exhaustion", "traffic-surge"), duration_minutes=95),
    IncidentCard("fluentbit"),  # a card whose text stated nothing: unknowns only
    IncidentCard("removed", triggers=("deploy",), detection="alert"),  # never listed
)
CARD = {c.story_id: c for c in CARDS}
LIVE_CARDS = [c for c in CARDS if c.story_id != "removed"]
UNKNOWN = {"summary": None, "triggers": [], "detection": None, "duration_minutes": None}


def with_cards(source: Path, target: Path) -> Path:
    """A copy of the knowledge base at `source` with CARDS written into it."""
    src, dest = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dest)
    src.close()
    dest.close()
    db = open_db(target)
    with db.conn:
        write_cards(db, [(card, f"hash-{card.story_id}") for card in CARDS], "test")
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return target


def card_dict(story_id: str) -> dict:
    card = CARD.get(story_id)
    if card is None:
        return UNKNOWN
    return {
        "summary": card.summary,
        "triggers": list(card.triggers),
        "detection": card.detection,
        "duration_minutes": card.duration_minutes,
    }


def fields(hit: dict) -> dict:
    return {name: hit[name] for name in UNKNOWN}


@pytest.fixture(scope="module")
def cards_kb(kb, tmp_path_factory) -> tuple[Path, Settings]:
    path = with_cards(kb[0], tmp_path_factory.mktemp("cards") / "kb.db")
    return path, kb[1].with_(db_path=path)


@pytest.fixture(scope="module")
def cards_db(cards_kb):
    db = open_db(cards_kb[0])
    yield db
    db.close()


# --------------------------------------------------------------------------- library


FILTERS = [
    ({"triggers": ["expiry"]}, {"certexpiry", "letsencrypt"}),
    ({"triggers": ["expiry", "dependency-failure"]}, {"letsencrypt"}),  # AND
    ({"triggers": ["DEPLOY"]}, {"canary"}),  # any case; the removed story never
    ({"detections": ["alert", "customer-report"]}, {"certexpiry", "canary", "letsencrypt"}),
    ({"durations": ["1-6h"]}, {"terraform", "pgpool"}),
    ({"durations": ["under-1h", "over-24h"]}, {"certexpiry", "letsencrypt"}),  # OR
    ({"triggers": "expiry", "detections": "alert"}, {"certexpiry"}),
    ({"components": ["tls"], "durations": ["over-24h"]}, {"letsencrypt"}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("filters", "expected"), FILTERS)
def test_card_filters_apply_in_every_mode(cards_kb, cards_db, mode, filters, expected) -> None:
    hits = search(
        cards_db, "outage logs dns model", settings=cards_kb[1], mode=mode, limit=50, **filters
    )
    found = {h.id for h in hits}
    assert found <= expected
    if mode == "semantic":  # semantic ranks every story passing the filters
        assert found == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"triggers": ["nope"]}, "unknown trigger 'nope'; valid values: attack, automation, "),
        (
            {"detections": ["pager"]},
            "unknown detection 'pager'; valid values: alert, customer-report, internal-report",
        ),
        (
            {"durations": ["2h"]},
            "unknown duration '2h'; valid values: under-1h, 1-6h, 6-24h, over-24h",
        ),
    ],
)
def test_unknown_card_ids_list_the_valid_ones(cards_kb, cards_db, filters, message) -> None:
    with pytest.raises(SearchError) as raised:
        search(cards_db, "logs", settings=cards_kb[1], mode="keyword", **filters)
    assert message in str(raised.value)


def test_hits_carry_the_card_and_unknowns_otherwise(cards_kb, cards_db) -> None:
    hits = search(
        cards_db, "outage logs dns model", settings=cards_kb[1], mode="semantic", limit=50
    )
    assert {h.id for h in hits} >= {"certexpiry", "fluentbit", "conntrack"}
    for hit in hits:
        assert fields(json.loads(json.dumps(hit.to_dict()))) == card_dict(hit.id), hit.id
    by_id = {h.id: h for h in hits}
    assert by_id["certexpiry"].summary == CERT_SUMMARY
    assert by_id["certexpiry"].triggers == ("expiry",)
    # a card of unknowns and no card at all read the same
    assert fields(by_id["fluentbit"].to_dict()) == fields(by_id["conntrack"].to_dict()) == UNKNOWN
    neighbours = similar(cards_db, "ndots", settings=cards_kb[1], limit=20)
    assert {h.id for h in neighbours} >= {"certexpiry", "skew"}
    for hit in neighbours:
        assert fields(hit.to_dict()) == card_dict(hit.id), hit.id


def test_a_knowledge_base_without_the_cards_table_still_searches(kb, tmp_path) -> None:
    path = tmp_path / "old.db"
    with_cards(kb[0], path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE incident_timeline")
    conn.execute("DROP TABLE incident_cards")
    conn.commit()
    conn.close()
    db = open_db(path, migrate=False)
    settings = kb[1].with_(db_path=path)
    try:
        hits = search(db, "certificate expired", settings=settings, mode="keyword")
        assert hits and all(fields(h.to_dict()) == UNKNOWN for h in hits)
        assert search(db, "certificate", settings=settings, mode="keyword", triggers="expiry") == []
    finally:
        db.close()


def test_card_line_and_duration_text() -> None:
    assert [duration_text(m) for m in (None, 0.4, 47, 125, 180, 1500, 2880, 3000)] == [
        None,
        "< 1 min",
        "47 min",
        "2 h 5 min",
        "3 h",
        "1 d 1 h",
        "2 d",
        "2 d 2 h",
    ]
    assert card_line(("expiry", "resource-exhaustion"), "alert", 47) == (
        "expiry, resource exhaustion · found by an alert · lasted 47 min"
    )
    assert card_line((), "internal-report", None) == "someone inside noticed"
    assert card_line((), None, None) is None


# --------------------------------------------------------------------------- CLI


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_cli_filters_and_json_fields(cards_kb) -> None:
    db = str(cards_kb[0])
    result = invoke("search", "certificate", "--db", db, "--json", "--trigger", "expiry")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert {h["id"] for h in hits} == {"certexpiry", "letsencrypt"}
    for hit in hits:
        assert fields(hit) == card_dict(hit["id"])
    result = invoke(
        "search", "certificate outage", "--db", db, "--json", "-n", "50", "--mode", "semantic",
        "--detection", "alert", "--detection", "internal-report", "--duration", "under-1h",
        "--duration", "1-6h",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {h["id"] for h in json.loads(result.output)} == {"certexpiry", "terraform"}
    # a story without a card, in --json: the unknowns
    result = invoke("search", "conntrack", "--db", db, "--json", "--mode", "keyword", "-n", "1")
    assert fields(json.loads(result.output)[0]) == UNKNOWN
    result = invoke("similar", "ndots", "--db", db, "--json", "-n", "20")
    assert result.exit_code == 0, result.output
    for hit in json.loads(result.output):
        assert fields(hit) == card_dict(hit["id"])


def test_cli_text_output_has_a_card_line(cards_kb) -> None:
    result = invoke("search", "certificate expired", "--db", str(cards_kb[0]), "--mode", "keyword")
    assert result.exit_code == 0, result.output
    block = result.output[result.output.index("id certexpiry") :]
    assert block.splitlines()[2].strip() == "expiry · found by an alert · lasted 47 min"


@pytest.mark.parametrize(
    ("option", "value", "listed"),
    [
        ("--trigger", "nope", "valid values: attack, automation, bad-data, config-change"),
        ("--detection", "pager", "valid values: alert, customer-report, internal-report"),
        ("--duration", "2h", "valid values: under-1h, 1-6h, 6-24h, over-24h"),
    ],
)
def test_cli_unknown_card_id_is_a_usage_error(cards_kb, option, value, listed) -> None:
    result = invoke("search", "dns", "--db", str(cards_kb[0]), option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': unknown {option[2:]} '{value}'; {listed}" in (
        " ".join(result.output.split())
    )


# --------------------------------------------------------------------------- JSON API and page


@pytest.fixture(scope="module")
def cards_path(kb_path, tmp_path_factory) -> Path:
    return with_cards(kb_path, tmp_path_factory.mktemp("cards-plugin") / "kb.db")


def served(path: Path, *, deny: str | None = None) -> Datasette:
    metadata = copy.deepcopy(load_metadata(Settings(db_path=path)))
    metadata["plugins"]["mlopsmortem-search"]["warm"] = False
    if deny:
        tables = metadata["databases"][path.stem].setdefault("tables", {})
        tables.setdefault(deny, {})["allow"] = {"id": "admin"}
    return Datasette(
        [str(path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )


@pytest.fixture
def ds(cards_path) -> Datasette:
    return served(cards_path)


@pytest.mark.asyncio
async def test_json_filters_and_hit_fields(ds) -> None:
    async def ids(**filters) -> set[str]:
        data = await get_json(ds, search_path(q="outage", mode="semantic", n=50, **filters))
        for hit in data["results"]:
            assert fields(hit) == card_dict(hit["id"]), hit["id"]
        return {h["id"] for h in data["results"]}

    assert await ids(trigger="expiry") == {"certexpiry", "letsencrypt"}
    assert await ids(trigger=["expiry", "dependency-failure"]) == {"letsencrypt"}
    assert await ids(detection=["alert", "customer-report"]) == {
        "certexpiry",
        "canary",
        "letsencrypt",
    }
    assert await ids(duration="1-6h", component="database") == {"terraform", "pgpool"}
    everything = await ids()
    assert {"fluentbit", "conntrack"} <= everything  # checked above: unknowns, null and []
    data = await get_json(ds, search_path(q="outage", trigger="expiry", detection="alert"))
    assert data["filters"]["trigger"] == ["expiry"] and data["filters"]["detection"] == ["alert"]
    similar_json = await get_json(ds, "/-/similar/ndots.json?n=20")
    assert similar_json["results"]
    for hit in similar_json["results"]:
        assert fields(hit) == card_dict(hit["id"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("trigger", "nope", "unknown trigger 'nope'; valid values: attack, automation"),
        ("detection", "pager", "valid values: alert, customer-report, internal-report"),
        ("duration", "2h", "valid values: under-1h, 1-6h, 6-24h, over-24h"),
    ],
)
async def test_json_unknown_card_id_is_a_400(ds, param, value, message) -> None:
    data = await get_json(ds, search_path(q="dns", **{param: value}), status=400)
    assert data["ok"] is False and data["status"] == 400
    assert message in data["error"]


@pytest.mark.asyncio
async def test_saved_search_feed_takes_the_card_filters(ds) -> None:
    response = await ds.client.get("/-/feeds/search.atom?trigger=expiry&duration=over-24h")
    assert response.status_code == 200, response.text[:300]
    entries = re.findall(r"<id>[^<]*story/([^<]+)</id>", response.text)
    assert entries == ["letsencrypt"]
    response = await ds.client.get("/-/feeds/search.atom?q=dns&trigger=nope")
    assert response.status_code == 400 and "unknown trigger 'nope'" in response.text


def counts(facet: list[dict]) -> dict:
    return {item["value"]: item["count"] for item in facet}


@pytest.mark.asyncio
async def test_facet_counts_by_trigger_detection_and_duration(ds) -> None:
    # hybrid counts are of the first 20 results: every live story of this knowledge base
    assert len(LIVE) <= 20
    facets = (await get_json(ds, search_path(q="logs", facets=1)))["facets"]
    triggers: dict[str, int] = {}
    for card in LIVE_CARDS:
        for trigger in card.triggers:
            triggers[trigger] = triggers.get(trigger, 0) + 1
    assert counts(facets["trigger"]) == triggers
    assert counts(facets["detection"]) == {"alert": 2, "customer-report": 1, "internal-report": 2}
    # bands in their own order, labelled
    assert [(i["value"], i["label"], i["count"]) for i in facets["duration"]] == [
        ("under-1h", DURATION_BAND_LABELS["under-1h"], 1),
        ("1-6h", DURATION_BAND_LABELS["1-6h"], 2),
        ("6-24h", DURATION_BAND_LABELS["6-24h"], 1),
        ("over-24h", DURATION_BAND_LABELS["over-24h"], 1),
    ]
    assert all(i["label"] == TRIGGERS[i["value"]] for i in facets["trigger"])
    # triggers AND (every filter applies); detection and duration leave their own filter out
    facets = (await get_json(ds, search_path(q="logs", facets=1, detection="alert")))["facets"]
    assert counts(facets["trigger"]) == {"expiry": 1, "deploy": 1}
    assert counts(facets["detection"]) == {"alert": 2, "customer-report": 1, "internal-report": 2}
    assert [i["value"] for i in facets["detection"] if i["selected"]] == ["alert"]
    assert counts(facets["duration"]) == {"under-1h": 1, "6-24h": 1}
    facets = (await get_json(ds, search_path(q="logs", facets=1, trigger="expiry")))["facets"]
    assert counts(facets["trigger"]) == {"expiry": 2, "dependency-failure": 1}
    assert counts(facets["duration"]) == {"under-1h": 1, "over-24h": 1}


@pytest.mark.asyncio
async def test_search_page_shows_the_card_and_card_facets(ds) -> None:
    page = await get_html(ds, search_path(False, q="certificate expired", mode="keyword"))
    hit = page[page.index('data-story-id="certexpiry"') :]
    hit = hit[: hit.index("</li>")]
    assert f"<strong>What happened:</strong> {CERT_SUMMARY}" in hit
    assert "lasted 47 min" in hit and "found by an alert" in hit
    assert (
        '<a class="mm-chip mm-chip-trigger" href="/-/search?q=certificate+expired&amp;'
        'mode=keyword&amp;trigger=expiry" title="filter by trigger">expiry</a>'
    ) in hit
    assert '<section class="mm-facet" data-facet="trigger">' in page
    assert f'<span class="mm-label">{html.escape(DURATION_BAND_LABELS["under-1h"])}</span>' in page
    # a story without a card shows as before
    page = await get_html(ds, search_path(False, q="conntrack", mode="keyword"))
    hit = page[page.index('data-story-id="conntrack"') :]
    hit = hit[: hit.index("</li>")]
    assert "What happened" not in hit and "mm-chip-trigger" not in hit and "lasted" not in hit
    # an active card filter reads in words and can be removed
    page = await get_html(ds, search_path(False, q="certificate", duration="over-24h"))
    assert f"Duration: {html.escape(DURATION_BAND_LABELS['over-24h'])} ✕" in page
    assert '<input type="hidden" name="duration" value="over-24h">' in page


@pytest.mark.asyncio
async def test_card_fields_need_the_incident_cards_table(cards_path) -> None:
    ds = served(cards_path, deny="incident_cards")
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    path = search_path(q="certificate expired", mode="keyword", facets=1)
    refused = (await ds.client.get(path)).json()
    assert refused["results"] and all(fields(h) == UNKNOWN for h in refused["results"])
    assert not {"trigger", "detection", "duration"} & set(refused["facets"])
    assert "component" in refused["facets"]
    similar_json = (await ds.client.get("/-/similar/ndots.json?n=20")).json()
    assert all(fields(h) == UNKNOWN for h in similar_json["results"])
    page = (await ds.client.get(search_path(False, q="certificate expired"))).text
    assert "What happened" not in page and 'data-facet="trigger"' not in page
    allowed = (await ds.client.get(path, cookies=admin)).json()
    top = next(h for h in allowed["results"] if h["id"] == "certexpiry")
    assert fields(top) == card_dict("certexpiry") and allowed["facets"]["trigger"]


def test_every_story_of_the_cards_exists() -> None:
    assert set(CARD) <= {s.id for s in STORIES}
