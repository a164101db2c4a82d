"""HTTP transport against real local servers: robots, politeness, retries, limits, redirects."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlopsmortem.crawl.fetch import Fetcher, FetchResult, retry_after_seconds
from mlopsmortem.errors import FetchError, RefusedURL, RobotsBlocked
from mlopsmortem.settings import Settings

LOCAL = frozenset({"127.0.0.1"})


@pytest.fixture
def httpserver(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """pytest-httpserver bound to 127.0.0.1, the one host these tests allow."""
    return httpserver_ipv4


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


# -- basics -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fetch_returns_body_and_headers(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/page").respond_with_data(
        b"<p>caf\xe9</p>",
        content_type="text/html; charset=windows-1252",
        headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"},
    )
    url = httpserver.url_for("/page")
    result = await fetch(url)
    assert result.url == result.final_url == url
    assert result.status_code == 200
    assert result.body == b"<p>caf\xe9</p>"  # raw bytes: decoding is not the transport's job
    assert result.content_type == "text/html; charset=windows-1252"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert result.truncated is False
    assert result.redirects == ()
    assert result.retry_count == 0
    assert not result.not_modified


@pytest.mark.asyncio
async def test_user_agent_sent_on_pages_and_robots(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/page").respond_with_data("ok")
    await fetch(httpserver.url_for("/page"))
    agents = {request.path: request.headers.get("User-Agent", "") for request, _ in httpserver.log}
    assert set(agents) == {"/robots.txt", "/page"}
    assert all("mlopsmortem/" in agent for agent in agents.values())


@pytest.mark.asyncio
async def test_conditional_headers_sent_and_304_handled(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request(
        "/page",
        headers={"If-None-Match": '"v1"', "If-Modified-Since": "Wed, 01 Jan 2025 00:00:00 GMT"},
    ).respond_with_data("", status=304, headers={"ETag": '"v1"'})
    result = await fetch(
        httpserver.url_for("/page"), etag='"v1"', last_modified="Wed, 01 Jan 2025 00:00:00 GMT"
    )
    assert result.status_code == 304
    assert result.not_modified
    assert result.body == b""
    assert result.etag == '"v1"'
    request = httpserver.log[-1][0]
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == "Wed, 01 Jan 2025 00:00:00 GMT"


@pytest.mark.asyncio
async def test_no_conditional_headers_without_validators(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/page").respond_with_data("ok")
    await fetch(httpserver.url_for("/page"))
    request = httpserver.log[-1][0]
    assert "If-None-Match" not in request.headers
    assert "If-Modified-Since" not in request.headers


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [404, 410, 403, 400])
async def test_client_errors_are_results_not_exceptions(
    httpserver: HTTPServer, status: int
) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/gone").respond_with_data("nope", status=status)
    result = await fetch(httpserver.url_for("/gone"))
    assert result.status_code == status
    assert result.retry_count == 0
    assert paths(httpserver).count("/gone") == 1


@pytest.mark.asyncio
async def test_fetch_outside_context_manager_is_an_error() -> None:
    fetcher = Fetcher(make_settings())
    with pytest.raises(RuntimeError):
        await fetcher.fetch("http://127.0.0.1:9/", check_robots=False)


# -- robots.txt -------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "robots",
    [
        "User-agent: mlopsmortem\nDisallow: /private\n",
        "User-agent: *\nDisallow: /private\n",
    ],
)
async def test_robots_disallow_blocks_without_requesting_page(
    httpserver: HTTPServer, robots: str
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(robots)
    httpserver.expect_request("/private/page").respond_with_data("secret")
    httpserver.expect_request("/public").respond_with_data("ok")
    async with Fetcher(make_settings()) as fetcher:
        with pytest.raises(RobotsBlocked):
            await fetcher.fetch(httpserver.url_for("/private/page"))
        assert (await fetcher.fetch(httpserver.url_for("/public"))).status_code == 200
    assert "/private/page" not in paths(httpserver)
    assert paths(httpserver).count("/robots.txt") == 1  # cached per Fetcher


@pytest.mark.asyncio
async def test_robots_rules_for_other_agents_do_not_apply(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: otherbot\nDisallow: /\n"
    )
    httpserver.expect_request("/page").respond_with_data("ok")
    assert (await fetch(httpserver.url_for("/page"))).status_code == 200


@pytest.mark.asyncio
async def test_check_robots_false_skips_robots(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /\n")
    httpserver.expect_request("/page").respond_with_data("ok")
    result = await fetch(httpserver.url_for("/page"), check_robots=False)
    assert result.status_code == 200
    assert paths(httpserver) == ["/page"]


@pytest.mark.asyncio
async def test_concurrent_first_requests_share_one_robots_fetch(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    for i in range(5):
        httpserver.expect_request(f"/p{i}").respond_with_data("ok")
    async with Fetcher(make_settings(per_host_concurrency=5)) as fetcher:
        results = await asyncio.gather(
            *(fetcher.fetch(httpserver.url_for(f"/p{i}")) for i in range(5))
        )
    assert [r.status_code for r in results] == [200] * 5
    assert paths(httpserver).count("/robots.txt") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [404, 401, 403, 410])
async def test_robots_4xx_allows_all(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("denied", status=status)
    httpserver.expect_request("/page").respond_with_data("ok")
    assert (await fetch(httpserver.url_for("/page"))).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503, 429])
async def test_robots_5xx_is_unavailable_and_page_not_requested(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("oops", status=status)
    httpserver.expect_request("/page").respond_with_data("ok")
    async with Fetcher(make_settings()) as fetcher:
        for _ in range(2):
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(httpserver.url_for("/page"))
            assert info.value.kind == "robots_unavailable"
    assert "/page" not in paths(httpserver)
    # retried like any request, then remembered for the rest of the run
    assert paths(httpserver).count("/robots.txt") == 3


@pytest.mark.asyncio
async def test_robots_connection_failure_is_unavailable() -> None:
    def handle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        # Hang up without answering: a network failure, not an HTTP status.
        handler.close_connection = True
        handler.wfile.close()

    with ThreadedServer(handle) as server:
        with pytest.raises(FetchError) as info:
            await fetch(server.url("/page"))
    assert info.value.kind == "robots_unavailable"
    assert "/page" not in server.paths


@pytest.mark.asyncio
async def test_robots_of_a_redirect_target_origin_is_checked(httpserver: HTTPServer) -> None:
    def handle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if handler.path == "/robots.txt":
            send(handler, 200, b"User-agent: *\nDisallow: /private\n")
        else:
            send(handler, 200, b"secret")

    with ThreadedServer(handle) as other:
        no_robots(httpserver)
        httpserver.expect_request("/go").respond_with_data(
            "", status=302, headers={"Location": other.url("/private/x")}
        )
        with pytest.raises(RobotsBlocked):
            await fetch(httpserver.url_for("/go"))
    assert other.paths == ["/robots.txt"]


# -- politeness -------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("robots", "delay"),
    [
        ("User-agent: *\nCrawl-delay: 0.3\n", 0.0),  # robots.txt asks for more than we would
        ("User-agent: *\nAllow: /\n", 0.3),  # our own delay
    ],
)
async def test_request_starts_to_one_host_are_spaced(
    httpserver: HTTPServer, robots: str, delay: float
) -> None:
    times: list[float] = []
    httpserver.expect_request("/robots.txt").respond_with_data(robots)
    httpserver.expect_request("/a").respond_with_handler(stamped(times, Response("a")))
    httpserver.expect_request("/b").respond_with_handler(stamped(times, Response("b")))
    httpserver.expect_request("/c").respond_with_handler(stamped(times, Response("c")))
    settings = make_settings(delay=delay, per_host_concurrency=3)
    async with Fetcher(settings) as fetcher:
        await asyncio.gather(*(fetcher.fetch(httpserver.url_for(p)) for p in ("/a", "/b", "/c")))
    times.sort()
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == 2
    # Times are taken in the server thread, so allow scheduling jitter; without the delay
    # the gaps would be a millisecond or two.
    assert min(gaps) >= 0.3 - 0.02, gaps


@pytest.mark.asyncio
async def test_zero_delay_does_not_space_requests(httpserver: HTTPServer) -> None:
    times: list[float] = []
    no_robots(httpserver)
    for p in ("/a", "/b", "/c"):
        httpserver.expect_request(p).respond_with_handler(stamped(times, Response("x")))
    async with Fetcher(make_settings(delay=0.0)) as fetcher:
        await asyncio.gather(*(fetcher.fetch(httpserver.url_for(p)) for p in ("/a", "/b", "/c")))
    assert max(times) - min(times) < 0.25


@pytest.mark.asyncio
async def test_per_host_concurrency_is_limited() -> None:
    lock = threading.Lock()
    in_flight = [0]
    peak = [0]

    def handle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if handler.path == "/robots.txt":
            send(handler, 404)
            return
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.15)
        with lock:
            in_flight[0] -= 1
        send(handler, 200, b"ok")

    settings = make_settings(per_host_concurrency=2, concurrency=8)
    with ThreadedServer(handle) as server:
        async with Fetcher(settings) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(server.url(f"/p{i}")) for i in range(6)))
    assert [r.status_code for r in results] == [200] * 6
    assert peak[0] == 2


# -- retries ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    times: list[float] = []
    no_robots(httpserver)
    httpserver.expect_oneshot_request("/page").respond_with_handler(
        stamped(times, Response("slow down", status=429, headers={"Retry-After": "1"}))
    )
    httpserver.expect_request("/page").respond_with_handler(stamped(times, Response("ok")))
    result = await fetch(httpserver.url_for("/page"))
    assert result.status_code == 200
    assert result.body == b"ok"
    assert result.retry_count == 1
    assert len(times) == 2
    assert times[1] - times[0] >= 1.0 - 0.02  # Retry-After, not the 0.01 s backoff


@pytest.mark.asyncio
async def test_retry_after_is_capped_at_backoff_max(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_oneshot_request("/page").respond_with_data(
        "", status=503, headers={"Retry-After": "3600"}
    )
    httpserver.expect_request("/page").respond_with_data("ok")
    started = time.monotonic()
    result = await fetch(httpserver.url_for("/page"), make_settings(backoff_max=0.2))
    assert result.status_code == 200
    assert time.monotonic() - started < 2.0


@pytest.mark.asyncio
async def test_5xx_gives_up_after_max_tries_and_returns_status(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/page").respond_with_data("down", status=503)
    result = await fetch(httpserver.url_for("/page"))
    assert result.status_code == 503
    assert result.retry_count == 2
    assert paths(httpserver).count("/page") == 3


@pytest.mark.asyncio
async def test_connection_refused_is_retried_then_connect_error(
    unused_tcp_port: int,
) -> None:
    with pytest.raises(FetchError) as info:
        await fetch(f"http://127.0.0.1:{unused_tcp_port}/page", check_robots=False)
    assert info.value.kind == "connect"
    assert "after 3 tries" in str(info.value)


@pytest.mark.asyncio
async def test_dns_failure_is_not_retried() -> None:
    # With a 5 s backoff, a retry would be visible in the elapsed time.
    settings = make_settings(backoff_base=5.0, backoff_max=5.0, allow_hosts=frozenset())
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetch("http://no-such-host.invalid/page", settings)
    assert info.value.kind == "dns"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 01 Jan 2025 00:00:30 GMT", 30.0),
        ("Tue, 31 Dec 2024 23:59:00 GMT", 0.0),  # in the past
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds(header, now=now) == expected


def test_retry_after_date_relative_to_now() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = retry_after_seconds(soon)
    assert seconds is not None and 55 < seconds <= 60


# -- time and size limits ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_drip_page_hits_page_deadline() -> None:
    def handle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if handler.path == "/robots.txt":
            send(handler, 404)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        # One byte every 0.2 s: each read completes well within read_timeout.
        for _ in range(1000):
            if stop.is_set():
                return
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return  # the client gave up, as it should
            time.sleep(0.2)

    settings = make_settings(page_timeout=1.0, read_timeout=2.0)
    with ThreadedServer(handle) as server:
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            # The outer bound makes a missing deadline fail the test instead of hanging it.
            await asyncio.wait_for(fetch(server.url("/drip"), settings), timeout=10)
        elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert 0.9 <= elapsed < 3.0


@pytest.mark.asyncio
async def test_oversized_page_with_content_length_is_truncated(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    result = await fetch(httpserver.url_for("/big"), make_settings(max_bytes=1000))
    assert result.status_code == 200
    assert result.truncated is True
    assert len(result.body) == 1000


@pytest.mark.asyncio
async def test_oversized_streamed_page_is_truncated(httpserver: HTTPServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"y" * 1000

    no_robots(httpserver)
    # A generator body has no Content-Length: the cap must hold while streaming.
    httpserver.expect_request("/stream").respond_with_response(Response(chunks()))
    result = await fetch(httpserver.url_for("/stream"), make_settings(max_bytes=2500))
    assert result.truncated is True
    assert len(result.body) == 2500
    assert result.body == b"y" * 2500


@pytest.mark.asyncio
async def test_page_of_exactly_max_bytes_is_not_truncated(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/exact").respond_with_data(b"z" * 1000)
    result = await fetch(httpserver.url_for("/exact"), make_settings(max_bytes=1000))
    assert result.truncated is False
    assert result.body == b"z" * 1000


# -- redirects --------------------------------------------------------------------------


def redirect(server: HTTPServer, path: str, target: str, status: int = 302) -> None:
    server.expect_request(path).respond_with_data("", status=status, headers={"Location": target})


@pytest.mark.asyncio
async def test_redirects_are_followed_and_recorded(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    redirect(httpserver, "/a", "/b", 301)
    redirect(httpserver, "/b", httpserver.url_for("/c"), 308)
    httpserver.expect_request("/c").respond_with_data("done")
    result = await fetch(httpserver.url_for("/a"))
    assert result.status_code == 200
    assert result.body == b"done"
    assert result.url == httpserver.url_for("/a")
    assert result.final_url == httpserver.url_for("/c")
    assert result.redirects == (httpserver.url_for("/b"), httpserver.url_for("/c"))


@pytest.mark.asyncio
async def test_redirect_loop_is_an_error(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    redirect(httpserver, "/a", "/b")
    redirect(httpserver, "/b", "/a")
    with pytest.raises(FetchError) as info:
        await fetch(httpserver.url_for("/a"))
    assert info.value.kind == "redirect_loop"
    assert paths(httpserver).count("/a") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("hops", "ok"), [(5, True), (6, False)])
async def test_redirect_limit(httpserver: HTTPServer, hops: int, ok: bool) -> None:
    no_robots(httpserver)
    for i in range(hops):
        redirect(httpserver, f"/r{i}", f"/r{i + 1}")
    httpserver.expect_request(f"/r{hops}").respond_with_data("end")
    settings = make_settings(max_redirects=5)
    if ok:
        result = await fetch(httpserver.url_for("/r0"), settings)
        assert result.body == b"end"
        assert len(result.redirects) == 5
    else:
        with pytest.raises(FetchError) as info:
            await fetch(httpserver.url_for("/r0"), settings)
        assert info.value.kind == "too_many_redirects"
        assert f"/r{hops}" not in paths(httpserver)


# -- SSRF -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_private_address_refused_without_any_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("")
    httpserver.expect_request("/page").respond_with_data("secret")
    with pytest.raises(RefusedURL):
        await fetch(httpserver.url_for("/page"), make_settings(allow_hosts=frozenset()))
    assert httpserver.log == []


@pytest.mark.asyncio
async def test_allow_hosts_admits_127_0_0_1(httpserver: HTTPServer) -> None:
    no_robots(httpserver)
    httpserver.expect_request("/page").respond_with_data("ok")
    result = await fetch(httpserver.url_for("/page"), make_settings(allow_hosts=LOCAL))
    assert result.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://2130706433/",
        "http://0x7f.1/",
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
    ],
)
async def test_redirect_to_unsafe_target_is_refused(httpserver: HTTPServer, target: str) -> None:
    no_robots(httpserver)
    redirect(httpserver, "/go", target)
    # Even with the metadata address listed: link-local is never allowed.
    settings = make_settings(allow_hosts=LOCAL | {"169.254.169.254"})
    with pytest.raises(RefusedURL):
        await fetch(httpserver.url_for("/go"), settings)


@pytest.mark.asyncio
async def test_redirect_to_name_resolving_to_loopback_is_refused(httpserver: HTTPServer) -> None:
    # Only the connect-time guard can catch this one: "localhost" is a name, not a literal.
    no_robots(httpserver)
    redirect(httpserver, "/go", f"http://localhost:{httpserver.port}/secret")
    httpserver.expect_request("/secret").respond_with_data("secret")
    with pytest.raises(RefusedURL):
        await fetch(httpserver.url_for("/go"))
    assert "/secret" not in paths(httpserver)


@pytest.fixture(scope="module")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.asyncio
async def test_tls_certificates_are_verified(self_signed_cert: tuple[Path, Path]) -> None:
    cert, key = self_signed_cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_request("/page").respond_with_data("ok")
    with server:
        with pytest.raises(FetchError) as info:
            await fetch(server.url_for("/page"))
    assert info.value.kind == "tls"
    assert server.log == []


# -- Wayback Machine ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_wayback_lookup_returns_snapshot(httpserver: HTTPServer) -> None:
    snapshot = "http://web.archive.org/web/20200101000000/https://example.com/story?id=1"
    httpserver.expect_request(
        "/wayback/available", query_string={"url": "https://example.com/story?id=1"}
    ).respond_with_json(
        {"archived_snapshots": {"closest": {"available": True, "url": snapshot, "status": "200"}}}
    )
    settings = make_settings(wayback_api=httpserver.url_for("/wayback/available"))
    async with Fetcher(settings) as fetcher:
        assert await fetcher.wayback_lookup("https://example.com/story?id=1") == snapshot
    assert "/robots.txt" not in paths(httpserver)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        {"archived_snapshots": {}},
        {"archived_snapshots": {"closest": {"available": False, "url": "http://x/"}}},
        {
            "archived_snapshots": {
                "closest": {"available": True, "url": "http://x/", "status": "404"}
            }
        },
        {"archived_snapshots": {"closest": {"available": True, "url": "javascript:alert(1)"}}},
        [],
    ],
)
async def test_wayback_lookup_without_snapshot(httpserver: HTTPServer, answer: object) -> None:
    httpserver.expect_request("/wayback/available").respond_with_data(
        json.dumps(answer), content_type="application/json"
    )
    settings = make_settings(wayback_api=httpserver.url_for("/wayback/available"))
    async with Fetcher(settings) as fetcher:
        assert await fetcher.wayback_lookup("https://example.com/") is None


@pytest.mark.asyncio
async def test_wayback_lookup_bad_answer_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available").respond_with_data("<html>", status=200)
    settings = make_settings(wayback_api=httpserver.url_for("/wayback/available"))
    async with Fetcher(settings) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.wayback_lookup("https://example.com/")
    assert info.value.kind == "wayback"


@pytest.mark.asyncio
async def test_wayback_disabled_makes_no_request(httpserver: HTTPServer) -> None:
    settings = make_settings(wayback_api=httpserver.url_for("/wayback/available"))
    async with Fetcher(settings, wayback=False) as fetcher:
        assert await fetcher.wayback_lookup("https://example.com/") is None
    assert httpserver.log == []


@pytest.mark.asyncio
async def test_wayback_lookup_goes_through_the_guard() -> None:
    settings = make_settings(
        wayback_api="http://169.254.169.254/wayback/available", allow_hosts=frozenset()
    )
    async with Fetcher(settings) as fetcher:
        with pytest.raises(RefusedURL):
            await fetcher.wayback_lookup("https://example.com/")
