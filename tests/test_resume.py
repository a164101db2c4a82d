"""Interrupted crawls: Ctrl-C says a rerun resumes, and a crawl killed twice (once in the middle
of an archive lookup) then resumed ends with exactly what an uninterrupted crawl stores."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.demo import DemoHandler, SiteRules, demo_list_text
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.pipeline import run_fetch
from mlopsmortem.settings import Settings

from .conftest import REPO_ROOT

DEMO = REPO_ROOT / "data" / "demo"
STORED = "SELECT url, link_status FROM pages"


class GatedSite:
    """The demo site, counting requests per path, whose fake Wayback API answers only once
    `gate` is set: a crawl can be killed while it waits for an archive lookup."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.gate = threading.Event()
        self.asked = threading.Event()
        outer = self

        class Handler(DemoHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits[self.path.split("?")[0]] += 1
                super().do_GET()

            def _wayback(self, url: str, head: bool) -> None:
                outer.asked.set()
                outer.gate.wait(60)
                super()._wayback(url, head)

            def handle_error(self, *args: object) -> None:
                pass  # the killed crawl hung up on us

        site_dir = (DEMO / "site").resolve()
        handler = partial(Handler, site_dir=site_dir, rules=SiteRules.load(site_dir))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # type: ignore[method-assign]
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gated_site() -> Iterator[GatedSite]:
    site = GatedSite()
    yield site
    site.close()


def crawl_command(db_path: Path, list_path: Path, site_base: str) -> list[str]:
    return [
        sys.executable, "-m", "mlopsmortem", "crawl", str(list_path), "--db", str(db_path),
        "--allow-host", "127.0.0.1", "--delay", "0", "--concurrency", "2",
        "--wayback-api", f"{site_base}wayback/available", "--quiet",
    ]  # fmt: skip


def stored(db_path: Path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(db_path) as conn:
            return conn.execute(STORED).fetchall()
    except sqlite3.OperationalError:
        return []  # not created or not migrated yet


def kill_when(proc: subprocess.Popen, ready, sig: int = signal.SIGKILL) -> None:
    deadline = time.monotonic() + 90
    while not ready():
        assert proc.poll() is None, "the crawl ended before it could be interrupted"
        assert time.monotonic() < deadline, "the crawl never reached the point to kill it"
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=60)


def final_state(db) -> dict[str, object]:
    """Everything a crawl leaves that later stages and readers use, keyed by story."""
    return {
        "pages": sorted(
            db.execute(
                "SELECT story_id, link_status, status_code, final_url, archive_url, content_hash "
                "FROM pages"
            ).fetchall()
        ),
        "documents": sorted(
            db.execute("SELECT story_id, text_hash, word_count FROM documents").fetchall()
        ),
        "passages": sorted(
            db.execute("SELECT story_id, seq, kind, text_hash FROM passages").fetchall()
        ),
        "chrome": sorted(db.execute("SELECT host, block_hash, pages FROM site_chrome").fetchall()),
        "pending": db.execute("SELECT COUNT(*) FROM extracted_texts WHERE pending = 1").fetchone(),
    }


def test_a_demo_crawl_killed_twice_then_resumed_ends_as_an_uninterrupted_one(
    tmp_path, gated_site
) -> None:
    list_path = tmp_path / "list.md"
    list_path.write_text(demo_list_text(DEMO / "list.md", gated_site.base))
    db_path = tmp_path / "resumed.db"
    command = crawl_command(db_path, list_path, gated_site.base)

    # first kill: a few pages in
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    kill_when(first, lambda: len(stored(db_path)) >= 8)
    after_first = {url for url, status in stored(db_path) if status in ("live", "redirected")}
    # second kill: while it waits for the archive's answer about a dead page
    gated_site.asked.clear()
    second = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    kill_when(second, gated_site.asked.is_set)
    rows = stored(db_path)
    assert "dead" in {status for _, status in rows}  # stored, its archive lookup in flight
    done = {url for url, status in rows if status in ("live", "redirected")}
    assert after_first < done and len(done) < 44, "not killed mid-way"

    hits_before = Counter(gated_site.hits)
    gated_site.gate.set()
    settings = Settings(db_path=db_path, quiet=True).with_(
        allow_hosts=frozenset({"127.0.0.1"}),
        delay=0.0,
        wayback_api=f"{gated_site.base}wayback/available",
    )
    resumed = run_fetch(settings)
    assert resumed.crawl.resumed
    origin = gated_site.base.rstrip("/")
    for url in done:  # stored by either killed run: not fetched again
        path = url.removeprefix(origin)
        assert gated_site.hits[path] == hits_before[path], url
    for url in after_first:  # not even by the second run (it was in flight if more)
        assert gated_site.hits[url.removeprefix(origin)] == 1, url
    db = open_db(db_path)
    sync_passages(db, settings=settings)
    statuses = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY id")]
    assert statuses == ["interrupted", "interrupted", "ok"]

    clean_settings = settings.with_(db_path=tmp_path / "clean.db")
    clean = open_db(clean_settings.db_path)
    ingest_sources(clean, [SourceSpec("list", str(list_path.resolve()))], clean_settings)
    run_fetch(clean_settings)
    sync_passages(clean, settings=clean_settings)

    got, want = final_state(db.conn), final_state(clean.conn)
    for key in want:
        assert got[key] == want[key], key
    links = Counter(r[1] for r in want["pages"])  # type: ignore[union-attr]
    assert links == {"live": 42, "redirected": 1, "archived": 1, "dead": 1}


@pytest.fixture
def slow_site() -> Iterator[tuple[str, Counter[str]]]:
    """Pages that each take a while: time to press Ctrl-C mid-way."""
    from http.server import BaseHTTPRequestHandler

    hits: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits[self.path] += 1
            if self.path == "/robots.txt":
                self.send_response(404)
                self.end_headers()
                return
            time.sleep(0.2)
            body = (
                f"<html><body><article><h1>{self.path}</h1>"
                + "".join(f"<p>What happened at {self.path}, part {i}.</p>" for i in range(5))
                + "</article></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_ctrl_c_says_a_rerun_resumes_and_the_rerun_does(tmp_path, slow_site) -> None:
    base, hits = slow_site
    list_path = tmp_path / "list.md"
    list_path.write_text(
        "# List\n\n" + "".join(f"* [Story {i} - Org - blog 2021]({base}/p{i})\n" for i in range(20))
    )
    db_path = tmp_path / "kb.db"
    command = [*crawl_command(db_path, list_path, base + "/")]
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    kill_when(proc, lambda: len(stored(db_path)) >= 4, signal.SIGINT)
    message = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 1
    assert "interrupted" in message and "run the same command again to resume" in message
    assert "Traceback" not in message
    done = {url for url, _ in stored(db_path)}
    with sqlite3.connect(db_path) as conn:
        assert [r[0] for r in conn.execute("SELECT status FROM runs")] == ["interrupted"]

    # `fetch` resumes as `crawl` does (the list was read before Ctrl-C), without the model
    rerun = [arg if arg != "crawl" else "fetch" for arg in command if arg != str(list_path)]
    result = subprocess.run(rerun[:-1], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "resumed an interrupted run" in result.stdout
    for url in done:
        assert hits[url.removeprefix(base)] == 1, url
    assert len(stored(db_path)) == 20
