"""Atom feeds (plugins/mlopsmortem_feeds.py, mlopsmortem.web.feeds), end to end.

The knowledge base of tests/test_plugin.py (real SQLite, passages embedded with the real model),
with distinct first_seen times so "newest first" has one right answer, served by a real
Datasette with --plugins-dir and read through its in-process client. Every feed is parsed with
ElementTree and checked against the elements RFC 4287 requires. Searches use keyword mode but
one (hybrid), which needs the model.
"""

from __future__ import annotations

import html
import re
import sqlite3
import urllib.parse
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.settings import Settings
from mlopsmortem.web.feeds import (
    EPOCH,
    FEED_LIMIT,
    SUMMARY_CHARS,
    TAG_PREFIX,
    entry_id,
    iri,
    rfc3339,
    xml_text,
)
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.knowledge_base import Story
from tests.test_plugin import ALL, PLUGINS, XSS_COMPONENT, XSS_TITLE, build_plugin_kb

A = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
LIVE = tuple(s for s in ALL if not s.removed)
START = datetime(2021, 3, 1, tzinfo=UTC)
# first_seen: one hour apart in the order of ALL (the last story newest), but these two share
# a time, so the id decides between them
TIED = ("conntrack", "ndots")
CONTROL_TITLE = "Pool\x0b exhaustion\x1b took down\x00 checkout"
NO_SUMMARY = "airflow"  # its list summary is removed: the feed quotes the page text
ODD_URL = 'https://example.org/drift?q="schema change"&x=<1>'  # not an IRI as written


def first_seen(story_id: str) -> str:
    index = next(i for i, s in enumerate(ALL) if s.id == story_id)
    if story_id in TIED:
        index = min(i for i, s in enumerate(ALL) if s.id in TIED)
    return (START + timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%SZ")


def newest_first(stories: tuple[Story, ...] | list[Story]) -> list[str]:
    ordered = sorted(stories, key=lambda s: s.id)  # ties: by id
    return [s.id for s in sorted(ordered, key=lambda s: first_seen(s.id), reverse=True)]


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory) -> Path:
    path = build_plugin_kb(tmp_path_factory.mktemp("feeds") / "kb.db")
    conn = sqlite3.connect(path)
    with conn:
        for story in ALL:
            conn.execute(
                "UPDATE stories SET first_seen = ? WHERE id = ?", [first_seen(story.id), story.id]
            )
        conn.execute("UPDATE stories SET summary = NULL WHERE id = ?", [NO_SUMMARY])
        conn.execute("UPDATE stories SET title = ? WHERE id = 'pgpool'", [CONTROL_TITLE])
        conn.execute("UPDATE stories SET url = ? WHERE id = 'drift'", [ODD_URL])
        conn.execute(
            "UPDATE stories SET components = '[\"\", \"data-pipeline\", 7]' WHERE id = 'drift'"
        )
    conn.close()
    return path


@pytest.fixture
def ds(kb_path: Path) -> Datasette:
    metadata = load_metadata(Settings(db_path=kb_path, quiet=True))
    metadata["plugins"]["mlopsmortem-search"]["warm"] = False  # keyword feeds need no model
    return Datasette(
        [str(kb_path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )


async def get_feed(ds: Datasette, path: str) -> tuple[ET.Element, bytes]:
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return check_atom(response.content), response.content


def check_atom(body: bytes) -> ET.Element:
    """Parse an Atom document and assert the elements RFC 4287 requires."""
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(body)
    assert root.tag == f"{A}feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{name}")) == 1, name
    assert root.findtext(f"{A}id").startswith(TAG_PREFIX)
    assert root.findtext(f"{A}title")
    assert RFC3339.match(root.findtext(f"{A}updated"))
    selves = [link for link in root.findall(f"{A}link") if link.get("rel") == "self"]
    assert len(selves) == 1 and selves[0].get("href").startswith("http://localhost/-/feeds/")
    assert root.findtext(f"{A}author/{A}name")  # entries without a publisher stay valid
    assert root.find(f"{A}generator").text == "mlopsmortem"
    ids = []
    for entry in root.findall(f"{A}entry"):
        for name in ("id", "title", "updated", "published"):
            assert len(entry.findall(f"{A}{name}")) == 1, name
        assert entry.findtext(f"{A}title")
        assert RFC3339.match(entry.findtext(f"{A}updated"))
        alternates = [link for link in entry.findall(f"{A}link") if link.get("rel") == "alternate"]
        assert len(alternates) == 1 and alternates[0].get("href")
        ids.append(entry.findtext(f"{A}id"))
    assert len(ids) == len(set(ids)), "entry ids repeat"
    updates = [e.findtext(f"{A}updated") for e in root.findall(f"{A}entry")]
    assert root.findtext(f"{A}updated") == max(updates, default=EPOCH)
    return root


def entry_ids(root: ET.Element) -> list[str]:
    prefix = f"{TAG_PREFIX}story/"
    return [e.findtext(f"{A}id").removeprefix(prefix) for e in root.findall(f"{A}entry")]


def entry(root: ET.Element, story_id: str) -> ET.Element:
    return next(
        e for e in root.findall(f"{A}entry") if e.findtext(f"{A}id").endswith(f"/{story_id}")
    )


def links(element: ET.Element) -> dict[str, str]:
    return {link.get("rel"): link.get("href") for link in element.findall(f"{A}link")}


def with_tag(kind: str, tag: str) -> list[Story]:
    return [s for s in LIVE if tag in (s.components if kind == "component" else s.impacts)]


# --------------------------------------------------------------------------- new stories


@pytest.mark.asyncio
async def test_new_feed_lists_live_stories_newest_first(ds) -> None:
    root, body = await get_feed(ds, "/-/feeds/new.atom")
    assert entry_ids(root) == newest_first(LIVE)[:FEED_LIMIT]
    assert "removed" not in entry_ids(root)
    assert root.findtext(f"{A}updated") == first_seen(newest_first(LIVE)[0])
    assert links(root)["self"] == "http://localhost/-/feeds/new.atom"
    assert links(root)["alternate"].startswith("http://localhost/kb/stories?_sort_desc=first_seen")
    _, again = await get_feed(ds, "/-/feeds/new.atom")
    assert again == body  # deterministic: the same database gives the same bytes


@pytest.mark.asyncio
async def test_entry_elements(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/new.atom")
    fluentbit = entry(root, "fluentbit")
    assert fluentbit.findtext(f"{A}id") == f"{TAG_PREFIX}story/fluentbit"
    assert fluentbit.findtext(f"{A}title") == "How Fluent Bit silently dropped our logs"
    assert fluentbit.findtext(f"{A}updated") == first_seen("fluentbit")
    assert fluentbit.findtext(f"{A}published") == first_seen("fluentbit")
    assert links(fluentbit) == {
        "alternate": "https://example.org/fluentbit",  # the URL as the list wrote it
        "related": "http://localhost/kb/stories/fluentbit",
    }
    assert fluentbit.findtext(f"{A}author/{A}name") == "Acme Cloud"
    assert fluentbit.findtext(f"{A}summary").startswith("Paused tail input plus log rotation")
    categories = {(c.get("scheme"), c.get("term")) for c in fluentbit.findall(f"{A}category")}
    assert categories == {
        (f"{TAG_PREFIX}component", "logging"),
        (f"{TAG_PREFIX}component", "kubernetes"),
        (f"{TAG_PREFIX}impact", "data-loss"),
    }
    # no list summary: the start of the page text, cut between words
    summary = entry(root, NO_SUMMARY).findtext(f"{A}summary")
    assert summary.startswith("We ran two Airflow schedulers for high availability")
    assert summary.endswith("…") and len(summary) <= SUMMARY_CHARS + 1 and "\n" not in summary


@pytest.mark.asyncio
async def test_n_bounds_the_feed(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/new.atom?n=3")
    assert entry_ids(root) == newest_first(LIVE)[:3]
    root, _ = await get_feed(ds, "/-/feeds/new.atom?n=100000")
    assert len(entry_ids(root)) == min(len(LIVE), FEED_LIMIT)
    for bad in ("0", "-1", "many"):
        response = await ds.client.get(f"/-/feeds/new.atom?n={bad}")
        assert response.status_code == 400, bad


# --------------------------------------------------------------------------- tags


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "tag"),
    [("component", "kafka"), ("component", "kubernetes"), ("impact", "data-loss")],
)
async def test_tag_feeds_list_exactly_the_tagged_stories(ds, kind, tag) -> None:
    root, _ = await get_feed(ds, f"/-/feeds/{kind}/{tag}.atom")
    expected = newest_first(with_tag(kind, tag))
    assert expected and entry_ids(root) == expected
    assert root.findtext(f"{A}id") == f"{TAG_PREFIX}feed/{kind}/{tag}"
    assert links(root)["self"] == f"http://localhost/-/feeds/{kind}/{tag}.atom"
    for item in root.findall(f"{A}entry"):
        assert tag in {c.get("term") for c in item.findall(f"{A}category")}


@pytest.mark.asyncio
async def test_tag_names_are_case_insensitive(ds) -> None:
    lower, _ = await get_feed(ds, "/-/feeds/component/kubernetes.atom")
    upper, _ = await get_feed(ds, "/-/feeds/component/KUBERNETES.atom")
    assert entry_ids(upper) == entry_ids(lower)
    assert upper.findtext(f"{A}id") == lower.findtext(f"{A}id")  # one feed, one id


@pytest.mark.asyncio
async def test_taxonomy_tag_without_stories_is_an_empty_feed(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/component/redis.atom")  # in data/taxonomy.toml
    assert entry_ids(root) == []
    assert root.findtext(f"{A}updated") == EPOCH
    assert root.findtext(f"{A}id") == f"{TAG_PREFIX}feed/component/Redis"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    [
        "/-/feeds/component/no-such-thing.atom",
        "/-/feeds/impact/no-such-impact.atom",
        "/-/feeds/impact/Kafka.atom",  # a component is not an impact
        "/-/feeds/publisher/Acme.atom",
        "/-/feeds/component/Kafka/x.atom",
        "/-/feeds/new.rss",
        "/-/feeds",
    ],
)
async def test_unknown_tag_is_404(ds, path) -> None:
    response = await ds.client.get(path)
    assert response.status_code == 404


@pytest.mark.asyncio
async def test_over_long_tag_is_400(ds) -> None:
    response = await ds.client.get("/-/feeds/component/" + "k" * 201 + ".atom")
    assert response.status_code == 400


# --------------------------------------------------------------------------- saved searches


async def search_ids(ds: Datasette, **params: str | list[str]) -> list[str]:
    query = urllib.parse.urlencode({"n": "50", **params}, doseq=True)
    response = await ds.client.get(f"/-/search.json?{query}")
    assert response.status_code == 200, response.text[:300]
    return [hit["id"] for hit in response.json()["results"]]


@pytest.mark.asyncio
async def test_search_feed_holds_the_matches_newest_first(ds) -> None:
    params = {"q": "dns timeout conntrack", "mode": "keyword"}
    matched = await search_ids(ds, **params)
    root, _ = await get_feed(ds, "/-/feeds/search.atom?" + urllib.parse.urlencode(params))
    assert len(matched) > 2
    by_id = {s.id: s for s in LIVE}
    assert entry_ids(root) == newest_first([by_id[i] for i in matched])
    assert "“dns timeout conntrack” (keyword)" in root.findtext(f"{A}title")
    assert links(root)["alternate"] == (
        "http://localhost/-/search?q=dns+timeout+conntrack&mode=keyword"
    )
    # n bounds the matches by relevance, then they are shown newest first
    root, _ = await get_feed(ds, "/-/feeds/search.atom?n=2&" + urllib.parse.urlencode(params))
    assert entry_ids(root) == newest_first([by_id[i] for i in matched[:2]])
    assert links(root)["self"].endswith("&n=2")


@pytest.mark.asyncio
async def test_search_feed_applies_filters_with_the_query(ds) -> None:
    params = {"q": "dns timeout conntrack", "mode": "keyword", "impact": "outage"}
    root, _ = await get_feed(ds, "/-/feeds/search.atom?" + urllib.parse.urlencode(params))
    assert entry_ids(root) and set(entry_ids(root)) == set(await search_ids(ds, **params))
    for item in root.findall(f"{A}entry"):
        assert "outage" in {c.get("term") for c in item.findall(f"{A}category")}


@pytest.mark.asyncio
async def test_search_feed_of_filters_alone(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/search.atom?component=Kafka&impact=data-loss")
    assert entry_ids(root) == ["logstash"]
    root, _ = await get_feed(ds, "/-/feeds/search.atom?component=kubernetes&impact=latency")
    assert entry_ids(root) == newest_first([s for s in LIVE if s.id in TIED])
    assert entry_ids(root) == ["conntrack", "ndots"]  # same first_seen: by id
    root, _ = await get_feed(ds, "/-/feeds/search.atom?since=2023&link_status=live")
    expected = [s for s in LIVE if s.year >= 2023 and s.link_status == "live"]
    assert expected and entry_ids(root) == newest_first(expected)
    # equivalent parameters name one feed
    a, _ = await get_feed(ds, "/-/feeds/search.atom?impact=data-loss&component=Kafka")
    b, _ = await get_feed(ds, "/-/feeds/search.atom?component=kafka&impact=DATA-LOSS")
    assert a.findtext(f"{A}id") == b.findtext(f"{A}id")


@pytest.mark.asyncio
async def test_search_feed_without_anything_is_the_newest_stories(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/search.atom")
    assert entry_ids(root) == newest_first(LIVE)[:FEED_LIMIT]


@pytest.mark.asyncio
async def test_hybrid_search_feed(ds) -> None:
    """The one feed that needs the model: the default mode embeds the query."""
    root, _ = await get_feed(ds, "/-/feeds/search.atom?q=logs+missing+after+elasticsearch+outage")
    ids = entry_ids(root)
    assert "fluentbit" in ids and len(ids) == min(len(LIVE), FEED_LIMIT)
    assert ids == newest_first([s for s in LIVE if s.id in ids])


@pytest.mark.asyncio
async def test_bad_search_feed_parameters(ds) -> None:
    limit = Settings().max_query_chars
    for query, status in (
        ({"q": "x" * (limit + 1), "mode": "keyword"}, 400),
        ({"q": "dns", "mode": "fuzzy"}, 400),
        ({"component": "no-such-component"}, 400),  # as /-/search.json: lists valid values
        ({"component": ["c"] * 21}, 400),
        ({"since": "last year"}, 400),
    ):
        path = "/-/feeds/search.atom?" + urllib.parse.urlencode(query, doseq=True)
        response = await ds.client.get(path)
        assert response.status_code == status, (query, response.text[:200])
    response = await ds.client.get("/-/feeds/search.atom?q=" + "x" * (limit + 1))
    assert "limit" in response.text


# --------------------------------------------------------------------------- untrusted text


@pytest.mark.asyncio
async def test_markup_in_stories_is_escaped_text(ds) -> None:
    root, body = await get_feed(ds, "/-/feeds/new.atom")
    assert b"<script>" not in body and b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
    xss = entry(root, "xss")
    assert xss.findtext(f"{A}title") == XSS_TITLE
    assert xss.findtext(f"{A}author/{A}name") == "<b>Evil</b> Corp"
    assert XSS_COMPONENT in {c.get("term") for c in xss.findall(f"{A}category")}
    # its URL is javascript:alert(3): never linked; the story page is the alternate
    assert links(xss) == {"alternate": "http://localhost/kb/stories/xss"}
    assert b"javascript:" not in body
    # a component that is markup has a feed too, its name percent-encoded in the path
    quoted = urllib.parse.quote(XSS_COMPONENT, safe="")
    root, _ = await get_feed(ds, f"/-/feeds/component/{quoted}.atom")
    assert entry_ids(root) == ["xss"]
    assert root.findtext(f"{A}title").endswith(XSS_COMPONENT)
    assert links(root)["self"] == f"http://localhost/-/feeds/component/{quoted}.atom"


@pytest.mark.asyncio
async def test_characters_xml_cannot_carry_are_dropped(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/new.atom")  # would not parse otherwise
    assert entry(root, "pgpool").findtext(f"{A}title") == "Pool exhaustion took down checkout"
    assert xml_text("a\ud800b\ufffe\tc\n") == "ab\tc\n"


@pytest.mark.asyncio
async def test_links_are_iris_and_empty_tags_are_skipped(ds) -> None:
    root, _ = await get_feed(ds, "/-/feeds/new.atom")
    drift = entry(root, "drift")
    assert links(drift)["alternate"] == (
        "https://example.org/drift?q=%22schema%20change%22&x=%3C1%3E"
    )
    assert [c.get("term") for c in drift.findall(f"{A}category")] == [
        "data-pipeline",
        "bad-predictions",
    ]
    assert entry_id("a b/c") == f"{TAG_PREFIX}story/a%20b%2Fc"
    assert iri("https://example.org/ä?x=1%202") == "https://example.org/%C3%A4?x=1%202"


def test_rfc3339() -> None:
    assert rfc3339("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00Z"
    assert rfc3339("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00Z"
    assert rfc3339("2024-05-01 12:00:00") == "2024-05-01T12:00:00Z"  # no offset: UTC
    for bad in (None, "", "yesterday", 1714564800):
        assert rfc3339(bad) is None


# --------------------------------------------------------------------------- search page


FEED_LINK = re.compile(r'<link rel="alternate" type="application/atom\+xml" href="([^"]+)"')


@pytest.mark.asyncio
async def test_search_page_links_its_feed(ds) -> None:
    response = await ds.client.get("/-/search?q=conntrack&mode=keyword&component=kubernetes&n=5")
    assert response.status_code == 200
    page = response.text
    head = FEED_LINK.search(page)
    assert head, "no <link rel=alternate> to the feed"
    href = html.unescape(head.group(1))
    assert href == "/-/feeds/search.atom?q=conntrack&mode=keyword&component=kubernetes"
    assert f'<a class="mm-feed" href="{head.group(1)}"' in page  # and a visible link
    root, _ = await get_feed(ds, href)
    assert entry_ids(root) == ["conntrack"]
    # without a query or filters: the feed of new stories
    page = (await ds.client.get("/-/search")).text
    assert html.unescape(FEED_LINK.search(page).group(1)) == "/-/feeds/new.atom"
    # a query with no match yet can still be followed
    page = (await ds.client.get("/-/search?q=zzyzzx&mode=keyword")).text
    assert 'class="mm-feed"' in page and "Follow this search" in page
    # a refused search has no feed
    page = (await ds.client.get("/-/search?q=" + "x" * 5000)).text
    assert not FEED_LINK.search(page) and "mm-feed" not in page
