"""Crawling stories from lists against real HTTP servers on 127.0.0.1."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug import Request, Response

from mlopsmortem.cli import cli
from mlopsmortem.crawl.pagestore import decompress
from mlopsmortem.crawl.scheduler import crawl_lock, extract_stored, fetch_stories
from mlopsmortem.errors import LockedError
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources

LOCAL = frozenset({"localhost", "127.0.0.1"})
STORED = "SELECT p.url FROM pages p JOIN page_bodies b ON b.story_id = p.story_id"


def article(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>"
        + "".join(f"<p>{body} Sentence number {i} of the write-up.</p>" for i in range(6))
        + "</article><footer>Copyright footer text</footer></body></html>"
    )


def make_list(tmp_path: Path, urls: list[str]) -> SourceSpec:
    lines = ["# Test list", ""]
    for i, url in enumerate(urls):
        lines.append(f"* [Story {i} - Org - blog post 2021]({url})")
        lines.append("    * involved: DNS")
    path = tmp_path / "list.md"
    path.write_text("\n".join(lines) + "\n")
    return SourceSpec(name="test", location=str(path), format="afs")


@pytest.fixture(autouse=True)
def no_robots(request):
    """Sites without robots.txt (404: everything allowed), unless a test serves one."""
    if "httpserver" in request.fixturenames and "robots" not in request.node.name:
        server = request.getfixturevalue("httpserver")
        server.expect_request("/robots.txt").respond_with_data("", status=404)


def crawl_settings(settings):
    return settings.with_(allow_hosts=LOCAL, delay=0.0, backoff_base=0.01, max_tries=2)


def page(db, url: str) -> dict:
    return next(db.query("SELECT * FROM pages WHERE url = ?", [url.rstrip("/")]))


def test_crawl_stores_pages_documents_and_link_status(db, settings, tmp_path, httpserver):
    httpserver.expect_request("/a").respond_with_data(
        article("Alpha outage", "The resolver timed out under load."),
        content_type="text/html; charset=utf-8",
        headers={"ETag": '"a1"'},
    )
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new")}
    )
    httpserver.expect_request("/new").respond_with_data(
        article("Beta moved", "The page moved to a new home."), content_type="text/html"
    )
    httpserver.expect_request("/gone").respond_with_data("not here", status=404)
    httpserver.expect_request("/broken").respond_with_data("oops", status=403)
    urls = [httpserver.url_for(p) for p in ("/a", "/old", "/gone", "/broken")]
    settings = crawl_settings(settings)
    ingest_sources(db, [make_list(tmp_path, urls)], settings)
    report = fetch_stories(db, settings)
    assert report.total == 4
    a = page(db, urls[0])
    assert (a["link_status"], a["status_code"], a["etag"]) == ("live", 200, '"a1"')
    body = db["page_bodies"].get(a["story_id"])["body"]
    assert b"resolver timed out" in decompress(body)
    doc = next(db["documents"].rows_where("story_id = ?", [a["story_id"]]))
    assert "resolver timed out under load" in doc["text"]
    assert "Copyright footer" not in doc["text"]
    moved = page(db, urls[1])
    assert moved["link_status"] == "redirected"
    assert moved["final_url"] == httpserver.url_for("/new")
    assert page(db, urls[2])["link_status"] == "dead"
    broken = page(db, urls[3])
    assert (broken["link_status"], broken["error_kind"]) == ("error", "http_403")
    assert len(report.changed) == 2
    assert sorted(report.newly_dead) == [page(db, urls[2])["story_id"]]


def test_recrawl_is_conditional_and_reextracts_only_the_changed_page(
    db, settings, tmp_path, httpserver
):
    bodies = {
        "/one": article("One", "Kafka consumers lagged behind."),
        "/two": article("Two", "Certificates expired at midnight."),
    }

    def handler(request: Request) -> Response:
        body = bodies[request.path]
        etag = f'"{hash(body) & 0xFFFF}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type="text/html", headers={"ETag": etag})

    for path in bodies:
        httpserver.expect_request(path).respond_with_handler(handler)
    urls = [httpserver.url_for(p) for p in bodies]
    settings = crawl_settings(settings)
    ingest_sources(db, [make_list(tmp_path, urls)], settings)
    fetch_stories(db, settings)
    extracted_at = {r["story_id"]: r["extracted_at"] for r in db["documents"].rows}
    httpserver.clear_log()

    second = fetch_stories(db, settings)
    requests = [r for r, _ in httpserver.log if r.path != "/robots.txt"]
    assert len(requests) == 2
    assert all(r.headers.get("If-None-Match") for r in requests)
    assert second.not_modified == 2 and second.changed == []
    assert {r["story_id"]: r["extracted_at"] for r in db["documents"].rows} == extracted_at

    bodies["/two"] = article("Two", "Certificates expired again, on a Sunday.")
    time.sleep(1.1)  # timestamps have one-second resolution
    third = fetch_stories(db, settings)
    two_id = page(db, urls[1])["story_id"]
    assert third.changed == [two_id]
    docs = {r["story_id"]: r for r in db["documents"].rows}
    assert "on a Sunday" in docs[two_id]["text"]
    one_id = page(db, urls[0])["story_id"]
    assert docs[one_id]["extracted_at"] == extracted_at[one_id]
    history = list(db["page_history"].rows)
    assert [h["story_id"] for h in history] == [two_id]
    assert history[0]["text_hash"] is not None


def test_dead_link_is_recovered_from_a_local_wayback(db, settings, tmp_path, httpserver):
    original = httpserver.url_for("/vanished")
    snapshot = httpserver.url_for("/snapshots/20200101/vanished")
    httpserver.expect_request("/vanished").respond_with_data("gone", status=410)
    httpserver.expect_request("/wayback/available").respond_with_json(
        {"archived_snapshots": {"closest": {"available": True, "status": "200", "url": snapshot}}}
    )
    httpserver.expect_request("/snapshots/20200101/vanished").respond_with_data(
        article("Archived story", "Disk filled up on the ingest nodes."), content_type="text/html"
    )
    settings = crawl_settings(settings).with_(wayback_api=httpserver.url_for("/wayback/available"))
    ingest_sources(db, [make_list(tmp_path, [original])], settings)
    report = fetch_stories(db, settings)
    row = page(db, original)
    assert row["link_status"] == "archived"
    assert (row["url"], row["archive_url"]) == (original, snapshot)
    assert row["dead_since"] is not None
    doc = next(db["documents"].rows)
    assert "Disk filled up on the ingest nodes" in doc["text"]
    assert report.archived == [row["story_id"]]
    wayback_calls = [r for r, _ in httpserver.log if r.path == "/wayback/available"]
    assert wayback_calls[0].args["url"] == original


def test_dead_link_then_recovered(db, settings, tmp_path, httpserver):
    state = {"alive": False}

    def handler(request: Request) -> Response:
        if state["alive"]:
            return Response(article("Back", "The page came back."), content_type="text/html")
        return Response("no", status=404)

    httpserver.expect_request("/flaky").respond_with_handler(handler)
    httpserver.expect_request("/wayback/available").respond_with_json({"archived_snapshots": {}})
    url = httpserver.url_for("/flaky")
    settings = crawl_settings(settings).with_(wayback_api=httpserver.url_for("/wayback/available"))
    ingest_sources(db, [make_list(tmp_path, [url])], settings)
    first = fetch_stories(db, settings)
    assert page(db, url)["link_status"] == "dead"
    assert len(first.newly_dead) == 1
    state["alive"] = True
    second = fetch_stories(db, settings)
    assert page(db, url)["link_status"] == "live"
    assert second.recovered == first.newly_dead
    assert page(db, url)["dead_since"] is None


def test_private_address_is_refused_without_a_request(db, settings, tmp_path, httpserver):
    httpserver.expect_request("/secret").respond_with_data("internal")
    url = httpserver.url_for("/secret")
    ingest_sources(db, [make_list(tmp_path, [url])], settings)
    report = fetch_stories(db, settings.with_(delay=0.0))
    assert page(db, url)["link_status"] == "refused"
    assert len(report.refused) == 1
    assert httpserver.log == []


def test_robots_disallowed_page_is_blocked_not_fetched(db, settings, tmp_path, httpserver):
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    httpserver.expect_request("/private/x").respond_with_data("secret")
    url = httpserver.url_for("/private/x")
    settings = crawl_settings(settings)
    ingest_sources(db, [make_list(tmp_path, [url])], settings)
    report = fetch_stories(db, settings)
    assert page(db, url)["link_status"] == "blocked"
    assert len(report.blocked) == 1
    assert [r.path for r, _ in httpserver.log] == ["/robots.txt"]


def test_extract_reruns_offline_from_stored_bodies(db, settings, tmp_path, httpserver):
    httpserver.expect_request("/a").respond_with_data(
        article("Alpha", "Feature values drifted quietly."), content_type="text/html"
    )
    url = httpserver.url_for("/a")
    settings = crawl_settings(settings)
    ingest_sources(db, [make_list(tmp_path, [url])], settings)
    fetch_stories(db, settings)
    httpserver.stop()  # no network from here on
    try:
        assert extract_stored(db).extracted == 0  # everything current
        db.execute("UPDATE documents SET text = NULL, extractor_version = 'old'")
        report = extract_stored(db)
        assert report.extracted == 1
        assert "drifted quietly" in next(db["documents"].rows)["text"]
        assert extract_stored(db, everything=True).extracted == 1
    finally:
        httpserver.start()


def test_second_crawl_on_the_same_database_refuses_with_a_clear_message(settings):
    with crawl_lock(settings.db_path):
        with pytest.raises(LockedError, match="another crawl is running"):
            with crawl_lock(settings.db_path):
                pass
    with crawl_lock(settings.db_path):  # released: can be taken again
        pass


def test_cli_fetch_reports_lock_as_one_line_error(settings, tmp_path):
    db_path = tmp_path / "kb.db"
    with crawl_lock(db_path):
        result = CliRunner().invoke(cli, ["fetch", "--db", str(db_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: another crawl is running on")


@pytest.fixture
def slow_site():
    """A threaded server whose pages each take a while: time to kill a crawl mid-way."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            with lock:
                hits[self.path] += 1
            if self.path == "/robots.txt":
                self.send_response(404)
                self.end_headers()
                return
            time.sleep(0.25)
            body = article(self.path, f"Story at {self.path} with its own text.").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_crawl_killed_with_sigkill_resumes_without_loss_or_duplicates(tmp_path, slow_site):
    base, hits = slow_site
    urls = [f"{base}/p{i}" for i in range(24)]
    listing = make_list(tmp_path, urls)
    db_path = tmp_path / "kb.db"
    command = [
        sys.executable, "-m", "mlopsmortem", "crawl", listing.location, "--db", str(db_path),
        "--allow-host", "127.0.0.1", "--delay", "0", "--concurrency", "2", "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    done_before: set[str] = set()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if db_path.exists():
            try:
                with sqlite3.connect(db_path) as conn:
                    done_before = {r[0] for r in conn.execute(STORED)}
            except sqlite3.OperationalError:
                continue
            if len(done_before) >= 6:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 6 <= len(done_before) < len(urls), "the crawl was not killed mid-way"
    with sqlite3.connect(db_path) as conn:
        done_before = {r[0] for r in conn.execute(STORED)}

    result = subprocess.run([*command[:-1], "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT url, COUNT(*) FROM pages GROUP BY url").fetchall()
        stories = conn.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
        documents = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]
    assert len(rows) == len(urls) and all(count == 1 for _, count in rows)
    assert stories == documents == len(urls)
    for url in done_before:  # finished before the kill: not fetched again
        assert hits[url.removeprefix(base)] == 1, url
    assert statuses == ["interrupted", "ok"]
    report = json.loads(result.stdout)
    assert report["new_stories"] == 0
