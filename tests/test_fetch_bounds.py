"""HTTP transport against real local servers: time and size limits, redirects, the SSRF guard
and the Wayback Machine lookup."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from mlopsmortem.crawl.fetch import Fetcher
from mlopsmortem.errors import FetchError, RefusedURL
from tests.support.fetching import (
    LOCAL,
    ThreadedServer,
    fetch,
    make_settings,
    no_robots,
    paths,
    send,
)


@pytest.fixture
def httpserver(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """pytest-httpserver bound to 127.0.0.1, the one host these tests allow."""
    return httpserver_ipv4


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
