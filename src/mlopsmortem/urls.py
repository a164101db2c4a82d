"""Canonical URLs and archive unwrapping: one story per page, whatever form a list wrote it in."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

# Parameters that identify a campaign or a click, never the page.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "_ga",
        "ref_src",
        "ref_url",
    }
)
TRACKING_PREFIXES = ("utm_",)

# web.archive.org/web/20211006135542/https://... , also with id_/if_/im_ modifiers.
_WAYBACK = re.compile(
    r"^https?://(?:web\.)?archive\.org/web/(?P<ts>\d{1,14})(?:[a-z]{2}_)?/(?P<url>.+)$",
    re.IGNORECASE,
)
_SCHEME_SLASHES = re.compile(r"^(https?):/+", re.IGNORECASE)
# Characters that never need percent-encoding in a path or query (RFC 3986 unreserved).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters left unescaped in query names and values.
_QUERY_SAFE = "/:@!$'()*,;~"


@dataclass(frozen=True)
class CanonicalURL:
    url: str  # canonical form of the original page
    archive_url: str | None  # the archive link the list gave, if it was one


def _normalise_percent(text: str) -> str:
    """Upper-case escapes and decode the ones for unreserved characters (%7E -> ~)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(fix, text)


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def unwrap_archive(url: str) -> CanonicalURL | None:
    """If `url` is a Wayback Machine snapshot, return the original page's URL and the snapshot."""
    match = _WAYBACK.match(url.strip())
    if not match:
        return None
    original = _SCHEME_SLASHES.sub(lambda m: m.group(1).lower() + "://", match.group("url"))
    if not re.match(r"^https?://", original, re.IGNORECASE):
        original = "http://" + original
    return CanonicalURL(url=canonicalize(original), archive_url=url.strip())


def _query(query: str) -> str:
    """Tracking parameters dropped, names and values re-escaped one way; a bare name stays
    bare (`?1024` is not `?1024=`: the crawler fetches this form, and a server may differ)."""
    kept = []
    for token in query.split("&"):
        if not token:
            continue
        name, equals, value = token.partition("=")
        name = unquote(name.replace("+", " "))
        if _is_tracking(name):
            continue
        encoded = quote_plus(name, safe=_QUERY_SAFE)
        if equals:
            encoded += "=" + quote_plus(unquote(value.replace("+", " ")), safe=_QUERY_SAFE)
        kept.append(encoded)
    return "&".join(kept)


def canonicalize(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters,
    no trailing slash except for the root, percent-escapes normalised.

    Raises ValueError for a URL that cannot be a page address: a port that is not a number
    from 0 to 65535 (`:99999`, `:abc`) or an unclosed IPv6 bracket (`http://[::1`).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"bad port in {url.strip()!r}: {err}") from None
    netloc = host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    # Credentials (user:pass@) never belong in a story URL: they are dropped with the rest
    # of the userinfo. Existing escapes are kept as escapes (%2F is not a path separator).
    path = _normalise_percent(quote(parts.path, safe="/%:@!$&'()*+,;=~")) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, _query(parts.query), ""))


def canonical(url: str) -> CanonicalURL:
    """Canonical form of a list link, unwrapping archive snapshots."""
    return unwrap_archive(url) or CanonicalURL(url=canonicalize(url), archive_url=None)


def story_id(canonical_url: str) -> str:
    """Stable story id: the first 16 hex digits of SHA-256 of the canonical URL.

    Hashed in the spelling canonical URLs had before bare query names were kept bare
    (`?1024=`), so every story keeps its id; `?1024` and `?1024=` are one story.
    """
    return hashlib.sha256(_identity(canonical_url).encode("utf-8")).hexdigest()[:16]


def _identity(canonical_url: str) -> str:
    base, question, query = canonical_url.partition("?")
    if not question or not query:
        return canonical_url
    tokens = (token if "=" in token else token + "=" for token in query.split("&"))
    return f"{base}?{'&'.join(tokens)}"
