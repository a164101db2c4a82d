"""SSRF guard: URL checks, address classes, resolution, and the connect-time transport guard."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from pytest_httpserver import HTTPServer

from mlopsmortem.crawl.netguard import (
    GuardedTransport,
    address_problem,
    check_url,
    resolve_and_check,
)
from mlopsmortem.errors import FetchError, RefusedURL

NONE: frozenset[str] = frozenset()

REFUSED_URLS = [
    # schemes and missing hosts
    "ftp://example.com/file",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/html,<h1>hi</h1>",
    "mailto:someone@example.com",
    "gopher://example.com/",
    "//example.com/no-scheme",
    "example.com/no-scheme",
    "http://",
    "http:///path-only",
    "https://:443/",
    # IPv4 special ranges
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.1.1/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",  # documentation range
    # IPv6 special ranges
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",  # AWS IPv6 metadata endpoint
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    # IPv4 wrapped in IPv6
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[::127.0.0.1]/",  # deprecated IPv4-compatible
    # numeric spellings that getaddrinfo would read as 127.0.0.1 / 0.0.0.0
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0x7F.0.0.1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://0/",
    "http://8.8.2056/",  # non-standard even when the address would be public
    # parser tricks: httpx (and so the connection) sees 127.0.0.1
    "http://example.com\\@127.0.0.1/",
    "http://user:pass@127.0.0.1/",
    "HTTP://127.0.0.1/",
    # hosts and ports httpx would choke on later, outside the errors a fetch reports
    "http://xn--ls8h.la/",  # IDNA-invalid (an emoji in punycode)
    "http://example.com:99999/",
    "http://example.com:0/",
    "http://example.com:abc/",
    "http://[::1",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(RefusedURL):
        check_url(url, NONE)


ACCEPTED_URLS = [
    "http://example.com/",
    "https://example.com:8443/a/b?c=d#e",
    "HTTPS://EXAMPLE.COM/",
    "http://93.184.216.34/",
    "http://8.8.8.8/",
    "https://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",  # mapped public address
    "http://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8, as DNS64 networks hand out
    "http://127.0.0.1@example.com/",  # userinfo, the host is example.com
    "https://xn--bcher-kva.example/",
    "https://bücher.example/",
]


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_check_url_accepts(url: str) -> None:
    check_url(url, NONE)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8000/", {"127.0.0.1"}),
        ("http://127.0.0.1/", {"127.0.0.1", "example.com"}),
        ("http://[::1]:8000/", {"::1"}),
        ("http://[::1]:8000/", {"[::1]"}),
        ("http://10.0.0.5/", {"10.0.0.5"}),
        ("http://192.168.1.1/", {"192.168.1.1"}),
    ],
)
def test_allow_hosts_admits_exactly_the_listed_host(url: str, allow: set[str]) -> None:
    check_url(url, frozenset(allow))


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        # link-local is never allowed
        ("http://169.254.169.254/latest/meta-data", {"169.254.169.254"}),
        ("http://169.254.1.1/", {"169.254.1.1"}),
        ("http://[fe80::1]/", {"fe80::1"}),
        ("http://[::ffff:169.254.169.254]/", {"::ffff:169.254.169.254"}),
        ("http://[64:ff9b::a9fe:a9fe]/", {"64:ff9b::a9fe:a9fe"}),
        # the allow list names hosts as written, not address ranges
        ("http://10.0.0.1/", {"127.0.0.1"}),
        ("http://127.0.0.2/", {"127.0.0.1"}),
        ("http://[::1]/", {"127.0.0.1"}),
        ("http://[::ffff:127.0.0.1]/", {"127.0.0.1"}),
        # numeric tricks are refused even when listed
        ("http://2130706433/", {"2130706433"}),
        # the scheme rule is independent of the allow list
        ("ftp://127.0.0.1/", {"127.0.0.1"}),
    ],
)
def test_allow_hosts_never_admits(url: str, allow: set[str]) -> None:
    with pytest.raises(RefusedURL):
        check_url(url, frozenset(allow))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_have_no_problem(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fd12:3456::1", "private"),
    ],
)
def test_address_problem_names_the_reason(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.asyncio
async def test_resolve_refuses_names_that_resolve_to_loopback() -> None:
    with pytest.raises(RefusedURL, match="loopback"):
        await resolve_and_check("http://localhost/", NONE)


@pytest.mark.asyncio
async def test_resolve_admits_allowed_name_case_insensitively() -> None:
    addresses = await resolve_and_check("http://LocalHost:8080/", frozenset({"LOCALHOST"}))
    assert addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)


@pytest.mark.asyncio
async def test_resolve_allow_list_is_by_name_not_by_address() -> None:
    # "localhost" resolves to 127.0.0.1, but only the spelling "127.0.0.1" was allowed.
    with pytest.raises(RefusedURL):
        await resolve_and_check("http://localhost/", frozenset({"127.0.0.1"}))


@pytest.mark.asyncio
async def test_resolve_literal_ip() -> None:
    assert await resolve_and_check("http://127.0.0.1/", frozenset({"127.0.0.1"})) == ["127.0.0.1"]
    with pytest.raises(RefusedURL):
        await resolve_and_check("http://169.254.169.254/", frozenset({"169.254.169.254"}))


@pytest.mark.asyncio
async def test_resolve_dns_failure_is_a_dns_fetch_error() -> None:
    with pytest.raises(FetchError) as info:
        await resolve_and_check("http://no-such-host.invalid/", NONE)
    assert info.value.kind == "dns"
    assert not isinstance(info.value, RefusedURL)


@pytest.mark.asyncio
async def test_resolve_rejects_bad_scheme_before_resolving() -> None:
    with pytest.raises(RefusedURL):
        await resolve_and_check("file:///etc/passwd", NONE)


# The transport's own check, independent of check_url: this is what stops DNS rebinding,
# since the address it checks is the address it connects to.


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_transport_refuses_at_connect_time(httpserver_ipv4: HTTPServer, host: str) -> None:
    httpserver_ipv4.expect_request("/").respond_with_data("secret")
    url = f"http://{host}:{httpserver_ipv4.port}/"
    async with httpx.AsyncClient(transport=GuardedTransport(NONE), trust_env=False) as client:
        with pytest.raises(RefusedURL):
            await client.get(url)
    assert httpserver_ipv4.log == []


@pytest.mark.asyncio
async def test_transport_connects_to_allowed_host(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/").respond_with_data("hello")
    transport = GuardedTransport(frozenset({"127.0.0.1"}))
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        response = await client.get(httpserver_ipv4.url_for("/"))
    assert response.status_code == 200
    assert response.text == "hello"


@pytest.mark.asyncio
async def test_transport_resolves_allowed_name(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/").respond_with_data("hello")
    transport = GuardedTransport(frozenset({"localhost"}))
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        response = await client.get(f"http://localhost:{httpserver_ipv4.port}/")
    assert response.text == "hello"
