"""HTTP transport against real local servers: robots, politeness and retries."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from mlopsmortem.crawl.fetch import Fetcher, retry_after_seconds
from mlopsmortem.errors import FetchError, RobotsBlocked
from tests.support.fetching import (
    ThreadedServer,
    fetch,
    make_settings,
    no_robots,
    paths,
    send,
    stamped,
)


@pytest.fixture
def httpserver(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """pytest-httpserver bound to 127.0.0.1, the one host these tests allow."""
    return httpserver_ipv4


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
