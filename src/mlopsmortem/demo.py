"""The offline demo: serve the bundled sample site on 127.0.0.1 and crawl it like a real one.

The demo site (`data/demo/site/`) is static, plus two behaviours a static server lacks: the
redirects listed in `_redirects.tsv`, and a fake Wayback Machine availability API at
`/wayback/available` answering from `_wayback.tsv`, so that a dead link can be recovered from
an archived snapshot without the internet.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mlopsmortem.errors import PortInUseError

DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8017
DEMO_BASE = f"http://{DEMO_HOST}:{DEMO_PORT}/"


@dataclass(frozen=True)
class SiteRules:
    """Redirects and archive snapshots of the demo site, read from its TSV files."""

    redirects: dict[str, tuple[str, int]]
    snapshots: dict[str, tuple[str, str]]  # path of the original URL -> (timestamp, path)

    @classmethod
    def load(cls, site_dir: Path) -> SiteRules:
        redirects: dict[str, tuple[str, int]] = {}
        for fields in _tsv_rows(site_dir / "_redirects.tsv"):
            status = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 301
            redirects[fields[0]] = (fields[1], status)
        snapshots: dict[str, tuple[str, str]] = {}
        for fields in _tsv_rows(site_dir / "_wayback.tsv"):
            if len(fields) >= 3:
                snapshots[urlsplit(fields[0]).path] = (fields[1], fields[2])
        return cls(redirects, snapshots)


def _tsv_rows(path: Path) -> Iterator[list[str]]:
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        # skip comments, blank lines and a header row
        if not line.strip() or line.startswith("#") or not fields[0].startswith(("/", "http")):
            continue
        yield fields


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "mlopsmortem-demo"

    def __init__(self, *args: object, site_dir: Path, rules: SiteRules, **kwargs: object):
        self.site_dir = site_dir
        self.rules = rules
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the demo's own progress bar says what is happening."""

    def _send(
        self, status: int, body: bytes, content_type: str, head: bool = False, etag: str = ""
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/wayback/available":
            self._wayback(parse_qs(parts.query).get("url", [""])[0], head)
            return
        if path in self.rules.redirects:
            target, status = self.rules.redirects[path]
            self.send_response(status)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.endswith("/"):
            path += "index.html"
        file = (self.site_dir / path.lstrip("/")).resolve()
        if (
            not file.is_relative_to(self.site_dir)
            or not file.is_file()
            or file.name.startswith("_")
        ):
            self._send(404, b"<h1>404 Not Found</h1>", "text/html; charset=utf-8", head)
            return
        body = file.read_bytes()
        # a strong validator, so re-crawls of the demo are conditional like real ones
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self._send(200, body, self._content_type(file, body), head, etag=etag)

    @staticmethod
    def _content_type(file: Path, body: bytes) -> str:
        guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if guessed == "text/html":
            # pages declare their charset in a <meta>; say it in the header as real servers do
            head = body[:1024].lower()
            charset = "windows-1252" if b"windows-1252" in head else "utf-8"
            if b"iso-8859-1" in head:
                charset = "iso-8859-1"
            return f"text/html; charset={charset}"
        if guessed.startswith("text/"):
            return f"{guessed}; charset=utf-8"
        return guessed

    def _wayback(self, url: str, head: bool) -> None:
        snapshot = self.rules.snapshots.get(urlsplit(url).path)
        if snapshot:
            host = self.headers.get("Host", f"{DEMO_HOST}:{DEMO_PORT}")
            closest = {
                "available": True,
                "status": "200",
                "timestamp": snapshot[0],
                "url": f"http://{host}/{snapshot[1].lstrip('/')}",
            }
            payload = {"url": url, "archived_snapshots": {"closest": closest}}
        else:
            payload = {"url": url, "archived_snapshots": {}}
        self._send(HTTPStatus.OK, json.dumps(payload).encode(), "application/json", head)


@dataclass(frozen=True)
class RunningSite:
    base_url: str  # "http://127.0.0.1:PORT/"
    port: int

    @property
    def wayback_api(self) -> str:
        return f"{self.base_url}wayback/available"


@contextmanager
def serve_site(site_dir: Path, port: int = DEMO_PORT) -> Iterator[RunningSite]:
    """Serve the demo site on 127.0.0.1:`port` (0 picks a free port) in a thread.

    Raises `PortInUseError` when the port is taken (say, by a demo already running)."""
    site = site_dir.resolve()
    handler = partial(DemoHandler, site_dir=site, rules=SiteRules.load(site))
    try:
        server = ThreadingHTTPServer((DEMO_HOST, port), handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"the demo site's port {port} on {DEMO_HOST} is already in use (another "
                f"mlopsmortem demo?): stop that program or choose another --site-port"
            ) from err
        raise PortInUseError(f"cannot serve the demo site on {DEMO_HOST}:{port}: {err}") from err
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    actual = server.server_address[1]
    try:
        yield RunningSite(f"http://{DEMO_HOST}:{actual}/", int(actual))
    finally:
        server.shutdown()
        server.server_close()


def demo_list_text(list_path: Path, base_url: str) -> str:
    """The demo list with its links pointed at wherever the site is being served."""
    return list_path.read_text(encoding="utf-8").replace(DEMO_BASE, base_url)
