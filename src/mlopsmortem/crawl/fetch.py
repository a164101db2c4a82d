"""HTTP transport: fetch one URL politely, safely and within bounds; return raw bytes.

This module only moves bytes. Which URLs to fetch, in which order, and what to store is
the scheduler's job (`crawl.scheduler`); turning bytes into text is the extractor's.

Per request the `Fetcher`:

* refuses unsafe URLs (netguard: scheme, literal IPs, and every resolved address at connect
  time) on the first request and on every redirect hop;
* honours robots.txt for the token "mlopsmortem", fetched once per origin and Fetcher;
* limits concurrency globally and per host, and spaces request starts to one host by
  `settings.delay` or the robots.txt Crawl-delay, whichever is larger;
* follows redirects itself so each hop is checked, up to `settings.max_redirects`;
* bounds time (connect/read timeouts plus a whole-page deadline against slow-drip servers)
  and size (the decoded body is cut at `settings.max_bytes` as it streams, whatever its
  Content-Encoding layers, reported as `truncated`; see `crawl.bodies`);
* retries connect failures, 429 and 5xx with capped, fully jittered exponential backoff
  that gives way to Retry-After.

Outcomes: every HTTP status that is not a followed redirect comes back as a `FetchResult`,
including 4xx and the last 429/5xx once tries are used up (the caller records it as an
error; the status says which). Failures without a usable HTTP response raise `FetchError`
with one of these kinds: refused (RefusedURL), blocked (RobotsBlocked), robots_unavailable,
dns, connect, tls, timeout, network, decode, too_many_redirects, redirect_loop, wayback.
Nothing else escapes for a hostile URL or answer: a redirect to `mailto:`, `data:`, `http:foo`
or an IDNA-invalid host is `refused`, so one page fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import urlencode

import httpx
from protego import Protego

from mlopsmortem.crawl.bodies import ACCEPT_ENCODING, read_capped
from mlopsmortem.crawl.netguard import GuardedTransport, check_url
from mlopsmortem.errors import FetchError, RefusedURL, RobotsBlocked
from mlopsmortem.settings import Settings

# robots.txt rules are matched against this token whatever user_agent is configured, so
# changing the User-Agent string can never sidestep a site's rules for us.
ROBOTS_TOKEN = "mlopsmortem"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# RFC 9309 asks parsers to read at least 500 KiB; more than that is not a robots.txt.
ROBOTS_MAX_BYTES = 512 * 1024
# A site asking for an hour between requests would stall a whole crawl run on one host.
MAX_CRAWL_DELAY = 60.0
ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/*;q=0.8,*/*;q=0.5"
# Where a redirect's Location is kept once `_hold_location` took it away from httpx.
_LOCATION = "mlopsmortem.location"
# What httpx and idna raise for URLs they cannot represent (IDNA errors are UnicodeErrors).
_BAD_URL_ERRORS = (httpx.InvalidURL, UnicodeError)
# robots.txt failures that say nothing about robots.txt itself: the page would fail the
# same way, so they are reported as what they are.
_ROBOTS_PASSTHROUGH_KINDS = frozenset({"refused", "dns", "tls"})


@dataclass(frozen=True)
class FetchResult:
    url: str  # requested
    final_url: str  # after redirects
    status_code: int  # 200, 304, 404, ...
    content_type: str | None  # e.g. "text/html; charset=windows-1252"
    etag: str | None
    last_modified: str | None
    body: bytes  # b"" for 304
    truncated: bool  # body cut at settings.max_bytes
    redirects: tuple[str, ...]  # hop URLs, in order
    retry_count: int  # retries spent over all hops (robots.txt not included)

    @property
    def not_modified(self) -> bool:
        return self.status_code == 304


@dataclass(frozen=True)
class _Exchange:
    """One HTTP request and its (possibly cut) response."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    location: str | None = None  # a redirect's target as the server wrote it


@dataclass
class _HostState:
    """Politeness state of one host; lives on the Fetcher that owns it."""

    slots: asyncio.Semaphore
    delay: float
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a zone-less one is read the same way
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _host_key(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").lower()


def _origin(url: httpx.URL) -> str:
    # netloc carries host and explicit port but never userinfo.
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _loop_key(url: str) -> str:
    with contextlib.suppress(httpx.InvalidURL):
        return str(httpx.URL(url).copy_with(fragment=None))
    return url


async def _hold_location(response: httpx.Response) -> None:
    """Response hook: move a redirect's Location where httpx does not look.

    Even with follow_redirects=False httpx builds the next request from Location, and a
    `mailto:`, `http:foo` or IDNA-invalid target raises there; the fetcher follows redirects
    itself (`_redirect_target`, then the guard), so httpx never needs the header.
    """
    if response.has_redirect_location:
        response.extensions[_LOCATION] = response.headers["location"]
        del response.headers["location"]


def _is_tls_error(exc: BaseException) -> bool:
    """httpx reports certificate and handshake failures as ConnectError; find the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Fetcher:
    """Async context manager owning one httpx.AsyncClient and all per-host crawl state.

    `wayback=False` turns `wayback_lookup` into a no-op returning None, for runs that
    must not contact archive.org.
    """

    def __init__(self, settings: Settings, *, wayback: bool = True) -> None:
        for name in ("concurrency", "per_host_concurrency", "max_tries"):
            if getattr(settings, name) < 1:
                raise ValueError(f"settings.{name} must be at least 1")
        self.settings = settings
        self.wayback = wayback
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._hosts: dict[str, _HostState] = {}
        # Per origin: parsed rules, None for "no robots.txt, allow all", or the message of a
        # robots_unavailable failure, which is kept for the rest of this run.
        self._robots: dict[str, Protego | None | str] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._rng = random.Random()

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        limits = httpx.Limits(
            max_connections=s.concurrency, max_keepalive_connections=s.concurrency
        )
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(s.allow_hosts, limits=limits),
            headers={
                "User-Agent": s.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            event_hooks={"response": [_hold_location]},
            timeout=httpx.Timeout(
                connect=s.connect_timeout,
                read=s.read_timeout,
                write=s.read_timeout,
                pool=s.connect_timeout,
            ),
            # Redirects are followed in fetch() so every hop passes the guard and robots.
            follow_redirects=False,
            # Environment proxies would route around the SSRF guard (see GuardedTransport).
            trust_env=False,
        )
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(exc_type, exc, tb)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        check_robots: bool = True,
    ) -> FetchResult:
        """GET `url`, following redirects; see the module docstring for what can happen."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            return await self._get(
                url, headers, check_robots=check_robots, max_bytes=self.settings.max_bytes
            )
        except _BAD_URL_ERRORS as exc:  # a last net: the guard should have refused it first
            raise RefusedURL(f"refused {url}: invalid URL on the way: {exc}") from exc

    async def wayback_lookup(self, url: str) -> str | None:
        """URL of the closest 2xx Wayback Machine snapshot of `url`, or None if there is none.

        Transport failures raise FetchError as for `fetch`; an answer that is not a 200 with
        the expected JSON raises FetchError("wayback"). The API call skips robots.txt: it is
        an API meant for programs, not a page we crawl.
        """
        if not self.wayback:
            return None
        api = self.settings.wayback_api
        query_url = f"{api}{'&' if '?' in api else '?'}{urlencode({'url': url})}"
        result = await self.fetch(query_url, check_robots=False)
        if result.status_code != 200 or result.truncated:
            raise FetchError("wayback", f"Wayback API answered HTTP {result.status_code} for {url}")
        try:
            data = json.loads(result.body)
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            raise FetchError("wayback", f"Wayback API sent invalid JSON for {url}") from exc
        snapshots = data.get("archived_snapshots") if isinstance(data, dict) else None
        closest = snapshots.get("closest") if isinstance(snapshots, dict) else None
        if not isinstance(closest, dict) or closest.get("available") is not True:
            return None
        snapshot = closest.get("url")
        status = str(closest.get("status", "200"))
        # An archived 404 or redirect is no substitute for the page.
        if not isinstance(snapshot, str) or not status.startswith("2"):
            return None
        if not snapshot.startswith(("http://", "https://")):
            return None
        return snapshot

    # -- one logical fetch: redirects --------------------------------------------------

    async def _get(
        self, url: str, headers: dict[str, str], *, check_robots: bool, max_bytes: int
    ) -> FetchResult:
        hops: list[str] = []
        seen = {_loop_key(url)}
        current = url
        retries = 0
        while True:
            check_url(current, self.settings.allow_hosts)
            if check_robots:
                await self._check_robots(current)
            exchange, tries = await self._request_with_retries(current, headers, max_bytes)
            retries += tries - 1
            location = exchange.location
            if exchange.status in REDIRECT_STATUSES and location:
                target = self._redirect_target(current, location)
                # Checked before the hop count so a short loop is reported as a loop.
                if _loop_key(target) in seen:
                    raise FetchError("redirect_loop", f"{url}: redirect loop back to {target}")
                if len(hops) >= self.settings.max_redirects:
                    raise FetchError(
                        "too_many_redirects",
                        f"{url}: more than {self.settings.max_redirects} redirects",
                    )
                seen.add(_loop_key(target))
                hops.append(target)
                current = target
                continue
            return FetchResult(
                url=url,
                final_url=current,
                status_code=exchange.status,
                content_type=exchange.headers.get("content-type"),
                etag=exchange.headers.get("etag"),
                last_modified=exchange.headers.get("last-modified"),
                body=b"" if exchange.status == 304 else exchange.body,
                truncated=exchange.truncated,
                redirects=tuple(hops),
                retry_count=retries,
            )

    @staticmethod
    def _redirect_target(current: str, location: str) -> str:
        try:
            return str(httpx.URL(current).join(location))
        except _BAD_URL_ERRORS as exc:
            raise RefusedURL(f"refused redirect from {current} to invalid {location!r}") from exc

    # -- robots.txt --------------------------------------------------------------------

    async def _check_robots(self, url: str) -> None:
        parsed = httpx.URL(url)
        rules = await self._robots_for(parsed)
        if rules is not None and not rules.can_fetch(url, ROBOTS_TOKEN):
            raise RobotsBlocked(f"robots.txt of {_origin(parsed)} disallows {url}")

    async def _robots_for(self, url: httpx.URL) -> Protego | None:
        origin = _origin(url)
        # One lock per origin: concurrent first requests wait for a single robots.txt fetch.
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                try:
                    rules = await self._load_robots(origin)
                except FetchError as exc:
                    if exc.kind != "robots_unavailable":
                        raise  # refused / dns / tls: not cached, the page would fail alike
                    self._robots[origin] = str(exc)
                else:
                    self._robots[origin] = rules
                    self._apply_crawl_delay(url, rules)
        cached = self._robots[origin]
        if isinstance(cached, str):
            # A fresh exception per caller: one shared instance would pile up tracebacks.
            raise FetchError("robots_unavailable", cached)
        return cached

    async def _load_robots(self, origin: str) -> Protego | None:
        robots_url = f"{origin}/robots.txt"
        max_bytes = min(self.settings.max_bytes, ROBOTS_MAX_BYTES)
        try:
            result = await self._get(robots_url, {}, check_robots=False, max_bytes=max_bytes)
        except FetchError as exc:
            if exc.kind in _ROBOTS_PASSTHROUGH_KINDS:
                raise
            raise FetchError(
                "robots_unavailable", f"{robots_url} could not be fetched ({exc.kind}): {exc}"
            ) from exc
        status = result.status_code
        if 200 <= status < 300:
            return Protego.parse(result.body.decode("utf-8-sig", errors="replace"))
        if 400 <= status < 500 and status != 429:
            # RFC 9309 2.3.1.3: an unavailable robots.txt (4xx) means no restrictions.
            return None
        # 5xx (and 429, a rate limit): the site may well have rules we cannot see, so
        # crawl nothing there for now (RFC 9309 2.3.1.4).
        raise FetchError("robots_unavailable", f"{robots_url} answered HTTP {status}")

    def _apply_crawl_delay(self, url: httpx.URL, rules: Protego | None) -> None:
        if rules is None:
            return
        delays = [rules.crawl_delay(ROBOTS_TOKEN) or 0.0]
        rate = rules.request_rate(ROBOTS_TOKEN)
        if rate is not None and rate.requests > 0:
            delays.append(rate.seconds / rate.requests)
        wanted = min(max(delays), MAX_CRAWL_DELAY)
        state = self._host_state(_host_key(url))
        state.delay = max(state.delay, wanted)

    # -- one request: politeness, retries, limits -------------------------------------

    def _host_state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            state = _HostState(
                slots=asyncio.Semaphore(self.settings.per_host_concurrency),
                delay=max(0.0, self.settings.delay),
            )
            self._hosts[host] = state
        return state

    @contextlib.asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        """Hold a per-host and a global slot, starting no sooner than the host's delay."""
        state = self._host_state(_host_key(httpx.URL(url)))
        loop = asyncio.get_running_loop()
        async with state.slots:
            async with state.turn:
                wait = state.next_start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                # The global slot is taken while still holding the host's turn, so the
                # recorded start is the real start; waiting for the delay above does not
                # occupy a global slot that another host could use.
                await self._slots.acquire()
                state.next_start = loop.time() + state.delay
            try:
                yield
            finally:
                self._slots.release()

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**(retry-1))]."""
        s = self.settings
        ceiling = min(s.backoff_max, s.backoff_base * 2.0 ** min(retry - 1, 60))
        return self._rng.uniform(0.0, max(0.0, ceiling))

    def _retry_wait(self, headers: httpx.Headers, retry: int) -> float:
        after = retry_after_seconds(headers.get("retry-after"))
        if after is not None:
            return min(after, self.settings.backoff_max)
        return self._backoff(retry)

    async def _request_with_retries(
        self, url: str, headers: dict[str, str], max_bytes: int
    ) -> tuple[_Exchange, int]:
        """Returns the exchange and the number of tries it took."""
        max_tries = self.settings.max_tries
        tries = 0
        while True:
            tries += 1
            try:
                exchange = await self._request_once(url, headers, max_bytes)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if _is_tls_error(exc):
                    # A bad certificate stays bad on the next try.
                    raise FetchError("tls", f"{url}: TLS failed: {exc}") from exc
                if tries >= max_tries:
                    kind = "connect" if isinstance(exc, httpx.ConnectError) else "timeout"
                    raise FetchError(kind, f"{url}: {exc} (after {tries} tries)") from exc
                await asyncio.sleep(self._backoff(tries))
                continue
            if is_retryable_status(exchange.status) and tries < max_tries:
                await asyncio.sleep(self._retry_wait(exchange.headers, tries))
                continue
            return exchange, tries

    async def _request_once(self, url: str, headers: dict[str, str], max_bytes: int) -> _Exchange:
        if self._client is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        client = self._client
        page_timeout = self.settings.page_timeout
        async with self._slot(url):
            try:
                # httpx's read timeout is per read, so a server sending one byte per second
                # never trips it; this deadline bounds the whole request and body.
                async with asyncio.timeout(page_timeout):
                    async with client.stream("GET", url, headers=headers) as response:
                        return await self._read(response, max_bytes)
            except TimeoutError as exc:
                raise FetchError("timeout", f"{url}: not complete after {page_timeout}s") from exc
            except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
                raise FetchError("timeout", f"{url}: {type(exc).__name__}: {exc}") from exc
            except (
                httpx.ReadError,
                httpx.WriteError,
                httpx.CloseError,
                httpx.ProtocolError,
            ) as exc:
                raise FetchError("network", f"{url}: {type(exc).__name__}: {exc}") from exc
            except httpx.UnsupportedProtocol as exc:
                raise RefusedURL(f"refused {url}: {exc}") from exc

    @staticmethod
    async def _read(response: httpx.Response, max_bytes: int) -> _Exchange:
        status = response.status_code
        location = response.extensions.get(_LOCATION)
        if status in REDIRECT_STATUSES and location:
            # A redirect's body is never used.
            return _Exchange(status, response.headers, b"", False, location)
        truncated = False
        declared = response.headers.get("content-length", "")
        # Content-Length counts encoded bytes; only without Content-Encoding does it predict
        # the size of what we keep.
        if declared.isdigit() and "content-encoding" not in response.headers:
            truncated = int(declared) > max_bytes
        # Decoded bytes are counted as they stream, layer by layer (crawl.bodies).
        body, cut = await read_capped(response, max_bytes)
        return _Exchange(status, response.headers, body, truncated or cut)
