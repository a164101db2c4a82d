"""Atom 1.0 feeds of the knowledge base: which stories a feed lists, and the feed document.

Feeds list live stories newest first, by `stories.first_seen` (when a list first named the
story), so a reader shows each story once, when it arrives. `last_seen` is not the entry's
`updated`: it moves on every crawl and would make readers show every story again.

Selecting stories (`newest_stories`, `tag_stories`, `search_stories`) reads SQLite with bound
parameters only; with `page_text=False` an entry takes nothing from the fetched page (no
summary from its text, no title from its metadata), for a reader who may not view it.
`atom_feed` is a pure function of its arguments: it builds the document with ElementTree,
which escapes every text and attribute; characters XML 1.0 cannot carry at all (most C0
controls, lone surrogates) are removed first, as escaping cannot represent them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from mlopsmortem import HOMEPAGE, __version__
from mlopsmortem.errors import NotFoundError
from mlopsmortem.search.filters import story_filter_sql
from mlopsmortem.search.run import search
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.taxonomy import TaxonomyError, load_taxonomy

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"
FEED_LIMIT = 50
SUMMARY_CHARS = 300
# The `updated` of an empty feed, and of an entry whose first_seen is missing or unreadable:
# fixed, so the same database always gives the same document.
EPOCH = "1970-01-01T00:00:00Z"
# Entry ids are tag: URIs (RFC 4151) of the story id, a hash of its canonical URL: the same
# story keeps its id on every deployment, under any host name or proxy, and in every feed, so
# readers never show it twice. The authority is the GitHub Pages domain of the project's
# organisation (see HOMEPAGE). Never change it: every reader would see every story again.
TAG_PREFIX = "tag:mlopsmortem.github.io,2026:"
GENERATOR = "mlopsmortem"

TagKind = Literal["component", "impact"]
_TAG_COLUMNS: Mapping[str, str] = {"component": "components", "impact": "impacts"}
_JSON_ARRAY = "CASE WHEN json_valid(s.{col}) THEN s.{col} ELSE '[]' END"
# Characters XML 1.0 does not allow even escaped (control characters but tab, LF and CR;
# surrogates; U+FFFE, U+FFFF): written as they are they make the document unparsable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
# What a URL may keep as it is in an IRI (RFC 3987): reserved and unreserved characters and
# existing escapes; spaces, quotes, <>, backslash, ^, `, {|} and controls are percent-encoded.
_IRI_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


class UnknownTag(NotFoundError):
    """A component or impact neither the database nor the taxonomy knows."""


@dataclass(frozen=True)
class FeedStory:
    """One story as a feed entry needs it (plain text, not yet escaped)."""

    id: str
    url: str | None
    title: str | None
    publisher: str | None
    summary: str | None  # the list's summary, else the start of the page text
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    first_seen: str | None


@dataclass(frozen=True)
class FeedInfo:
    """The feed-level elements; every URL absolute."""

    id: str
    title: str
    self_url: str
    html_url: str | None = None  # the same selection as an HTML page
    subtitle: str | None = None


# --------------------------------------------------------------------------- which stories

_COLUMNS = (
    "s.id, s.url, s.title, s.publisher, s.summary, s.components, s.impacts, s.first_seen,"
    " d.title, substr(d.text, 1, ?)"
)
_ORDER = "ORDER BY s.first_seen DESC, s.id"  # id: a fixed order among stories seen together


def _story(row: Sequence[Any]) -> FeedStory:
    summary = row[4] if isinstance(row[4], str) and row[4].strip() else None
    return FeedStory(
        id=str(row[0]),
        url=row[1],
        title=row[2] or row[8],  # the list's title, else the page's
        publisher=row[3],
        summary=summary or _text_start(row[9]),
        components=tuple(_json_strings(row[5])),
        impacts=tuple(_json_strings(row[6])),
        first_seen=row[7],
    )


_WITHOUT_PAGE = _COLUMNS.replace("d.title, substr(d.text, 1, ?)", "NULL, NULL + ?")


def _select(
    conn: sqlite3.Connection, where: str, args: Sequence[Any], limit: int, page_text: bool
) -> list[Any]:
    # Read a few times the summary length: collapsing whitespace may shorten it a lot.
    if page_text:
        source = f"{_COLUMNS} FROM stories s LEFT JOIN documents d ON d.story_id = s.id"
    else:
        source = f"{_WITHOUT_PAGE} FROM stories s"
    return conn.execute(
        f"SELECT {source} WHERE {where} {_ORDER} LIMIT ?",
        [SUMMARY_CHARS * 4, *args, max(0, min(limit, FEED_LIMIT))],
    ).fetchall()


def newest_stories(
    conn: sqlite3.Connection,
    where: str = "s.removed_at IS NULL",
    args: Sequence[Any] = (),
    *,
    limit: int = FEED_LIMIT,
    page_text: bool = True,
) -> list[FeedStory]:
    """Stories passing `where` (a condition on `stories s`, e.g. from story_filter_sql), newest
    first, at most `limit` (capped at FEED_LIMIT). `page_text=False`: nothing read from the
    story's page (`documents`): the summary is the list's only, the title the list's only."""
    return [_story(row) for row in _select(conn, where, args, limit, page_text)]


def stories_by_id(
    conn: sqlite3.Connection, ids: Sequence[str], *, page_text: bool = True
) -> list[FeedStory]:
    """These live stories, newest first (at most FEED_LIMIT)."""
    ids = list(dict.fromkeys(ids))[:FEED_LIMIT]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return newest_stories(
        conn, f"s.removed_at IS NULL AND s.id IN ({marks})", ids, page_text=page_text
    )


def canonical_tag(
    conn: sqlite3.Connection, kind: TagKind, name: str, taxonomy_file: Path | None = None
) -> tuple[str, bool]:
    """(the tag's canonical spelling, whether any live story carries it).

    Matched case-insensitively against the tags of live stories, then against the taxonomy:
    a taxonomy tag no story has yet is a valid, empty feed, so a team can subscribe before the
    first story arrives. UnknownTag if neither knows it."""
    array = _JSON_ARRAY.format(col=_TAG_COLUMNS[kind])
    row = conn.execute(
        f"SELECT j.value FROM stories s, json_each({array}) j WHERE s.removed_at IS NULL"
        " AND j.type = 'text' AND lower(j.value) = lower(?) LIMIT 1",
        [name],
    ).fetchone()
    if row is not None:
        return str(row[0]), True
    if taxonomy_file is not None:
        try:
            taxonomy = load_taxonomy(taxonomy_file)
        except TaxonomyError:
            taxonomy = None  # no readable taxonomy: only the database's tags exist
        if taxonomy is not None:
            wanted = name.casefold()
            names = (
                [c.name for c in taxonomy.components]
                if kind == "component"
                else [i.id for i in taxonomy.impacts]
            )
            for known in names:
                if known.casefold() == wanted:
                    return known, False
    raise UnknownTag(f"no {kind} {name!r} in the knowledge base or its taxonomy")


def tag_stories(
    conn: sqlite3.Connection,
    kind: TagKind,
    tag: str,
    *,
    limit: int = FEED_LIMIT,
    page_text: bool = True,
) -> list[FeedStory]:
    """Live stories carrying exactly this tag (as canonical_tag spells it), newest first."""
    array = _JSON_ARRAY.format(col=_TAG_COLUMNS[kind])
    where = (
        "s.removed_at IS NULL AND EXISTS (SELECT 1 FROM json_each("
        f"{array}) j WHERE j.type = 'text' AND j.value = ?)"
    )
    return newest_stories(conn, where, [tag], limit=limit, page_text=page_text)


def search_stories(
    db: sqlite_utils.Database,
    query: str,
    *,
    settings: Settings,
    mode: str = "hybrid",
    filters: Mapping[str, Any] | None = None,
    limit: int = FEED_LIMIT,
    page_text: bool = True,
) -> list[FeedStory]:
    """A saved search as feed entries: its `limit` best matches, newest first.

    Without a query, the newest stories passing the filters (story_filter_sql). With one, the
    `limit` stories `search` ranks highest, then reordered by first_seen: a new story enters the
    feed when it ranks among them (semantic and hybrid search rank every story, so relevance
    has to bound the feed). Raises SearchError as `search` does (unknown filter value...)."""
    filters = dict(filters or {})
    limit = max(1, min(limit, FEED_LIMIT))
    if not query:
        where, args = story_filter_sql(db.conn, **filters)
        return newest_stories(db.conn, where, args, limit=limit, page_text=page_text)
    hits = search(db, query, settings=settings, mode=mode, limit=limit, **filters)  # type: ignore[arg-type]
    return stories_by_id(db.conn, [h.id for h in hits], page_text=page_text)


# --------------------------------------------------------------------------- the document


def xml_text(value: Any) -> str:
    """Text XML 1.0 can carry: characters it forbids removed (escaping is the writer's job)."""
    return _NOT_XML.sub("", str(value)) if value is not None else ""


def rfc3339(value: Any) -> str | None:
    """An ISO 8601 time as RFC 3339 UTC ('2024-05-01T12:00:00Z'), or None if unreadable.

    A time without an offset is UTC, the one time format of the database."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_id(story_id: str) -> str:
    return f"{TAG_PREFIX}story/{urllib.parse.quote(story_id, safe='')}"


def iri(url: str) -> str:
    """`url` with the characters an IRI may not contain percent-encoded, the rest untouched."""
    return urllib.parse.quote(xml_text(url).strip(), safe=_IRI_SAFE)


def atom_feed(
    feed: FeedInfo,
    stories: Iterable[FeedStory],
    *,
    story_page: Callable[[str], str],
    safe_href: Callable[[Any], str | None],
) -> bytes:
    """The Atom 1.0 document (UTF-8 bytes) of these stories, in the order given.

    `story_page(id)` is the absolute URL of a story's page on this site; `safe_href(url)` the
    story's own URL if it may be linked (http/https), else None. The entry's alternate link is
    the story as the list wrote it, else its page here (an entry without content must have
    one); the page here is also a `related` link. Feed `updated` is the newest entry's."""
    # The namespace as a plain attribute with unqualified children: ET.register_namespace
    # would change a process-wide registry, and Python 3.11's default_namespace= refuses
    # unqualified attributes. Readers and parsers see the same Atom namespace either way.
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _text(root, "id", feed.id)
    _text(root, "title", feed.title, type="text")
    if feed.subtitle:
        _text(root, "subtitle", feed.subtitle, type="text")
    updated = _text(root, "updated", EPOCH)
    _link(root, "self", feed.self_url, type="application/atom+xml")
    if feed.html_url:
        _link(root, "alternate", feed.html_url, type="text/html")
    # A feed-level author makes entries without a publisher valid (RFC 4287 4.1.1).
    author = ET.SubElement(root, "author")
    _text(author, "name", GENERATOR)
    _text(root, "generator", GENERATOR, uri=HOMEPAGE, version=__version__)
    newest = EPOCH
    for story in stories:
        when = rfc3339(story.first_seen) or EPOCH
        newest = max(newest, when)  # one fixed format: text order is time order
        _entry(root, story, when, story_page(story.id), safe_href(story.url))
    updated.text = newest
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _entry(root: ET.Element, story: FeedStory, when: str, page: str, original: str | None) -> None:
    entry = ET.SubElement(root, "entry")
    _text(entry, "id", entry_id(story.id))
    _text(entry, "title", story.title or story.url or story.id, type="text")
    _text(entry, "published", when)
    _text(entry, "updated", when)
    if original:
        _link(entry, "alternate", iri(original))  # no type: it may be a PDF or a video
        _link(entry, "related", page, type="text/html", title="Story page on mlopsmortem")
    else:
        _link(entry, "alternate", page, type="text/html")
    if story.publisher and story.publisher.strip():
        author = ET.SubElement(entry, "author")
        _text(author, "name", story.publisher.strip())
    for kind, values in (("component", story.components), ("impact", story.impacts)):
        for value in filter(None, (xml_text(v).strip() for v in values)):
            ET.SubElement(entry, "category", term=value, scheme=f"{TAG_PREFIX}{kind}")
    if story.summary:
        _text(entry, "summary", story.summary, type="text")


def _text(parent: ET.Element, tag: str, value: Any, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attributes.items()})
    element.text = xml_text(value)
    return element


def _link(parent: ET.Element, rel: str, href: str, **attributes: str) -> None:
    ET.SubElement(
        parent,
        "link",
        {"rel": rel, "href": xml_text(href), **{k: xml_text(v) for k, v in attributes.items()}},
    )


def _text_start(text: Any) -> str | None:
    """The first ~SUMMARY_CHARS characters of a page text, on one line, cut between words."""
    if not isinstance(text, str):
        return None
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= SUMMARY_CHARS:
        return flat or None
    cut = flat[:SUMMARY_CHARS]
    space = cut.rfind(" ")
    if space > SUMMARY_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def _json_strings(value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return []
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return []
    return [v for v in data if isinstance(v, str)] if isinstance(data, list) else []
