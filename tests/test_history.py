"""`changes` and `status`: from real crawls against a local server, and from hand-made history."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlopsmortem.cli import cli
from mlopsmortem.crawl.history import (
    collect_changes,
    collect_status,
    human_duration,
    parse_since,
    status_report,
)
from mlopsmortem.db import utcnow
from mlopsmortem.pipeline import run_crawl
from mlopsmortem.urls import canonicalize, story_id
from tests.support.pages import article

LOCAL = frozenset({"localhost", "127.0.0.1"})
NOW = datetime(2026, 11, 8, 12, 0, 0, tzinfo=UTC)


class Site:
    """A local web site whose pages can be edited, killed and revived between crawls."""

    PAGES = ("/stable", "/edited", "/doomed", "/fresh")

    def __init__(self, server: HTTPServer, tmp_path: Path) -> None:
        self.server = server
        self.list_path = tmp_path / "list.md"
        self.bodies = {
            p: article(p.strip("/").title(), f"What happened at {p}.") for p in self.PAGES
        }
        self.dead: set[str] = set()
        for path in self.PAGES:
            server.expect_request(path).respond_with_handler(self.handle)
        server.expect_request("/robots.txt").respond_with_data("", status=404)
        server.expect_request("/wayback/available").respond_with_json({"archived_snapshots": {}})

    def handle(self, request: Request) -> Response:
        if request.path in self.dead:
            return Response("gone", status=404)
        return Response(self.bodies[request.path], content_type="text/html; charset=utf-8")

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def sid(self, path: str) -> str:
        return story_id(canonicalize(self.url(path)))

    def write_list(self, paths: list[str]) -> None:
        lines = ["# Failure stories", ""]
        for path in paths:
            name = path.strip("/").title()
            lines += [
                f"* [{name} outage - Org - blog post 2024]({self.url(path)})",
                "    * involved: DNS",
            ]
        self.list_path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(httpserver: HTTPServer, tmp_path: Path) -> Site:
    return Site(httpserver, tmp_path)


def crawl(settings, site: Site):
    crawl_settings = settings.with_(
        allow_hosts=LOCAL,
        delay=0.0,
        backoff_base=0.01,
        max_tries=1,
        wayback_api=site.url("/wayback/available"),
    )
    return run_crawl(crawl_settings, [str(site.list_path)])


def ids(changes: list) -> list[str]:
    return [c.story_id for c in changes]


def test_changes_after_a_second_real_crawl(db, settings, site):
    start = utcnow()
    site.write_list(["/stable", "/edited", "/doomed"])
    first = crawl(settings, site)
    assert first.as_dict()["new_stories"] == 3
    time.sleep(1.1)  # timestamps have one-second resolution
    cutoff = utcnow()

    site.bodies["/edited"] = article("Edited", "The postmortem gained a new timeline section.")
    site.dead.add("/doomed")
    site.write_list(["/stable", "/edited", "/doomed", "/fresh"])
    second = crawl(settings, site).as_dict()
    assert (second["new_stories"], second["changed_pages"], second["newly_dead"]) == (1, 2, 1)

    report = collect_changes(db, cutoff)
    assert [r.command for r in report.runs] == ["crawl"]
    assert ids(report.new_stories) == [site.sid("/fresh")]
    assert ids(report.changed_pages) == [site.sid("/edited")]  # /fresh's first fetch is no change
    assert ids(report.newly_dead) == [site.sid("/doomed")]
    assert report.recovered == [] and report.removed == []
    fresh = report.new_stories[0]
    assert fresh.title == "Fresh outage"
    assert fresh.url == site.url("/fresh")
    assert fresh.run_id == second["run_id"]
    assert report.newly_dead[0].link_status == "dead"
    assert report.changed_pages[0].title == "Edited outage"

    # over both crawls every story is new, so nothing counts as changed
    everything = collect_changes(db, start)
    assert sorted(ids(everything.new_stories)) == sorted(site.sid(p) for p in site.PAGES)
    assert everything.changed_pages == []
    assert ids(everything.newly_dead) == [site.sid("/doomed")]

    result = CliRunner().invoke(
        cli, ["changes", "--db", str(settings.db_path), "--since", cutoff, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["since"] == cutoff
    assert [c["story_id"] for c in data["new_stories"]] == [site.sid("/fresh")]
    assert [c["url"] for c in data["newly_dead"]] == [site.url("/doomed")]
    text = CliRunner().invoke(cli, ["changes", "--db", str(settings.db_path), "--since", cutoff])
    assert text.exit_code == 0
    assert f"  + Fresh outage <{site.url('/fresh')}>" in text.output
    assert "newly dead links: 1" in text.output
    assert f"  x Doomed outage <{site.url('/doomed')}>" in text.output

    # the page comes back: its last transition is a recovery, so it is no longer "newly dead"
    site.dead.clear()
    time.sleep(1.1)
    crawl(settings, site)
    report = collect_changes(db, cutoff)
    assert report.newly_dead == []
    assert ids(report.recovered) == [site.sid("/doomed")]
    assert report.recovered[0].link_status == "live"
    assert [r.command for r in report.runs] == ["crawl", "crawl"]


def test_status_after_real_crawls(db, settings, site):
    site.write_list(["/stable", "/doomed"])
    site.dead.add("/doomed")
    crawl(settings, site)
    status = status_report(settings, 30 * 86400)
    assert (status.stories, status.removed) == (2, 0)
    assert status.by_category == {"failure story": 2}
    assert status.by_link_status == {"dead": 1, "live": 1}
    assert (status.never_fetched, status.stale) == (0, 0)
    assert [(r.command, r.status) for r in status.runs] == [("crawl", "ok")]
    assert status.runs[0].counts["new_stories"] == 2


# --------------------------------------------------------------------------- hand-made history


def add_story(db, key: str, **values) -> str:
    sid = f"{key:0<16}"[:16]
    db["stories"].insert(
        {
            "id": sid,
            "url": f"https://{key}.example/post",
            "canonical_url": f"https://{key}.example/post",
            "category": "failure story",
            "title": f"{key.title()} incident",
            "first_seen": "2026-10-01T00:00:00Z",
            "last_seen": "2026-11-07T03:00:00Z",
            **values,
        }
    )
    return sid


def add_run(db, command: str, started: str, status: str = "ok", **values) -> int:
    return (
        db["runs"]
        .insert(
            {
                "command": command,
                "started_at": started,
                "finished_at": started,
                "status": status,
                "duration_s": values.pop("duration_s", 12.5),
                **{k: json.dumps(v) for k, v in values.items()},
            }
        )
        .last_pk
    )


def test_changes_from_stored_history(db):
    a, b, c, d, e, f, g = (
        add_story(db, k) for k in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf")
    )
    add_story(db, "hotel", first_seen="2026-11-05T09:00:00Z")  # by an ingest run
    h = "hotel".ljust(16, "0")
    db.execute("UPDATE stories SET removed_at = '2026-11-06T03:00:00Z' WHERE id = ?", [g])
    db["pages"].insert_all(
        [
            {
                "story_id": a,
                "url": "u",
                "link_status": "live",
                "fetched_at": "2026-11-07T03:00:00Z",
            },
            {"story_id": b, "url": "u", "link_status": "live"},
            {
                "story_id": c,
                "url": "u",
                "link_status": "dead",
                "dead_since": "2026-11-06T03:00:05Z",
            },
            {"story_id": d, "url": "u", "link_status": "live"},
            {
                "story_id": e,
                "url": "u",
                "link_status": "archived",
                "archive_url": "https://web.archive.org/web/1/x",
            },
        ]
    )
    # before the window: ignored
    add_run(db, "crawl", "2026-10-20T03:00:00Z", report={"story_ids": {"changed": [f]}})
    add_run(db, "ingest", "2026-11-05T09:00:00Z", counts={"new": 1, "updated": 0})
    add_run(db, "fetch", "2026-11-06T03:00:00Z", report={"changed": [a, b], "newly_dead": [d, e]})
    add_run(
        db,
        "crawl",
        "2026-11-07T03:00:00Z",
        status="partial",
        report={"story_ids": {"new": [], "changed": [a], "recovered": [d], "newly_dead": []}},
    )
    # killed mid-way: no report, but the database dates what it did
    add_run(db, "crawl", "2026-11-08T03:00:00Z", status="interrupted", counts={})
    db["page_history"].insert(
        {"story_id": f, "content_hash": "x", "replaced_at": "2026-11-08T03:00:07Z"}
    )

    report = collect_changes(db, "2026-11-01T00:00:00Z")
    assert [r.command for r in report.runs] == ["ingest", "fetch", "crawl", "crawl"]
    assert report.runs[0].counts == {"new": 1, "updated": 0}
    assert ids(report.new_stories) == [h]
    assert report.new_stories[0].run_id is None and report.new_stories[0].title == "Hotel incident"
    # a changed twice is listed once, at its latest change; ordered by time
    assert ids(report.changed_pages) == [b, a, f]
    assert report.changed_pages[1].when == "2026-11-07T03:00:00Z"
    # e from the fetch run (03:00:00); c known only from pages.dead_since (03:00:05)
    assert ids(report.newly_dead) == [e, c]
    assert report.newly_dead[0].archive_url == "https://web.archive.org/web/1/x"
    assert ids(report.recovered) == [d]  # died, then came back: only the recovery
    assert ids(report.removed) == [g]
    lines = "\n".join(report.summary_lines())
    assert "x Echo incident <https://echo.example/post> archived: https://web.archive.org" in lines
    assert "removed from every list: 1" in lines

    later = collect_changes(db, "2026-11-07T00:00:00Z")
    assert ids(later.changed_pages) == [a, f]
    assert later.newly_dead == [] and ids(later.recovered) == [d]


def test_status_counts(db):
    listed = {
        "a": ("failure story", "live", "2026-11-07T00:00:00Z"),
        "b": ("failure story", "dead", "2026-09-01T00:00:00Z"),  # stale
        "c": ("failure story", None, None),  # never fetched
        "d": ("resource", "redirected", "2026-10-20T00:00:00Z"),
        "e": ("resource", "live", "2026-08-01T00:00:00Z"),  # stale, the oldest
    }
    for key, (category, link, fetched) in listed.items():
        sid = add_story(db, key, category=category)
        if link:
            db["pages"].insert(
                {"story_id": sid, "url": "u", "link_status": link, "fetched_at": fetched}
            )
    gone = add_story(db, "z", removed_at="2026-10-01T00:00:00Z")
    db["pages"].insert(
        {"story_id": gone, "url": "u", "link_status": "dead", "fetched_at": "2020-01-01T00:00:00Z"}
    )
    for i in range(7):
        add_run(
            db,
            "crawl" if i % 2 else "ingest",
            f"2026-11-0{i + 1}T03:00:00Z",
            duration_s=61.0 + i,
            counts={"new": i},
        )
    db.execute("UPDATE runs SET status = 'running', duration_s = NULL WHERE id = 7")

    status = collect_status(db, 30 * 86400, now=NOW)
    assert (status.stories, status.removed) == (5, 1)
    assert status.by_category == {"failure story": 3, "resource": 2}
    assert status.by_link_status == {"live": 2, "dead": 1, "not_fetched": 1, "redirected": 1}
    assert status.never_fetched == 1
    assert status.stale_before == "2026-10-09T12:00:00Z"
    assert status.stale == 2
    assert status.oldest_fetch == "2026-08-01T00:00:00Z"
    assert [r.id for r in status.runs] == [7, 6, 5, 4, 3]
    assert status.runs[0].status == "running" and status.runs[0].duration_s is None
    assert status.runs[1].counts == {"new": 5}
    lines = "\n".join(status.summary_lines())
    assert "by link status: live 2, dead 1, not_fetched 1, redirected 1" in lines
    assert "  #6 crawl ok 2026-11-06T03:00:00Z 1m06s (new 5)" in lines
    assert "  #7 ingest running 2026-11-07T03:00:00Z -" in lines

    assert collect_status(db, 86400 * 365, now=NOW).stale == 0


def test_parse_since():
    assert parse_since("2026-11-01", NOW) == "2026-11-01T00:00:00Z"
    assert parse_since("2026-11-01T08:30:00Z", NOW) == "2026-11-01T08:30:00Z"
    assert parse_since("2026-11-01T10:30:00+02:00", NOW) == "2026-11-01T08:30:00Z"
    assert parse_since("7d", NOW) == "2026-11-01T12:00:00Z"
    assert parse_since("12h", NOW) == "2026-11-08T00:00:00Z"
    with pytest.raises(ValueError, match="not a date or duration"):
        parse_since("last tuesday", NOW)


def test_human_duration():
    assert [human_duration(s) for s in (None, 4.25, 61, 3725)] == ["-", "4.2s", "1m01s", "1h02m"]


def test_cli_status_and_changes(db, settings):
    add_story(db, "alpha", first_seen=utcnow())
    add_run(db, "ingest", utcnow(), counts={"new": 1})
    runner = CliRunner()
    base = ["--db", str(settings.db_path)]

    result = runner.invoke(cli, ["status", *base, "--json", "--max-age", "12h"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["stories"] == 1 and data["max_age_s"] == 43200
    assert data["by_link_status"] == {"not_fetched": 1}
    assert data["runs"][0]["command"] == "ingest"
    text = runner.invoke(cli, ["status", *base])
    assert text.exit_code == 0
    assert "pages never fetched: 1" in text.output

    result = runner.invoke(cli, ["changes", *base, "--json"])  # default: the last 7 days
    assert result.exit_code == 0, result.output
    assert [c["title"] for c in json.loads(result.output)["new_stories"]] == ["Alpha incident"]
    assert runner.invoke(cli, ["changes", *base, "--quiet"]).output == ""

    bad = runner.invoke(cli, ["changes", *base, "--since", "yesterday-ish"])
    assert bad.exit_code == 2 and "not a date or duration" in bad.output
    bad = runner.invoke(cli, ["status", *base, "--max-age", "a month"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_cli_on_a_missing_database_does_not_create_it(tmp_path):
    path = tmp_path / "nope.db"
    for command in ("status", "changes"):
        result = CliRunner().invoke(cli, [command, "--db", str(path)])
        assert result.exit_code == 1
        assert result.output == f"Error: {path} does not exist: run `mlopsmortem crawl` first\n"
    assert not path.exists()
