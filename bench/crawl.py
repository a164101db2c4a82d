"""Crawl benchmark: 1,000 generated pages on local servers (not a test; prints figures).

- pages/s at concurrency 1 and 16, per-host delay disabled, and their ratio;
- a second, unchanged crawl as a ratio of the first crawl's time (target: >= 10x faster),
  the share of its requests that were conditional (target: 100 %) and re-extractions
  (target: 0);
- peak RSS of the process (target: < 500 MB);
- resume: a crawl killed twice (SIGKILL) and resumed stores exactly what the uninterrupted
  crawl stored (target: 0 differences), fetching no page that either killed run stored;
- host down: with every server stopped, a re-crawl keeps every story's link status, text
  and passages (target: 0 lost).

The pages are spread over eight servers on 127.0.0.1 .. 127.0.0.8, because the crawler allows
at most two requests at once per host. Run: .venv/bin/python -m bench.crawl [--pages N]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Process, Queue, Value
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from mlopsmortem.crawl.scheduler import fetch_stories
from mlopsmortem.db import open_db
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.pipeline import run_fetch
from mlopsmortem.settings import Settings

HOSTS = [f"127.0.0.{i}" for i in range(1, 9)]
# Realistic pages: the demo site's articles with all their chrome, each copy made distinct.
DEMO_PAGES = sorted((Path(__file__).resolve().parents[1] / "data/demo/site").glob("*/*.html"))
TEMPLATES = [p.read_bytes() for p in DEMO_PAGES if b"windows-1252" not in p.read_bytes()[:600]]


def page_html(index: int) -> bytes:
    template = TEMPLATES[index % len(TEMPLATES)]
    marker = f"<p>Copy {index} of this story, served for the crawl benchmark.</p>".encode()
    return template.replace(b"</h1>", b"</h1>" + marker, 1)


def make_handler(counts: dict[str, Synchronized]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/robots.txt":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            index = int(self.path.rsplit("/", 1)[-1].split(".")[0])
            body = page_html(index)
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            counter = counts["conditional" if self.headers.get("If-None-Match") else "plain"]
            with counter.get_lock():
                counter.value += 1
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(counts: dict[str, Synchronized], ports: Queue) -> None:
    """The servers run in their own process, so they do not compete with the crawler for
    the interpreter lock: the figures are the crawler's."""
    servers = []
    for host in HOSTS:
        server = ThreadingHTTPServer((host, 0), make_handler(counts))
        server.daemon_threads = True
        server.handle_error = lambda *_: None  # type: ignore[method-assign]  # killed clients
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    ports.put(
        [f"http://{host}:{s.server_address[1]}" for host, s in zip(HOSTS, servers, strict=True)]
    )
    threading.Event().wait()  # until terminated


def start_servers() -> tuple[Process, list[str], dict[str, Synchronized]]:
    counts = {"conditional": Value("i", 0), "plain": Value("i", 0)}
    ports: Queue = Queue()
    process = Process(target=serve, args=(counts, ports), daemon=True)
    process.start()
    return process, ports.get(timeout=30), counts


def write_list(path: Path, bases: list[str], pages: int) -> SourceSpec:
    lines = ["# Generated list", ""]
    for i in range(pages):
        base = bases[i % len(bases)]
        lines.append(f"* [Incident {i} - Org {i % 17} - blog post 2021]({base}/posts/{i}.html)")
    path.write_text("\n".join(lines) + "\n")
    return SourceSpec(name="bench", location=str(path), format="afs")


def timed_crawl(db_path: Path, spec: SourceSpec, settings: Settings) -> tuple[float, object]:
    db = open_db(db_path)
    ingest_sources(db, [spec], settings)
    started = time.perf_counter()
    report = fetch_stories(db, settings)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed, report


STATE_SQL = (
    "SELECT p.story_id, p.link_status, p.content_hash, d.text_hash FROM pages p "
    "LEFT JOIN documents d ON d.story_id = p.story_id"
)


def crawl_state(db_path: Path) -> set[tuple]:
    """What a crawl leaves per story: link status, body hash, (chrome-filtered) text hash."""
    db = open_db(db_path)
    state = set(db.execute(STATE_SQL).fetchall())
    db.close()
    return state


def _fetch_in_child(settings: Settings) -> None:
    run_fetch(settings)


def stored_pages(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path) as conn:
            return conn.execute("SELECT COUNT(*) FROM page_bodies").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet


def killed_twice_then_resumed(
    db_path: Path, spec: SourceSpec, settings: Settings, pages: int
) -> tuple[set[tuple], int, int]:
    """Crawl in a child process killed (SIGKILL) at a third and at two thirds of the pages,
    then resume here. Returns the final state, the pages stored before the resumed run and
    the pages it fetched."""
    settings = settings.with_(db_path=db_path)
    db = open_db(db_path)
    ingest_sources(db, [spec], settings)
    db.close()
    for share in (1 / 3, 2 / 3):
        child = Process(target=_fetch_in_child, args=(settings,))
        child.start()
        while child.is_alive() and stored_pages(db_path) < pages * share:
            time.sleep(0.05)
        child.kill()
        child.join()
    stored_before = stored_pages(db_path)
    resumed = run_fetch(settings)
    return crawl_state(db_path), stored_before, resumed.crawl.total


def knowledge(db_path: Path, settings: Settings) -> dict[str, tuple]:
    """Per story: link status, document text and passage texts."""
    db = open_db(db_path)
    sync_passages(db, settings=settings.with_(db_path=db_path))
    passages: dict[str, list[str]] = {}
    for sid, text in db.execute("SELECT story_id, text FROM passages ORDER BY story_id, seq"):
        passages.setdefault(sid, []).append(text)
    out = {
        sid: (status, text, tuple(passages.get(sid, ())))
        for sid, status, text in db.execute(
            "SELECT p.story_id, p.link_status, d.text FROM pages p "
            "LEFT JOIN documents d ON d.story_id = p.story_id"
        )
    }
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args()
    process, bases, counts = start_servers()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        spec = write_list(tmpdir / "list.md", bases, args.pages)
        base_settings = Settings(
            db_path=tmpdir / "unused.db",
            quiet=True,
            delay=0.0,
            allow_hosts=frozenset(HOSTS),
        )
        results = {}
        for concurrency in (1, 16):
            settings = base_settings.with_(concurrency=concurrency)
            elapsed, report = timed_crawl(tmpdir / f"c{concurrency}.db", spec, settings)
            results[concurrency] = elapsed
            print(
                f"first crawl, concurrency {concurrency:>2}: {args.pages / elapsed:7.1f} pages/s "
                f"({elapsed:.1f} s, {len(report.changed)} pages stored)"
            )
        print(f"concurrency 16 / concurrency 1 throughput: {results[1] / results[16]:.2f}x")

        for counter in counts.values():
            counter.value = 0
        settings = base_settings.with_(concurrency=16)
        db_path = tmpdir / "c16.db"
        before = dict(open_db(db_path).execute("SELECT story_id, extracted_at FROM documents"))
        elapsed, report = timed_crawl(db_path, spec, settings)
        after = dict(open_db(db_path).execute("SELECT story_id, extracted_at FROM documents"))
        conditional = counts["conditional"].value
        total = conditional + counts["plain"].value
        reextracted = sum(1 for sid, when in after.items() if before.get(sid) != when)
        print(
            f"second, unchanged crawl: {elapsed:.2f} s = {results[16] / elapsed:.1f}x faster "
            f"than the first; conditional requests {conditional}/{total} "
            f"({100 * conditional / max(total, 1):.0f} %), "
            f"not modified {report.not_modified}, re-extractions {reextracted}"
        )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak_mb:.0f} MB")

        clean = crawl_state(db_path)
        state, stored_before, fetched = killed_twice_then_resumed(
            tmpdir / "resumed.db", spec, settings, args.pages
        )
        print(
            f"killed twice, then resumed: {len(state ^ clean)} differences from the "
            f"uninterrupted crawl; {stored_before} pages stored before the kills, the resumed "
            f"run fetched {fetched} ({args.pages - stored_before} not stored yet)"
        )

        before_down = knowledge(db_path, settings)
        process.terminate()  # every host is down from here on
        process.join()
        started = time.perf_counter()
        down = fetch_stories(open_db(db_path), settings.with_(max_tries=1))
        after_down = knowledge(db_path, settings)
        lost = [sid for sid, known in before_down.items() if after_down.get(sid) != known]
        print(
            f"crawl with every host down ({time.perf_counter() - started:.1f} s): "
            f"{len(down.failing)} failing with their last good state kept, "
            f"{len(down.newly_dead)} newly dead, {len(lost)} stories lost status, text or "
            f"passages (of {len(before_down)})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
