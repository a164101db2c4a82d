"""Site chrome across pages: blocks repeated on several pages of one host leave the stored text,
at crawl time and on `extract --all`, against a real local HTTP server and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlopsmortem.cli import cli
from mlopsmortem.crawl.scheduler import extract_stored, fetch_stories
from mlopsmortem.crawl.sitechrome import filter_site_chrome, site_host
from mlopsmortem.extract.sitechrome import chrome_blocks, strip_chrome
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources
from mlopsmortem.passages.sync import sync_passages

LOCAL = frozenset({"localhost", "127.0.0.1"})
COMPONENTS = ["API gateway", "Dashboard", "Webhooks delivery", "Model serving endpoints"]
CHROME = ("Subscribe to updates", "Affected components", "Webhooks delivery", "has been resolved")
TWO_PAGES = "A shared note that appears on exactly two incident pages of this site."
WORDS = ["resolver", "quota", "certificate", "replica", "scheduler", "gradient"]


def status_page(n: int, *, shared_with_two: bool = False) -> str:
    """A status-page incident: its own updates, a shared heading, and the site's chrome."""
    word = WORDS[n]
    own = "".join(
        f"<p>Incident {n} update {i}: the {word} failed in region {n}-{i} and we rolled back "
        f"the {word} change while engineers investigated the {word} errors.</p>"
        for i in range(3)
    )
    return (
        f"<html><head><title>Incident {n}: {word} outage</title></head><body><main><article>"
        f"<h1>Incident {n}: {word} outage</h1>"
        "<p>This incident has been resolved. Thank you for your patience.</p>"
        f"{own}<h2>Timeline</h2><p>At 10:0{n} the {word} alarm fired; at 11:0{n} it cleared.</p>"
        + (f"<p>{TWO_PAGES}</p>" if shared_with_two else "")
        + "<h3>Affected components</h3><ul>"
        + "".join(f"<li>{c}</li>" for c in COMPONENTS)
        + "</ul><p>Subscribe to updates</p></article></main></body></html>"
    )


def make_list(tmp_path: Path, urls: list[str], name: str = "list.md") -> SourceSpec:
    lines = ["# Test list", ""]
    lines += [f"* [Story {i} - Org - status page 2023]({url})" for i, url in enumerate(urls)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return SourceSpec(name="test", location=str(path), format="afs")


def serve(httpserver, paths: range, *, two: tuple[int, ...] = (0, 1)) -> list[str]:
    for n in paths:
        httpserver.expect_request(f"/incident/{n}").respond_with_data(
            status_page(n, shared_with_two=n in two), content_type="text/html; charset=utf-8"
        )
    return [httpserver.url_for(f"/incident/{n}") for n in paths]


@pytest.fixture
def site(httpserver):
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    return httpserver


@pytest.fixture
def crawl_settings(settings):
    return settings.with_(allow_hosts=LOCAL, delay=0.0, backoff_base=0.01, max_tries=2)


def other_host(url: str) -> str:
    """The same local server named by another host."""
    return url.replace("://localhost:", "://127.0.0.1:")


def texts(db) -> dict[str, str]:
    rows = db.query("SELECT p.url, d.text FROM documents d JOIN pages p USING (story_id)")
    return {row["url"]: row["text"] for row in rows}


def passages_of(db, url: str) -> str:
    rows = db.query(
        "SELECT x.text FROM passages x JOIN pages p ON p.story_id = x.story_id "
        "WHERE p.url = ? AND x.kind = 'text' ORDER BY x.seq",
        [url],
    )
    return "\n".join(row["text"] for row in rows)


def has_chrome(text: str) -> list[str]:
    return [marker for marker in CHROME if marker in text]


def test_chrome_shared_by_a_hosts_pages_leaves_text_and_passages(
    db, crawl_settings, tmp_path, site
):
    urls = serve(site, range(4))
    lone = other_host(serve(site, range(4, 5))[0])  # one page on another host, same chrome
    ingest_sources(db, [make_list(tmp_path, [*urls, lone])], crawl_settings)
    fetch_stories(db, crawl_settings)
    sync_passages(db, settings=crawl_settings)
    stored = texts(db)
    for n, url in enumerate(urls):
        for text in (stored[url], passages_of(db, url)):
            assert has_chrome(text) == [], (url, text)
            assert f"Incident {n} update 2" in text and f"At 10:0{n}" in text
            assert "Timeline" in text  # a heading the site's pages share is structure
    assert TWO_PAGES in stored[urls[0]] and TWO_PAGES in stored[urls[1]]  # only two pages
    # a page of another host keeps what it shares with this one, as does a one-page host
    assert has_chrome(stored[lone]) == list(CHROME)
    assert has_chrome(passages_of(db, lone)) == list(CHROME)
    dropped = {r["text"] for r in db.query("SELECT text FROM site_chrome WHERE host = 'localhost'")}
    assert "Subscribe to updates" in dropped and "Affected components" in dropped
    assert not db["site_chrome"].count_where("host = '127.0.0.1'")
    counts = {r["story_id"]: r["chrome_blocks"] for r in db["extracted_texts"].rows}
    assert sorted(counts.values()) == [0, 4, 4, 4, 4]


def test_a_new_page_makes_its_neighbours_chrome_and_recrawls_churn_nothing(
    db, crawl_settings, tmp_path, site
):
    urls = serve(site, range(4))
    ingest_sources(db, [make_list(tmp_path, urls[:2])], crawl_settings)
    fetch_stories(db, crawl_settings)
    sync_passages(db, settings=crawl_settings)
    assert all(has_chrome(t) == list(CHROME) for t in texts(db).values())  # two pages: kept

    ingest_sources(db, [make_list(tmp_path, urls)], crawl_settings)
    fetch_stories(db, crawl_settings, only=[])
    first = sync_passages(db, settings=crawl_settings)
    assert first.changed_stories == 4  # the two earlier pages were filtered again too
    assert all(has_chrome(t) == [] for t in texts(db).values())

    before = list(db.query("SELECT id, text_hash FROM passages ORDER BY id"))
    docs_before = list(db.query("SELECT story_id, text_hash, extracted_at FROM documents"))
    fetch_stories(db, crawl_settings.with_(force=True))  # same bodies: nothing re-extracted
    again = sync_passages(db, settings=crawl_settings)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert list(db.query("SELECT id, text_hash FROM passages ORDER BY id")) == before
    assert list(db.query("SELECT story_id, text_hash, extracted_at FROM documents")) == docs_before
    assert filter_site_chrome(db, crawl_settings, everything=True).rewritten == 0


def test_extract_all_applies_the_same_filter(db, crawl_settings, tmp_path, site):
    urls = serve(site, range(4))
    ingest_sources(db, [make_list(tmp_path, urls)], crawl_settings)
    fetch_stories(db, crawl_settings)
    filtered = texts(db)
    # a knowledge base extracted before the filter existed: its documents hold the raw text
    db.execute("UPDATE documents SET text = (SELECT text FROM extracted_texts e "
               "WHERE e.story_id = documents.story_id)")  # fmt: skip
    db.execute("UPDATE extracted_texts SET host = NULL, pending = 0")
    db.conn.commit()
    assert all(has_chrome(t) == list(CHROME) for t in texts(db).values())
    site.stop()  # offline from here on
    try:
        result = CliRunner().invoke(
            cli, ["extract", "--all", "--db", str(crawl_settings.db_path), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        assert texts(db) == filtered
        hashes = list(db.query("SELECT story_id, text_hash FROM documents ORDER BY story_id"))
        report = extract_stored(db, everything=True, settings=crawl_settings)
        assert (report.chrome_hosts, report.chrome_pages) == (1, 4)
        assert list(db.query("SELECT story_id, text_hash FROM documents ORDER BY 1")) == hashes
    finally:
        site.start()


def test_min_pages_is_a_setting_and_a_change_refilters(db, crawl_settings, tmp_path, site):
    urls = serve(site, range(3))
    ingest_sources(db, [make_list(tmp_path, urls)], crawl_settings)
    fetch_stories(db, crawl_settings)
    assert TWO_PAGES in texts(db)[urls[0]]
    filter_site_chrome(db, crawl_settings.with_(chrome_min_pages=2))
    assert TWO_PAGES not in texts(db)[urls[0]]
    filter_site_chrome(db, crawl_settings.with_(chrome_min_pages=4))
    assert all(has_chrome(t) == list(CHROME) for t in texts(db).values())


# ------------------------------------------------------------------- the rules, on plain text


def page(own: str, *chrome: str) -> str:
    return "\n\n".join([own, "Timeline", f"{own} timeline entry.", *chrome])


def test_blocks_need_three_distinct_pages_and_duplicates_count_once():
    box = "Get the postmortems by email every week."
    pages = [page(f"Own story {n} with a long body about the outage.", box) for n in range(3)]
    assert box in chrome_blocks(pages, 3)
    assert box not in chrome_blocks(pages[:2], 3)
    copies = [pages[0], pages[0] + "\n\nPrinted copy.", pages[1]]  # two versions of one page
    assert box not in chrome_blocks(copies, 3)


def test_headings_titles_and_whole_texts_are_kept():
    box = "Get the postmortems by email every week."
    pages = [page(f"Own story {n} with a long body about the outage.", box) for n in range(3)]
    chrome = chrome_blocks(pages, 3)
    assert "Timeline" in chrome  # it repeats, but heads the page's own text: kept
    stripped = strip_chrome(pages[0], chrome)
    assert stripped.dropped == (box,) and "Timeline" in stripped.text
    assert strip_chrome(pages[0], chrome, title=box).dropped == ()  # the page's own title
    assert strip_chrome(f"{box}\n\nShort.", chrome).dropped == ()  # most of the text
    assert strip_chrome(f"{box}\n\n{box}", chrome).text == f"{box}\n\n{box}"  # nothing left


def test_a_repeated_heading_goes_only_with_a_section_of_chrome():
    def incident(n: int) -> str:
        return "\n\n".join(
            [
                f"Incident {n}: the disk of node {n} filled up overnight.",
                "Where we got lucky",
                f"Node {n} had a spare volume attached.",
                "Timeline",
                "All times in UTC.",  # the site's template note, then the page's own table
                f"10:0{n} alert\n10:3{n} fixed",
                "Related posts",
                "- Our 2021 outage\n- Our 2022 outage",
            ]
        )

    pages = [incident(n) for n in range(3)]
    stripped = strip_chrome(pages[0], chrome_blocks(pages, 3))
    assert stripped.dropped == (
        "All times in UTC.", "Related posts", "- Our 2021 outage\n- Our 2022 outage"
    )  # fmt: skip
    assert "Where we got lucky" in stripped.text and "Timeline" in stripped.text


def test_site_host_is_where_the_text_came_from():
    assert site_host("https://a.org/x", "https://WWW.B.com/y", "redirected") == "b.com"
    archived = "https://web.archive.org/web/2020/https://a.org/x"
    assert site_host("https://a.org/x", archived, "archived") == "a.org"
