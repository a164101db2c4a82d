"""Helpers for the transport tests: settings for 127.0.0.1, a fetch shortcut, and a threaded
http.server for what pytest-httpserver cannot do (drip a body, serve in parallel)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlopsmortem.crawl.fetch import Fetcher, FetchResult
from mlopsmortem.settings import Settings

LOCAL = frozenset({"127.0.0.1"})


def make_settings(**changes: object) -> Settings:
    base = Settings().with_(
        allow_hosts=LOCAL,
        delay=0.0,
        backoff_base=0.01,
        backoff_max=2.0,
        max_tries=3,
        connect_timeout=2.0,
        read_timeout=2.0,
        page_timeout=5.0,
    )
    return base.with_(**changes)


async def fetch(url: str, settings: Settings | None = None, **kwargs: object) -> FetchResult:
    async with Fetcher(settings or make_settings()) as fetcher:
        return await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]


def no_robots(server: HTTPServer) -> None:
    server.expect_request("/robots.txt").respond_with_data("", status=404)


def paths(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log]


def stamped(times: list[float], response: Response) -> Callable[[Request], Response]:
    """A handler that records when the server saw each request."""

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return response

    return handler


class ThreadedServer:
    """http.server in a thread, for what pytest-httpserver cannot do (it serves one request
    at a time and writes whole bodies): drip a body slowly, or serve requests in parallel."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, threading.Event], None]):
        self.paths: list[str] = []
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                handle(self, outer.stop)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"") -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
