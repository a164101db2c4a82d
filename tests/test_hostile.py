"""Hostile pages, lists and bodies served on 127.0.0.1 (attack review, issue 17 items 13-17, 19).

Each case must fail (or be cut) on its own, with a recorded reason, while the crawl goes on.
Decompression bombs run in a child process whose peak RSS is asserted, so a regression shows
as a number, not as a machine out of memory.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import json
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from mlopsmortem.crawl.scheduler import fetch_stories
from mlopsmortem.errors import RefusedURL, SourceError
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources, read_source
from tests.support.fetching import ThreadedServer, fetch, make_settings, send

# Peak resident memory a child may reach while a bomb goes off (the bombs inflate to 512 MiB).
MAX_RSS_MB = 300
BOMB_BYTES = 512 << 20
HOSTILE_TARGETS = [
    "mailto:ops@example.org",
    "tel:+15550100",
    "data:text/html,<h1>hi</h1>",
    "javascript:alert(1)",
    "about:blank",
    "http://xn--ls8h.la/",
    "http://[::1",
    "http://127.0.0.1:99999/",
]
BYTES_CODECS = ["rot13", "base64", "hex", "uu", "bz2", "zlib", "quopri"]
PAGE = (
    "<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
    + "<p>The resolver cache expired and every lookup failed for an hour.</p>" * 5
    + "</article></body></html>"
)


@functools.cache
def gzip_gzip_bomb() -> bytes:
    """~1.8 kB that `Content-Encoding: gzip, gzip` turns into BOMB_BYTES zero bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    inner = b"".join(packer.compress(zeros) for _ in range(BOMB_BYTES >> 20)) + packer.flush()
    return gzip.compress(inner, 9)


@functools.cache
def gzip_list_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 512 MiB of markdown list items."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    items = b"* " * (1 << 19)
    return b"".join(packer.compress(items) for _ in range(512)) + packer.flush()


def run_child(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line, to which the child's peak
    RSS (MB, Linux) is added. Address space is capped so a regression cannot take the machine."""
    prologue = textwrap.dedent(
        r"""
        import json, re, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        def report(**values):
            # VmHWM, not ru_maxrss: Linux keeps the forking parent's peak in ru_maxrss
            # across exec, so a big pytest process would mask (or fail) the child's figure.
            with open("/proc/self/status") as status:
                peak = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1)) / 1024
            print(json.dumps({**values, "rss_mb": peak}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def hostile_site(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """/to?<target>: a redirect there; /charset/<label>: a page declaring that charset;
    /bomb: a gzip-in-gzip body; anything else: a plain article."""
    path = handler.path
    if path == "/robots.txt":
        send(handler, 404)
    elif path.startswith("/to?"):
        handler.send_response(302)
        handler.send_header("Location", unquote(path[4:]))
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    elif path.startswith("/charset/"):
        label = path.rsplit("/", 1)[1]
        body = f"<meta charset={label}>{PAGE.format(title=label)}".encode()
        if label == "bz2":  # a real bz2 stream: the codec would inflate it
            body = bz2.compress(bytes(1 << 20))
        handler.send_response(200)
        handler.send_header("Content-Type", f"text/html; charset={label}")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    elif path == "/bomb":
        body = gzip_gzip_bomb()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Encoding", "gzip, gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    else:
        send(handler, 200, PAGE.format(title=path).encode())


# -- item 13: one hostile page fails alone ----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("target", HOSTILE_TARGETS)
async def test_redirect_to_a_hostile_target_is_refused(target: str) -> None:
    with ThreadedServer(hostile_site) as server:
        with pytest.raises(RefusedURL):
            await fetch(server.url("/to?" + quote(target, safe="")), make_settings())


@pytest.mark.asyncio
async def test_redirect_to_http_colon_foo_resolves_relative_like_a_browser() -> None:
    with ThreadedServer(hostile_site) as server:
        result = await fetch(server.url("/to?http:foo"), make_settings())
    assert result.status_code == 200
    assert result.final_url.endswith("/foo")


@pytest.mark.asyncio
async def test_idna_invalid_host_is_refused_before_any_request() -> None:
    with pytest.raises(RefusedURL, match="IDNA"):
        await fetch("http://xn--ls8h.la/", make_settings())


def test_hostile_pages_fail_alone_and_the_crawl_goes_on(db, settings, tmp_path) -> None:
    with ThreadedServer(hostile_site) as server:
        urls = [server.url("/good")]
        urls += [server.url("/to?" + quote(target, safe="")) for target in HOSTILE_TARGETS]
        urls += [server.url(f"/charset/{label}") for label in BYTES_CODECS]
        urls += ["http://xn--ls8h.la/story", server.url("/last")]
        lines = ["# Hostile", ""] + [
            f"* [Story {i} - Org - blog 2021]({u})" for i, u in enumerate(urls)
        ]
        path = tmp_path / "hostile.md"
        path.write_text("\n".join(lines) + "\n")
        crawl = settings.with_(allow_hosts=frozenset({"127.0.0.1"}), delay=0.0, max_tries=1)
        ingest_sources(db, [SourceSpec("hostile", str(path), "afs")], crawl)
        fetch_stories(db, crawl)
    pages = {
        row["url"]: row
        for row in db.query("SELECT url, link_status, error_kind, error_message FROM pages")
    }
    assert len(pages) == len(urls)
    by_suffix = {url.rsplit("/", 1)[-1]: row for url, row in pages.items()}
    assert by_suffix["good"]["link_status"] == "live"
    assert by_suffix["last"]["link_status"] == "live"
    for url, row in pages.items():
        if "/to%3F" in url or "/to?" in url or "xn--ls8h" in url:
            assert row["link_status"] == "refused", url
            assert row["error_kind"] == "refused" and row["error_message"], url
    texts = {
        row["url"]: row["text"]
        for row in db.query(
            "SELECT p.url, d.text FROM pages p JOIN documents d ON d.story_id = p.story_id"
        )
    }
    for label in BYTES_CODECS:
        text = texts[server.url(f"/charset/{label}")]
        assert text is None or isinstance(text, str)
        if label != "bz2":  # the page is plain UTF-8 whatever it declares
            assert "resolver cache expired" in text


# -- item 14: decompression bombs -------------------------------------------------------------


def test_gzip_in_gzip_bomb_is_cut_at_max_bytes_while_streaming() -> None:
    child = """
        import asyncio
        from tests.support.fetching import fetch, make_settings
        result = asyncio.run(fetch(sys.argv[1], make_settings(max_bytes=10_000_000)))
        report(length=len(result.body), truncated=result.truncated)
    """
    gzip_gzip_bomb()  # built before the clock of the child starts
    with ThreadedServer(hostile_site) as server:
        outcome = run_child(child, server.url("/bomb"))
    assert len(gzip_gzip_bomb()) < 4000
    assert outcome["truncated"] is True
    assert outcome["length"] == 10_000_000
    assert outcome["rss_mb"] < MAX_RSS_MB, outcome


@pytest.mark.parametrize("codec", ["bz2", "zlib"])
def test_page_declaring_a_compression_codec_as_charset_is_not_inflated(codec: str) -> None:
    child = """
        import bz2, zlib
        from mlopsmortem.extract.dispatch import extract_document
        codec = sys.argv[1]
        packer = bz2.BZ2Compressor(9) if codec == "bz2" else zlib.compressobj(9)
        zeros = bytes(1 << 20)
        body = b"".join(packer.compress(zeros) for _ in range(512)) + packer.flush()
        document = extract_document(body, f"text/html; charset={codec}", "http://x/")
        report(size=len(body), text=document.text)
    """
    outcome = run_child(child, codec)
    assert outcome["size"] < 600_000  # a bomb: 512 MiB once inflated
    assert outcome["rss_mb"] < MAX_RSS_MB, outcome


# -- item 15: list URLs go through the guarded, capped, timed transport ----------------------


def list_site(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """/drip: a list one byte at a time; /huge: a gzip bomb list; /list: a small list."""
    if handler.path == "/drip":
        handler.send_response(200)
        handler.send_header("Content-Length", "40")
        handler.end_headers()
        for _ in range(40):
            if stop.is_set():
                return
            try:
                handler.wfile.write(b"#")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.25)
    elif handler.path == "/huge":
        body = gzip_list_bomb()
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    else:
        send(handler, 200, b"# List\n\n* [A story - Org - blog 2021](https://a.example/s)\n")


def test_a_dripping_list_hits_the_page_deadline() -> None:
    settings = make_settings(page_timeout=1.0, read_timeout=2.0, max_tries=1)
    with ThreadedServer(list_site) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match="timeout|not complete"):
            read_source(SourceSpec("drip", server.url("/drip")), settings)
    assert time.monotonic() - started < 4.0


def test_a_list_bomb_is_refused_within_max_bytes() -> None:
    child = """
        from mlopsmortem.errors import SourceError
        from mlopsmortem.lists.ingest import SourceSpec, read_source
        from tests.support.fetching import make_settings
        try:
            read_source(SourceSpec("huge", sys.argv[1]), make_settings(max_bytes=10_000_000))
            report(error=None)
        except SourceError as err:
            report(error=str(err))
    """
    gzip_list_bomb()  # built before the child's read timeout starts
    with ThreadedServer(list_site) as server:
        outcome = run_child(child, server.url("/huge"))
    assert "larger than 10000000 bytes" in outcome["error"]
    assert outcome["rss_mb"] < MAX_RSS_MB, outcome


def test_a_list_host_is_resolved_once_at_connect_time(monkeypatch) -> None:
    """DNS rebinding: the address checked must be the address connected to."""
    import socket

    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "169.254.169.254"])  # then the cloud metadata service

    def rebinding(host, port, *args, **kwargs):
        if host == "lists.rebind.test":
            address = next(answers, "169.254.169.254")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings = make_settings(allow_hosts=frozenset({"lists.rebind.test"}), max_tries=1)
    with ThreadedServer(list_site) as server:
        port = server.httpd.server_address[1]
        text = read_source(SourceSpec("l", f"http://lists.rebind.test:{port}/list"), settings)
    assert "A story" in text.text
    assert next(answers) == "169.254.169.254"  # the second answer was never asked for


# -- item 16: quadratic work -----------------------------------------------------------------


def test_a_page_of_many_short_blocks_falls_back_to_block_text_within_budget() -> None:
    from mlopsmortem.extract.htmltext import HtmlOptions, extract_html

    blocks = "".join(f"<div><a href='/{i}'>l{i}</a> word{i}<b>b</b></div>" for i in range(40_000))
    body = f"<html><head><title>Many</title></head><body>{blocks}</body></html>".encode()
    started = time.monotonic()
    document = extract_html(body, "text/html", "http://x/", HtmlOptions(time_budget=0.5))
    elapsed = time.monotonic() - started
    assert document.extractor == "blocks"
    assert document.title == "Many"
    assert document.text is not None
    assert document.text.startswith("l0 word0b\n\nl1 word1b")
    assert document.text.endswith("l39999 word39999b")
    assert elapsed < 6.0  # trafilatura alone takes about 9 s on this page


def test_the_time_budget_never_fires_after_its_block() -> None:
    from mlopsmortem.extract.budget import OutOfTime, time_budget

    with time_budget(0.2):
        pass
    time.sleep(0.4)  # nothing may arrive now
    with pytest.raises(OutOfTime):
        with time_budget(0.2):
            while True:
                sum(range(100))
    time.sleep(0.4)


def test_one_item_with_thousands_of_links_stores_bounded_text_per_link(db, settings, tmp_path):
    from mlopsmortem.lists.ingest import MAX_ENTRY_TEXT

    links = " ".join(f"[story {i}](https://h{i}.example/p)" for i in range(2000))
    path = tmp_path / "many.md"
    path.write_text(f"# Many\n\n* Incidents: {links}\n")
    ingest_sources(db, [SourceSpec("many", str(path), "generic")], settings)
    rows = list(db.query("SELECT list_text, summary FROM story_sources"))
    assert len(rows) == 2000
    assert max(len(r["list_text"]) for r in rows) <= MAX_ENTRY_TEXT
    assert max(len(r["summary"] or "") for r in rows) <= MAX_ENTRY_TEXT
    assert Path(settings.db_path).stat().st_size < 40_000_000


# -- item 19: fetch what the list wrote; pypdf stays quiet ------------------------------------


def test_a_bare_query_name_is_fetched_without_an_added_equals_sign(db, settings, tmp_path):
    seen: list[str] = []

    def site(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        seen.append(handler.path)
        send(handler, 404 if handler.path == "/robots.txt" else 200, PAGE.encode())

    with ThreadedServer(site) as server:
        path = tmp_path / "q.md"
        path.write_text(
            f"# Q\n\n* [Query - Org - blog 2021]({server.url('/incidents/642?1024')})\n"
        )
        crawl = settings.with_(allow_hosts=frozenset({"127.0.0.1"}), delay=0.0, max_tries=1)
        ingest_sources(db, [SourceSpec("q", str(path), "afs")], crawl)
        fetch_stories(db, crawl)
    assert "/incidents/642?1024" in seen
    assert "/incidents/642?1024=" not in seen


def test_pypdf_warnings_on_a_hostile_pdf_do_not_reach_stderr() -> None:
    objects = [
        b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n",
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n",
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n",
    ]
    pdf = b"%PDF-1.4\n"
    offsets = []
    for obj in objects:
        offsets.append(len(pdf))
        pdf += obj
    xref_at, count = len(pdf), 2000
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (count + 1)
    for number in range(1, count + 1):  # every object past 3 points at the wrong place
        pdf += b"%010d 00000 n \n" % (offsets[number - 1] if number <= 3 else 7 + number)
    pdf += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (count + 1, xref_at)
    path = Path(__file__).resolve().parents[1]
    code = (
        "import logging, sys\n"
        "from mlopsmortem.extract.pdftext import extract_pdf\n"
        "records = []\n"
        "class Keep(logging.Handler):\n"
        "    def emit(self, record): records.append(record.levelno)\n"
        "logging.getLogger('mlopsmortem').addHandler(Keep())\n"
        "logging.getLogger('mlopsmortem').setLevel(logging.DEBUG)\n"
        "extract_pdf(sys.stdin.buffer.read())\n"
        "print(len(records), max(records, default=0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=pdf, capture_output=True, timeout=120, cwd=path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == b""
    debug_records, highest = map(int, done.stdout.split())
    assert debug_records > 100
    assert highest == 10  # logging.DEBUG
