"""SSRF guard: which URLs the crawler may request and which addresses it may connect to.

The lists are curated by strangers and any page can redirect anywhere, so a URL must never make
us talk to loopback, the LAN or a cloud metadata service. Two layers:

* `check_url`: a cheap syntactic check (scheme, host, literal IPs) run before every request and
  redirect hop, before any robots.txt fetch or DNS lookup.
* `GuardedTransport`: resolves the host at connect time, refuses if ANY resolved address is
  unsafe, then connects to one of exactly those checked addresses, so DNS rebinding has no
  window. TLS still verifies the certificate against the URL's hostname.

`allow_hosts` (exact, case-insensitive) may resolve to private or loopback addresses, for tests
and local mirrors; link-local addresses (cloud metadata) are refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from mlopsmortem.errors import FetchError, RefusedURL

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not covered by ipaddress' is_private on Python 3.11, but never reachable from the internet.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# IPv6 ranges that carry an IPv4 address the packet may end up at; the embedded address
# decides. (IPv4-mapped ::ffff:0:0/96 is handled through `ipv4_mapped`.)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def _effective(ip: IPAddress) -> IPAddress:
    """The address a packet to `ip` is really meant for (IPv4 inside IPv6 wrappers)."""
    return _embedded_ipv4(ip) or ip


def is_link_local(ip: IPAddress) -> bool:
    """Link-local, including the cloud metadata address and its IPv6 wrappings."""
    return _effective(ip).is_link_local


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to `ip` is unsafe, or None for a public unicast address."""
    target = _effective(ip)
    wrapped = f" (inside {ip})" if target is not ip else ""
    # Order matters only for the message: the first matching category names the reason.
    checks: tuple[tuple[bool, str], ...] = (
        (target.is_link_local, "link-local"),
        (target.is_loopback, "loopback"),
        (target.is_unspecified, "unspecified"),
        (target.is_multicast, "multicast"),
        (isinstance(target, ipaddress.IPv4Address) and target in _CGNAT, "shared (CGNAT)"),
        (target.is_private, "private"),
        (target.is_reserved, "reserved"),
        # Catch-all for special-purpose ranges (documentation, benchmarking, Teredo, ...).
        (not target.is_global, "not globally routable"),
    )
    for matched, reason in checks:
        if matched:
            return f"{target} is {reason}{wrapped}"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The host as an IP address, None for a DNS name; refuses ambiguous numeric forms."""
    # A zone id ("fe80::1%eth0") does not change which address is meant.
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    # inet_aton (and with it getaddrinfo) reads "2130706433", "0x7f.1", "127.1" or
    # "0177.0.0.1" as IPv4 addresses that ipaddress rejects. No real site is addressed this
    # way, and such spellings exist to slip past filters, so refuse them outright.
    try:
        socket.inet_aton(bare)
    except (OSError, UnicodeError):
        return None
    raise RefusedURL(f"refused host {host!r}: IPv4 address in non-standard notation")


def _normalise_allow(allow_hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip("[]").lower() for h in allow_hosts)


def _check_address(host: str, ip: IPAddress, allowed: frozenset[str]) -> None:
    if is_link_local(ip):
        raise RefusedURL(f"refused host {host!r}: {_effective(ip)} is link-local, never allowed")
    if host in allowed:
        return
    problem = address_problem(ip)
    if problem is not None:
        raise RefusedURL(f"refused host {host!r}: {problem}, not allowed unless in allow_hosts")


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise RefusedURL(f"refused invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise RefusedURL(f"refused {url!r}: scheme {parsed.scheme or '(none)'!r} not allowed")
    if not parsed.raw_host:
        raise RefusedURL(f"refused {url!r}: no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise RefusedURL(f"refused {url!r}: port {parsed.port} out of range")
    try:
        # httpx decodes the IDNA host to build the request; a name it cannot decode
        # ("xn--ls8h.la") would raise there, outside the errors a fetch reports.
        parsed.host  # noqa: B018 - evaluated for its check
    except UnicodeError as exc:
        raise RefusedURL(f"refused {url!r}: host is not a valid IDNA name ({exc})") from exc
    return parsed


def _host(parsed: httpx.URL) -> str:
    # raw_host is what httpcore will connect to (IDNA-encoded, IPv6 without brackets);
    # checking anything else would open a gap between the check and the connection.
    return parsed.raw_host.decode("ascii").lower()


def check_url(url: str, allow_hosts: frozenset[str]) -> None:
    """Refuse (RefusedURL) non-HTTP(S) URLs, URLs without host, and unsafe literal IPs.

    DNS names are not resolved here; `resolve_and_check` and `GuardedTransport` do that.
    """
    parsed = _parse(url)
    host = _host(parsed)
    ip = _literal_ip(host)
    if ip is not None:
        _check_address(host, ip, _normalise_allow(allow_hosts))


async def resolve_host(host: str, port: int, allow_hosts: frozenset[str]) -> list[str]:
    """Resolve `host` and return its addresses, refusing if ANY of them is unsafe.

    Raises RefusedURL for unsafe addresses and FetchError("dns") when resolution fails.
    """
    host = host.strip("[]").lower()
    allowed = _normalise_allow(allow_hosts)
    ip = _literal_ip(host)
    if ip is not None:
        _check_address(host, ip, allowed)
        return [str(ip)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError("dns", f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:
        raise RefusedURL(f"refused host {host!r}: not a valid DNS name ({exc})") from exc
    addresses: list[str] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        resolved = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        # Any bad address refuses the host: otherwise a name with one public and one private
        # record would connect to the private one whenever the public one is unreachable.
        _check_address(host, resolved, allowed)
        if str(resolved) not in addresses:
            addresses.append(str(resolved))
    if not addresses:
        raise FetchError("dns", f"{host!r} has no IPv4 or IPv6 address")
    return addresses


async def resolve_and_check(url: str, allow_hosts: frozenset[str]) -> list[str]:
    """`check_url`, then resolve the URL's host; returns the (checked) addresses."""
    parsed = _parse(url)
    check_url(url, allow_hosts)
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    return await resolve_host(_host(parsed), port, allow_hosts)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses `resolve_host` approved."""

    def __init__(
        self, allow_hosts: frozenset[str], inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._allow_hosts = allow_hosts
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            # A hung resolver counts against the connect timeout, like a hung SYN would.
            async with asyncio.timeout(timeout):
                addresses = await resolve_host(host, port, self._allow_hosts)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                # Next checked address, as a resolver-driven connect would do.
                last_error = exc
        if last_error is None:  # unreachable: resolve_host never returns an empty list
            raise httpcore.ConnectError(f"no address to connect to for {host!r}")
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedURL("refused: unix sockets are never used by the crawler")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose connections go through `GuardedBackend`; TLS always verified.

    Use it with `httpx.AsyncClient(transport=..., trust_env=False)`: with trust_env=True an
    HTTP(S)_PROXY variable would mount a proxy transport in front of this one, and the guard
    would then only see the proxy's address.
    """

    def __init__(self, allow_hosts: frozenset[str], *, limits: httpx.Limits | None = None) -> None:
        limits = limits if limits is not None else httpx.Limits()
        # trust_env here only lets SSL_CERT_FILE / SSL_CERT_DIR pick the CA bundle;
        # verification itself stays on.
        ssl_context = httpx.create_ssl_context(verify=True, trust_env=True)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx has no public way to pass a network backend, so the pool httpx just built is
        # replaced by an identical one that has ours. Fail loudly if httpx internals change,
        # rather than crawl unguarded.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("unsupported httpx version: cannot install the SSRF guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(allow_hosts),
        )
