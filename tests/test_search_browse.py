"""Browsing by filters without a query (mlopsmortem.search.browse): the library, `/-/search.json`
and the search page with filters and no `q` (the explore page's matrix cells and a story page's
chips link there), and the saved-search feed's title naming the card filters.

The session knowledge base of tests/conftest.py (`kb`) is copied once per module with the
incident cards of tests/support/incident_cards.py; in the copy the story "skew" has no list
summary, so its snippet comes from its first text passage.
"""

from __future__ import annotations

import copy
import html
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlite_utils
from datasette.app import Datasette

from mlopsmortem.db import open_db
from mlopsmortem.errors import SearchError
from mlopsmortem.search import browse
from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.incident_cards import CARDS, with_cards
from tests.support.knowledge_base import STORIES, Story
from tests.test_plugin import PLUGINS, get_html, get_json, local, result_ids, search_path

LIVE = tuple(s for s in STORIES if not s.removed)
CARD = {c.story_id: c for c in CARDS}
NO_SUMMARY = "skew"  # its list summary is removed in the module's copy


def newest_first(predicate: Callable[[Story], bool]) -> list[str]:
    """The ids of the live stories passing `predicate`, year descending, then title."""
    chosen = [s for s in LIVE if predicate(s)]
    return [s.id for s in sorted(chosen, key=lambda s: (-s.year, s.title.lower(), s.id))]


def card_has(story: Story, field: str, value: object) -> bool:
    card = CARD.get(story.id)
    if card is None:
        return False
    if field == "triggers":
        return value in card.triggers
    return getattr(card, field) == value


@pytest.fixture(scope="module")
def cards_path(kb, tmp_path_factory) -> Path:
    path = with_cards(kb[0], tmp_path_factory.mktemp("browse") / "kb.db")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE stories SET summary = NULL WHERE id = ?", [NO_SUMMARY])
    conn.close()
    return path


@pytest.fixture(scope="module")
def cards_db(cards_path: Path) -> Iterator[sqlite_utils.Database]:
    db = open_db(cards_path)
    yield db
    db.close()


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


def ids(hits) -> list[str]:
    return [h.id for h in hits]


# --------------------------------------------------------------------------- library


def test_browse_lists_the_stories_passing_the_filters_newest_first(cards_db, kb) -> None:
    hits = browse(cards_db, settings=kb[1], components=["logging"], impacts="data-loss")
    assert ids(hits) == ["fluentbit", "logstash"]
    wanted = newest_first(lambda s: "kubernetes" in s.components)
    hits = browse(cards_db, components="KUBERNETES", limit=50)  # any case, as search
    assert ids(hits) == wanted and len(wanted) >= 4
    assert [h.rank for h in hits] == list(range(1, len(wanted) + 1))
    for hit in hits:
        assert hit.score == 0.0 and hit.highlights == () and hit.matched_by == "filters"
    # a year alone is a filter; removed stories are never listed
    assert ids(browse(cards_db, since=2022, limit=50)) == newest_first(lambda s: s.year >= 2022)
    assert "removed" not in ids(browse(cards_db, components="dns", limit=50))
    both = browse(cards_db, link_status=["dead", "archived"], limit=50)
    assert ids(both) == newest_first(lambda s: s.link_status in ("dead", "archived"))


def test_browse_pages_with_limit_and_offset(cards_db) -> None:
    everything = ids(browse(cards_db, since=2019, limit=50))
    assert len(everything) > 6
    pages = [browse(cards_db, since=2019, limit=3, offset=o) for o in range(0, 15, 3)]
    assert [h.id for page in pages for h in page] == everything
    assert [h.rank for page in pages for h in page] == list(range(1, len(everything) + 1))
    assert browse(cards_db, since=2019, limit=0) == []


def test_browse_by_the_incident_card(cards_db) -> None:
    expiry = browse(cards_db, triggers="expiry")
    assert ids(expiry) == newest_first(lambda s: card_has(s, "triggers", "expiry"))
    assert ids(expiry) == ["letsencrypt", "certexpiry"]
    cert = expiry[1]
    assert cert.triggers == ("expiry",) and cert.detection == "alert"
    assert cert.duration_minutes == 360 and cert.summary == CARD["certexpiry"].summary
    assert ids(browse(cards_db, detections=["alert", "customer-report"])) == newest_first(
        lambda s: card_has(s, "detection", "alert") or card_has(s, "detection", "customer-report")
    )
    # 47 and 30 minutes: under an hour
    assert ids(browse(cards_db, durations="under-1h")) == ["gpuoom", "letsencrypt"]
    hits = browse(cards_db, triggers=["dependency-failure", "resource-exhaustion"])
    assert ids(hits) == ["fluentbit"]
    assert browse(cards_db, components="gpu", triggers="expiry") == []


def test_the_snippet_is_the_list_summary_else_the_first_text_passage(cards_db) -> None:
    hits = {h.id: h for h in browse(cards_db, components="ml-model", limit=50)}
    skew = hits.pop(NO_SUMMARY)
    first = cards_db.conn.execute(
        "SELECT id, text FROM passages WHERE story_id = ? AND kind = 'text' ORDER BY seq LIMIT 1",
        [NO_SUMMARY],
    ).fetchone()
    assert skew.passage_id == first[0]
    assert skew.snippet and " ".join(first[1].split()).startswith(skew.snippet.rstrip(" …"))
    assert hits
    for story_id, hit in hits.items():
        listed = next(s for s in STORIES if s.id == story_id)
        assert hit.snippet == listed.summary and hit.passage_id is None
        assert hit.snippet_marked == html.escape(listed.summary)


def test_browse_needs_a_filter_and_known_values(cards_db) -> None:
    for blank in ({}, {"components": ["  "]}, {"impacts": ""}, {"triggers": ()}):
        with pytest.raises(SearchError, match="empty query and no filter"):
            browse(cards_db, **blank)
    with pytest.raises(SearchError, match="unknown component 'nosuch'.*kubernetes"):
        browse(cards_db, components="nosuch")
    with pytest.raises(SearchError, match="unknown trigger 'later'"):
        browse(cards_db, triggers="later")
    with pytest.raises(SearchError, match="must not be negative"):
        browse(cards_db, components="dns", offset=-1)


# --------------------------------------------------------------------------- JSON API


@pytest.mark.asyncio
async def test_json_with_filters_and_no_query_lists_the_stories(ds) -> None:
    # the explore page's matrix cell for logging × data-loss
    data = await get_json(ds, "/-/search.json?component=logging&impact=data-loss&facets=1")
    assert data["ok"] is True and data["query"] == "" and data["mode"] == "browse"
    assert data["filters"]["component"] == ["logging"] and data["count"] == 2
    assert [h["id"] for h in data["results"]] == ["fluentbit", "logstash"]
    first = data["results"][0]
    assert first["story_url"] == "/kb/stories/fluentbit" and first["rank"] == 1
    assert first["triggers"] == ["dependency-failure", "resource-exhaustion"]
    assert data["next"] is None
    assert data["facets_count"] == "stories passing the other filters"
    counts = {item["value"]: item["count"] for item in data["facets"]["trigger"]}
    assert counts == {"dependency-failure": 1, "resource-exhaustion": 1, "latent-bug": 1}
    # a story page's trigger chip
    data = await get_json(ds, "/-/search.json?trigger=expiry")
    assert [h["id"] for h in data["results"]] == ["letsencrypt", "certexpiry"]
    assert "facets" not in data


@pytest.mark.asyncio
async def test_json_browse_pages_follow_next(ds) -> None:
    expected = newest_first(lambda s: "kubernetes" in s.components)
    seen: list[str] = []
    url: str | None = search_path(component="kubernetes", n=2)
    while url:
        data = await get_json(ds, local(url))
        seen += [h["id"] for h in data["results"]]
        url = data["next"]
        assert len(seen) <= len(expected)
    assert seen == expected


@pytest.mark.asyncio
async def test_json_without_query_or_filter_stays_an_error(ds) -> None:
    error = await get_json(ds, "/-/search.json", status=400)
    assert "empty query" in error["error"] and error["status"] == 400
    error = await get_json(ds, "/-/search.json?component=&impact=+", status=400)
    assert "empty query" in error["error"]
    error = await get_json(ds, "/-/search.json?component=nosuch", status=400)
    assert "unknown component 'nosuch'" in error["error"] and "logging" in error["error"]
    error = await get_json(ds, "/-/search.json?detection=pager", status=400)
    assert "unknown detection 'pager'" in error["error"]


@pytest.mark.asyncio
async def test_json_browse_hides_passage_snippets_but_not_list_summaries(cards_path) -> None:
    settings = Settings(db_path=cards_path, quiet=True)
    metadata = copy.deepcopy(load_metadata(settings))
    tables = metadata.setdefault("databases", {}).setdefault("kb", {}).setdefault("tables", {})
    tables.setdefault("passages", {})["allow"] = {"id": "admin"}
    ds = served(cards_path, metadata)
    data = await get_json(ds, "/-/search.json?component=ml-model&n=50")
    hits = {h["id"]: h for h in data["results"]}
    assert hits[NO_SUMMARY]["snippet"] == "" and hits[NO_SUMMARY]["passage_id"] is None
    assert hits["drift"]["snippet"] == next(s.summary for s in STORIES if s.id == "drift")
    admin = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    response = await ds.client.get("/-/search.json?component=ml-model&n=50", cookies=admin)
    assert {h["id"]: h for h in response.json()["results"]}[NO_SUMMARY]["snippet"]


# --------------------------------------------------------------------------- search page


def heading(page: str) -> str:
    found = re.search(r'<h2 class="mm-browse-heading">(.*?)</h2>', page, re.S)
    assert found is not None, "no browse heading"
    return html.unescape(found.group(1))


@pytest.mark.asyncio
async def test_page_with_filters_and_no_query_lists_the_stories(ds) -> None:
    page = await get_html(ds, "/-/search?component=logging&impact=data-loss")
    assert result_ids(page) == ["fluentbit", "logstash"]
    assert heading(page) == "Stories with component logging and impact data-loss"
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert html.unescape(title).startswith("Stories with component logging and impact data-loss")
    assert "Stories 1–2, newest first" in page and "for <strong></strong>" not in page
    assert 'href="/-/search.json?component=logging&amp;impact=data-loss"' in page
    assert 'class="mm-error"' not in page
    # the facets count the listed stories
    assert 'data-facet="trigger"' in page


@pytest.mark.asyncio
async def test_page_headings_name_the_card_filters(ds) -> None:
    page = await get_html(ds, "/-/search?trigger=expiry")
    assert result_ids(page) == ["letsencrypt", "certexpiry"]
    assert heading(page) == "Stories with trigger expiry"
    page = await get_html(ds, "/-/search?detection=alert")
    assert result_ids(page) == ["certexpiry"]
    assert heading(page) == "Stories detected by an alert"
    page = await get_html(ds, "/-/search?duration=under-1h&duration=1-6h&since=2021")
    assert result_ids(page) == ["gpuoom", "fluentbit", "letsencrypt"]  # 30, 108, 47 min
    assert heading(page) == "Stories lasting < 1 h or 1–6 h, from 2021 on"
    page = await get_html(ds, "/-/search?component=gpu&trigger=expiry")
    assert result_ids(page) == [] and "No story passes these filters." in page


@pytest.mark.asyncio
async def test_page_browse_pages_like_a_search(ds) -> None:
    page = await get_html(ds, "/-/search?component=logging&n=1")
    assert result_ids(page) == ["fluentbit"] and 'rel="prev"' not in page
    href = html.unescape(re.search(r'<a href="([^"]+)" rel="next"', page).group(1))
    assert href == "/-/search?component=logging&n=1&offset=1"
    second = await get_html(ds, href)
    assert result_ids(second) == ["logstash"] and 'rel="prev"' in second
    assert '<span class="mm-rank">2.</span>' in second and 'rel="next"' not in second


@pytest.mark.asyncio
async def test_page_refuses_an_unknown_filter_value(ds) -> None:
    page = await get_html(ds, "/-/search?component=nosuch", status=400)
    assert 'class="mm-error"' in page and "unknown component" in page
    assert result_ids(page) == [] and "mm-browse-heading" not in page


# --------------------------------------------------------------------------- feed title


@pytest.mark.asyncio
async def test_the_feed_title_names_trigger_detection_and_duration(ds) -> None:
    response = await ds.client.get(
        "/-/feeds/search.atom?component=tls&trigger=expiry&detection=alert"
        "&detection=customer-report&duration=under-1h"
    )
    assert response.status_code == 200, response.text[:300]
    title = html.unescape(re.search(r"<title[^>]*>(.*?)</title>", response.text).group(1))
    assert title == (
        "mlopsmortem: stories, component tls, trigger expiry,"
        " detected by an alert or a customer report, lasting < 1 h"
    )
