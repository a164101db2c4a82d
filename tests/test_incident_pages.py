"""The story page led by its incident card, and the explore page (plugins/mlopsmortem_incidents.py):
the plugin's knowledge base (tests/test_plugin.py) copied once per module with the cards and
tags of tests/support/incident_cards.py, served by a real Datasette."""

from __future__ import annotations

import copy
import html
import re
import sqlite3
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.incident_cards import with_cards
from tests.test_plugin import PLUGINS, get_html, kb_path

__all__ = ["kb_path"]  # fixture used below


@pytest.fixture(scope="module")
def cards_path(kb_path: Path, tmp_path_factory) -> Path:
    return with_cards(kb_path, tmp_path_factory.mktemp("cards") / "kb.db")


def served(path: Path, metadata: dict | None = None) -> Datasette:
    settings = Settings(db_path=path, quiet=True)
    return Datasette(
        [str(path)],
        plugins_dir=str(PLUGINS),
        metadata=metadata if metadata is not None else load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )


@pytest.fixture
def ds(cards_path: Path) -> Datasette:
    return served(cards_path)


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end)]


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def only(ds_path: Path, table: str) -> dict:
    """The metadata, with `table` visible to the actor "admin" only."""
    metadata = copy.deepcopy(load_metadata(Settings(db_path=ds_path, quiet=True)))
    tables = metadata.setdefault("databases", {}).setdefault("kb", {}).setdefault("tables", {})
    tables.setdefault(table, {})["allow"] = {"id": "admin"}
    return metadata


# --------------------------------------------------------------------------- story page


@pytest.mark.asyncio
async def test_the_story_page_leads_with_the_card(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    # the card first, then similar stories, then where it is and the tags
    assert page.index('id="card"') < page.index('id="similar"') < page.index('id="tags"')
    card = section(page, 'id="card"', 'id="similar"')
    words = text_of(card)
    assert "Acme Cloud" in words and "2022-03-14" in words and "mm-status-live" in card
    assert "Paused tail input plus log rotation lost hours of application logs." in words
    assert "Duration 1 h 48 min (1–6 h)" in words
    assert "Started 2022-03-14 14:02" in words and "Resolved 2022-03-14 15:50" in words
    assert "How it was found a customer report" in words
    assert 'href="/-/search?trigger=dependency-failure"' in card
    assert ">resource exhaustion</a>" in card  # the short label; the long one is its title
    assert 'href="/-/search?component=logging"' in card  # component and impact chips
    assert 'href="/-/search?impact=data-loss"' in card
    assert "Root cause The mem_buf_limit was reached" in words
    assert "Resolution We now use filesystem buffering" in words
    assert "<li>Alert on the fluentbit_input_paused metric.</li>" in card
    timeline = section(card, '<ol class="mm-timeline">', "</ol>")
    assert timeline.count("<li>") == 3
    assert '<time datetime="14:09">14:09</time><span>tail input paused on every node</span>' in (
        timeline
    )
    assert "Where the card comes from" in card and "14:02 … 15:50" in card


@pytest.mark.asyncio
async def test_the_tag_table_has_one_row_per_tag_with_evidence_in_sentences(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    tags = section(page, 'id="tags"', 'id="sources"')
    rows = re.findall(r'<tr data-tag="([^"]+)">', tags)
    # logging (rule + list) and data-loss (list + semantic) are one row each
    assert sorted(rows) == ["component:kubernetes", "component:logging", "impact:data-loss"]
    logging = section(tags, 'data-tag="component:logging"', 'data-tag="component:kubernetes"')
    assert logging.count('class="mm-method"') == 2 and "0.90" in logging
    words = text_of(tags)
    assert "The list says so: “Fluent Bit”." in words
    assert "The list says so: “lost logs”." in words
    assert "Named twice in the text, e.g. “…rotated the log files”." in words
    assert (
        "The text is close in meaning to impact “Data loss” (confidence high): “several hours "
        "of application logs were gone for good”." in words
    )
    assert "score 1.38" not in page and ">=" not in words
    # evidence in no known shape is shown as it is
    assert "our Fluent Bit daemonset kept tailing container log files" in words


@pytest.mark.asyncio
async def test_a_story_without_a_card_keeps_its_page(ds) -> None:
    page = await get_html(ds, "/kb/stories/conntrack")
    words = text_of(section(page, 'id="card"', 'id="similar"'))
    assert "Gamma Systems" in words and "Components dns kubernetes networking" in words
    for field in ("What set it off", "Duration", "Root cause", "Timeline", "unknown"):
        assert field not in words
    for part in ('id="similar"', 'id="tags"', 'id="sources"', 'id="history"', "All columns"):
        assert part in page


@pytest.mark.asyncio
async def test_unknown_card_fields_are_absent_not_unknown(ds) -> None:
    page = await get_html(ds, "/kb/stories/gpuoom")
    words = text_of(section(page, 'id="card"', 'id="similar"'))
    assert "What set it off upgrade or migration" in words and "Duration 30 min (< 1 h)" in words
    for field in ("How it was found", "Started", "Root cause", "Resolution", "unknown"):
        assert field not in words
    empty = await get_html(ds, "/kb/stories/nccl")
    words = text_of(section(empty, 'id="card"', 'id="similar"'))
    assert "The text states none of the incident card's fields." in words
    assert "unknown" not in words.lower()


@pytest.mark.asyncio
async def test_the_card_is_shown_only_to_who_may_view_the_cards(cards_path) -> None:
    ds = served(cards_path, only(cards_path, "incident_cards"))
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    refused = (await ds.client.get("/kb/stories/fluentbit")).text
    allowed = (await ds.client.get("/kb/stories/fluentbit", cookies=admin)).text
    assert "mem_buf_limit was reached" in allowed and "mem_buf_limit" not in refused
    assert "Acme Cloud" in refused  # the story's own facts stay


# --------------------------------------------------------------------------- explore page


@pytest.mark.asyncio
async def test_explore_draws_svg_charts_and_a_matrix_linking_to_searches(ds) -> None:
    page = await get_html(ds, "/-/explore")
    for part in ('id="by-category"', 'id="by-impact"', 'id="by-trigger"', 'id="durations"'):
        assert part in page
    assert page.count('<svg class="mm-svg"') >= 10
    matrix = section(page, 'id="matrix"', 'id="durations"')
    assert '<div class="mm-matrix-box"' in matrix and '<svg class="mm-matrix"' in matrix
    # fluentbit and logstash are both logging and data-loss: the cell says 2 and links there
    cell = re.search(
        r'<a href="/-/search\?component=logging&amp;impact=data-loss" class="mm-cell">'
        r"<rect [^>]*></rect><text [^>]*>(\d+)</text>",
        matrix,
    )
    assert cell is not None and cell.group(1) == "2"
    assert "logging × Data loss: 2 stories" in matrix
    # expiry: two stories with a duration (360 and 47 minutes), median 3 h 24 min
    durations = page[page.index('id="durations"') :]
    assert 'href="/-/search?trigger=expiry"' in durations and "3 h 24 min · 2" in durations
    # per-year panels, impacts by their names and triggers with search links
    assert 'href="/-/search?impact=data-loss"' in page and ">Data loss</a>" in page
    expiry = re.search(r'<figure class="mm-multiple" data-series="expiry">.*?</figure>', page, re.S)
    assert expiry is not None and "2020: 1 story" in expiry.group(0)
    assert "2021: 1 story" in expiry.group(0)
    # nothing from elsewhere, and the hostile story's component is escaped
    assert not re.search(r'<(link|script|img|iframe)\b[^>]*\b(src|href)="(https?:)?//', page)
    assert "<img src=x" not in page


@pytest.mark.asyncio
async def test_explore_without_the_cards_leaves_out_triggers_and_durations(cards_path) -> None:
    ds = served(cards_path, only(cards_path, "incident_cards"))
    page = await get_html(ds, "/-/explore")
    assert 'id="by-impact"' in page and 'id="matrix"' in page
    assert 'id="by-trigger"' not in page and 'id="durations"' not in page


@pytest.mark.asyncio
async def test_the_menu_leads_to_explore_and_like(ds) -> None:
    page = await get_html(ds, "/-/search")
    assert 'href="/-/explore">Explore failure stories</a>' in page
    assert 'href="/-/like">Incidents like mine</a>' in page


@pytest.mark.asyncio
async def test_without_a_knowledge_base_the_pages_say_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
    ds = Datasette([str(plain)], plugins_dir=str(PLUGINS))
    for path in ("/-/explore", "/-/like"):
        response = await ds.client.get(path)
        assert response.status_code == 404 and "No attached database has a `passages` table" in (
            response.text
        )
    response = await ds.client.post("/-/like.json", json={"text": "lost logs"})
    assert response.status_code == 404 and response.json()["ok"] is False
