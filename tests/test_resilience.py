"""Data survives failures: a failed re-fetch keeps the last good state, a run without SOURCE
re-reads the database's own lists, failed archive lookups are counted and retried.

Real SQLite in tmp_path, real HTTP servers on 127.0.0.1 started by the tests. Resuming
interrupted crawls is in tests/test_resume.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlopsmortem.cli import cli
from mlopsmortem.crawl.history import collect_changes, collect_status
from mlopsmortem.crawl.scheduler import fetch_stories
from mlopsmortem.db import open_db
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.pipeline import FetchRun
from mlopsmortem.settings import Settings
from tests.support.pages import article

LOCAL = frozenset({"127.0.0.1", "localhost"})
PATHS = ("/a", "/b", "/c")


class Site:
    """Pages whose server can answer normally, with a status, or ask robots to block them."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.status: int | None = None  # None: serve the articles
        self.robots = ""
        self.wayback: dict | int = {"archived_snapshots": {}}
        for path in PATHS:
            server.expect_request(path).respond_with_handler(self.page)
        server.expect_request("/robots.txt").respond_with_handler(
            lambda _r: Response(self.robots, status=200 if self.robots else 404)
        )
        server.expect_request("/wayback/available").respond_with_handler(self.archive)
        server.expect_request("/snapshot/a").respond_with_data(
            article("A archived", "The archived copy of a."), content_type="text/html"
        )

    def page(self, request: Request) -> Response:
        if self.status is not None:
            return Response("unavailable", status=self.status)
        body = article(request.path, f"What broke at {request.path}, told at length.")
        return Response(body, content_type="text/html; charset=utf-8")

    def archive(self, _request: Request) -> Response:
        if isinstance(self.wayback, int):
            return Response("archive down", status=self.wayback)
        return Response(json.dumps(self.wayback), content_type="application/json")

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def write_list(self, tmp_path: Path, paths: tuple[str, ...] = PATHS) -> Path:
        lines = ["# Test list", ""]
        lines += [f"* [Story {p} - Org - blog post 2021]({self.url(p)})" for p in paths]
        path = tmp_path / "list.md"
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def site(httpserver: HTTPServer) -> Site:
    return Site(httpserver)


def crawl_settings(settings: Settings, site: Site, **changes: object) -> Settings:
    return settings.with_(
        allow_hosts=LOCAL,
        delay=0.0,
        backoff_base=0.01,
        max_tries=1,
        connect_timeout=2.0,
        read_timeout=2.0,
        wayback_api=site.url("/wayback/available"),
        **changes,
    )


def knowledge(db) -> dict[str, tuple]:
    """Per story: link status, document text, passages: what a failure must not lose."""
    out = {}
    for row in db.query(
        "SELECT s.id, p.link_status, d.text FROM stories s "
        "LEFT JOIN pages p ON p.story_id = s.id LEFT JOIN documents d ON d.story_id = s.id"
    ):
        passages = [
            r["text"]
            for r in db.query(
                "SELECT text FROM passages WHERE story_id = ? ORDER BY seq", [row["id"]]
            )
        ]
        out[row["id"]] = (row["link_status"], row["text"], passages)
    return out


def first_crawl(db, settings: Settings, site: Site, tmp_path: Path) -> dict[str, tuple]:
    ingest_sources(db, [SourceSpec("test", str(site.write_list(tmp_path)), "afs")], settings)
    fetch_stories(db, settings)
    sync_passages(db, settings=settings)
    before = knowledge(db)
    assert {status for status, _, _ in before.values()} == {"live"}
    assert all(text and len(passages) > 1 for _, text, passages in before.values())
    return before


def pages(db) -> list[dict]:
    return list(db.query("SELECT * FROM pages ORDER BY story_id"))


# ------------------------------------------------------------------------------ item 1


def test_a_host_that_is_down_keeps_every_story_text_status_and_passages(
    db, settings, site, tmp_path
) -> None:
    settings = crawl_settings(settings, site)
    before = first_crawl(db, settings, site, tmp_path)
    site.server.stop()  # the host is down: connections are refused
    try:
        report = fetch_stories(db, settings)
        sync_passages(db, settings=settings)
    finally:
        site.server.start()
    assert knowledge(db) == before  # 0 lost: status, text, passages
    assert sorted(report.failing) == sorted(before) and report.errors == []
    assert report.newly_dead == []
    for row in pages(db):
        assert (row["link_status"], row["failures"]) == ("live", 1)
        assert row["error_kind"] in ("connect", "robots_unavailable")  # robots.txt asked first
        assert row["failing_since"] == row["checked_at"] >= row["fetched_at"]
    lines = "\n".join(FetchRun(report, 0).summary_lines())
    assert "failing 3 (last good state kept" in lines

    again = fetch_stories(db, settings)  # the host is back: the failures are over
    assert again.failing == [] and again.recovered == []
    assert all(r["failures"] == 0 and r["failing_since"] is None for r in pages(db))
    assert knowledge(db) == before


def test_5xx_waits_for_several_crawls_and_days_before_a_page_is_dead(
    db, settings, site, tmp_path
) -> None:
    settings = crawl_settings(settings, site, dead_after_failures=3, dead_after_s=7 * 86400.0)
    before = first_crawl(db, settings, site, tmp_path)
    site.status = 503
    for attempt in (1, 2, 3, 4):
        report = fetch_stories(db, settings)
        assert report.newly_dead == [], attempt  # several crawls, but not several days
        assert all(r["failures"] == attempt for r in pages(db))
    assert {r["error_kind"] for r in pages(db)} == {"http_503"}
    assert knowledge(db) == before

    # `status` and `changes` show them as failing, apart from dead
    status = collect_status(db, 86400)
    assert status.by_link_status == {"live": 3}
    assert sorted(f["story_id"] for f in status.failing) == sorted(before)
    assert status.no_archive == []
    assert "failing, not dead (last good state kept): 3" in "\n".join(status.summary_lines())
    changes = collect_changes(db, "2000-01-01T00:00:00Z")
    assert sorted(c.story_id for c in changes.failing) == sorted(before)
    assert changes.newly_dead == []

    # a week later (failing_since moved back), the next failure makes them dead at last
    db.execute("UPDATE pages SET failing_since = '2020-01-01T00:00:00Z'")
    db.conn.commit()
    report = fetch_stories(db, settings)
    assert sorted(report.newly_dead) == sorted(before)
    rows = pages(db)
    assert {r["link_status"] for r in rows} == {"dead"}
    assert {r["dead_since"] for r in rows} == {"2020-01-01T00:00:00Z"}  # dead since failing
    assert {r["archive_lookup"] for r in rows} == {"none"}  # and the archive was asked
    # the text read while the page lived is still there
    assert {sid: k[1] for sid, k in knowledge(db).items()} == {s: k[1] for s, k in before.items()}


def test_a_404_is_the_sites_own_answer_and_marks_the_page_dead_at_once(
    db, settings, site, tmp_path
) -> None:
    settings = crawl_settings(settings, site)
    first_crawl(db, settings, site, tmp_path)
    site.status = 404
    report = fetch_stories(db, settings)
    assert len(report.newly_dead) == 3 and report.failing == []
    assert {r["link_status"] for r in pages(db)} == {"dead"}


def test_refused_and_blocked_by_a_runs_own_flags_never_replace_a_good_state(
    db, settings, site, tmp_path
) -> None:
    good = crawl_settings(settings, site)
    before = first_crawl(db, good, site, tmp_path)
    # a run without --allow-host: every 127.0.0.1 page is refused, and none loses its state
    refused = fetch_stories(db, good.with_(allow_hosts=frozenset()))
    assert len(refused.refused) == 3
    assert knowledge(db) == before
    assert {(r["error_kind"], r["failures"]) for r in pages(db)} == {("refused", 0)}
    # robots.txt now disallows us: blocked, still the last good state
    site.robots = "User-agent: *\nDisallow: /\n"
    blocked = fetch_stories(db, good)
    assert len(blocked.blocked) == 3
    assert knowledge(db) == before
    assert collect_status(db, 86400).failing == []  # not the page's failure


# ------------------------------------------------------------------------------ item 3


def test_a_failed_archive_lookup_is_counted_reported_and_retried(
    db, settings, site, tmp_path
) -> None:
    settings = crawl_settings(settings, site, max_age=86400.0)
    ingest_sources(db, [SourceSpec("test", str(site.write_list(tmp_path, ("/a",))))], settings)
    site.status = 404
    site.wayback = 503  # the archive is unreachable
    report = fetch_stories(db, settings)
    [sid] = report.newly_dead
    assert report.archive_errors == [sid] and report.archived == []
    assert "archive lookups failed 1" in "\n".join(FetchRun(report, 0).summary_lines())
    [row] = pages(db)
    assert (row["link_status"], row["archive_lookup"]) == ("dead", "error")
    status = collect_status(db, 86400)
    [dead] = status.no_archive
    assert dead["story_id"] == sid
    assert "archive lookup failed, retried next crawl" in "\n".join(status.summary_lines())

    # the next crawl retries it, even though the page is fresher than --max-age
    site.wayback = {
        "archived_snapshots": {
            "closest": {"available": True, "status": "200", "url": site.url("/snapshot/a")}
        }
    }
    again = fetch_stories(db, settings)
    assert again.archived == [sid] and again.archive_errors == []
    [row] = pages(db)
    assert (row["link_status"], row["archive_lookup"]) == ("archived", "found")
    assert collect_status(db, 86400).no_archive == []


def test_status_names_dead_stories_without_a_snapshot(db, settings, site, tmp_path) -> None:
    settings = crawl_settings(settings, site)
    ingest_sources(db, [SourceSpec("test", str(site.write_list(tmp_path, ("/b",))))], settings)
    site.status = 410
    report = fetch_stories(db, settings)
    assert report.archive_errors == []
    status = collect_status(db, 86400)
    assert [d["archive_lookup"] for d in status.no_archive] == ["none"]
    assert "no archived snapshot found" in "\n".join(status.summary_lines())


# ------------------------------------------------------------------------------ item 2


def write_sources(tmp_path: Path, list_path: Path) -> Path:
    toml = tmp_path / "sources.toml"
    toml.write_text(f'[[source]]\nname = "default-list"\npath = "{list_path}"\nformat = "afs"\n')
    return toml


def test_a_run_without_source_rereads_the_databases_own_lists_under_their_names(
    settings, site, tmp_path
) -> None:
    mine = site.write_list(tmp_path)
    other = tmp_path / "defaults.md"
    other.write_text(f"# Defaults\n\n* [Other - Org - blog 2020]({site.url('/c')}x)\n")
    sources = write_sources(tmp_path, other)
    db = open_db(settings.db_path)
    ingest_sources(db, [SourceSpec("mlopsmortem-demo", str(mine), "afs")], settings)
    db.close()
    base = ["--db", str(settings.db_path), "--sources-file", str(sources), "--quiet"]

    result = CliRunner().invoke(cli, ["ingest", *base])  # no SOURCE
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["ingest", str(mine), *base])  # the file, by path
    assert result.exit_code == 0, result.output
    db = open_db(settings.db_path)
    names = [r["name"] for r in db.query("SELECT name FROM sources ORDER BY id")]
    assert names == ["mlopsmortem-demo"]  # kept its name; the defaults were not read
    assert db["stories"].count == len(PATHS)


def test_a_new_database_reads_the_default_sources(settings, site, tmp_path) -> None:
    sources = write_sources(tmp_path, site.write_list(tmp_path))
    args = ["ingest", "--db", str(settings.db_path), "--sources-file", str(sources), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    db = open_db(settings.db_path)
    assert [r["name"] for r in db.query("SELECT name FROM sources")] == ["default-list"]


def test_an_unknown_source_name_says_which_names_are_known(settings, site, tmp_path) -> None:
    db = open_db(settings.db_path)
    ingest_sources(db, [SourceSpec("my-list", str(site.write_list(tmp_path)), "afs")], settings)
    db.close()
    sources = write_sources(tmp_path, tmp_path / "list.md")
    args = ["ingest", "no-such-list", "--db", str(settings.db_path)]
    result = CliRunner().invoke(cli, [*args, "--sources-file", str(sources)])
    assert result.exit_code == 1
    assert "no such source: 'no-such-list'" in result.output
    assert "known sources: default-list, my-list" in result.output
    db = open_db(settings.db_path)
    assert db["sources"].count == 1  # nothing recorded for the typo
