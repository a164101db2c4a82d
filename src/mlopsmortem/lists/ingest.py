"""Reading source lists and upserting their entries into stories with provenance.

Nothing is ever deleted: an entry that left its list gets `removed_at`; a story whose every
list entry is gone gets `removed_at` too, and both come back if the entry returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.errors import FetchError, SourceError
from mlopsmortem.lists.formats import FAILURE_STORY, FORMATS, ListEntry, ParsedList, parse_list
from mlopsmortem.settings import Settings
from mlopsmortem.urls import CanonicalURL, canonical, story_id

if TYPE_CHECKING:
    from mlopsmortem.crawl.fetch import FetchResult

# Story fields filled from the list entries that name the story, first non-empty wins.
STORY_FIELDS = ("title", "publisher", "kind", "year", "summary", "archive_url")
# Longest summary and list text kept per link, in characters. The longest real entries are
# about 1,100; one list item holding 5,000 links would otherwise store its whole text 5,000
# times over (10,000 copies with summary and list text).
MAX_ENTRY_TEXT = 2000
# Provenance fields whose change is kept in story_source_history.
TRACKED_FIELDS = ("list_title", "list_involved", "list_impact", "list_text", "section", "line")


@dataclass(frozen=True)
class SourceSpec:
    """A list to read: an http(s) URL or a local file."""

    name: str
    location: str
    format: str | None = None
    category: str | None = None

    @property
    def is_url(self) -> bool:
        return bool(re.match(r"^https?://", self.location, re.IGNORECASE))


@dataclass
class SourceReport:
    name: str
    location: str
    format: str | None = None
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    candidates: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)
    new_story_ids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.error]

    def totals(self) -> dict[str, int]:
        keys = ("new", "updated", "unchanged", "removed", "skipped", "candidates")
        return {k: sum(getattr(s, k) for s in self.sources) for k in keys}


def _name_for(location: str) -> str:
    if re.match(r"^https?://", location, re.IGNORECASE):
        parts = urlsplit(location)
        segments = [s for s in parts.path.split("/") if s]
        stem = segments[-1] if segments else parts.hostname or location
        if stem.lower() in ("readme.md", "readme", "index.md") and len(segments) >= 2:
            # raw URLs end in README.md; the repository name says more
            owner_repo = [s for s in segments[:-1] if s not in ("raw", "blob", "branch")]
            stem = owner_repo[1] if len(owner_repo) >= 2 else owner_repo[0]
        return re.sub(r"\.md$", "", stem, flags=re.IGNORECASE)
    return Path(location).stem


def spec_from_argument(argument: str, specs: Iterable[SourceSpec] = ()) -> SourceSpec:
    """A command-line SOURCE: the name of a configured source, a URL or a file path."""
    for spec in specs:
        if argument == spec.name:
            return spec
    if re.match(r"^https?://", argument, re.IGNORECASE):
        return SourceSpec(name=_name_for(argument), location=argument)
    path = Path(argument)
    return SourceSpec(name=_name_for(argument), location=str(path.resolve()))


def load_source_specs(path: Path) -> list[SourceSpec]:
    """The `[[source]]` tables of a sources.toml file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SourceError(f"{path}: sources file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise SourceError(f"{path}: invalid TOML: {err}") from err
    specs = []
    for index, item in enumerate(data.get("source", []), start=1):
        location = item.get("url") or item.get("path")
        if not location:
            raise SourceError(f"{path}: source #{index} has neither url nor path")
        fmt = item.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise SourceError(f"{path}: source #{index} has unknown format {fmt!r}")
        if item.get("path"):
            location = str((path.parent / location).resolve())
        specs.append(
            SourceSpec(
                name=item.get("name") or _name_for(location),
                location=location,
                format=fmt,
                category=item.get("category"),
            )
        )
    return specs


@dataclass(frozen=True)
class SourceText:
    text: str
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


def read_source(
    spec: SourceSpec, settings: Settings, *, etag: str | None = None, modified: str | None = None
) -> SourceText:
    """The list's markdown, from disk or over HTTP (conditional when we have validators).

    A remote list goes through the crawler's transport (`crawl.fetch.Fetcher`), with the
    same bounds as a page: the SSRF guard checks the address it connects to (no second
    resolution), every redirect hop is checked, `page_timeout` bounds the whole download and
    at most `max_bytes` decoded bytes are read. A list cut at that size is an error, never a
    shorter list (its missing entries would be marked removed). robots.txt is not consulted:
    a list is named by the maintainer, not found by crawling. Raises SourceError.
    """
    if not spec.is_url:
        try:
            return SourceText(Path(spec.location).read_text(encoding="utf-8"), None, None)
        except (OSError, UnicodeDecodeError) as err:
            raise SourceError(f"{spec.location}: cannot read source: {err}") from err
    try:
        result = asyncio.run(_fetch_list(spec.location, settings, etag, modified))
    except FetchError as err:
        raise SourceError(f"{spec.location}: cannot fetch source: {err}") from err
    if result.status_code == 304:
        return SourceText("", etag, modified, not_modified=True)
    if result.status_code != 200:
        raise SourceError(f"{spec.location}: HTTP {result.status_code}")
    if result.truncated:
        raise SourceError(f"{spec.location}: list larger than {settings.max_bytes} bytes")
    # Lists are markdown files in repositories: UTF-8 (a stray bad byte is replaced).
    text = result.body.decode("utf-8-sig", errors="replace")
    return SourceText(text, result.etag, result.last_modified)


async def _fetch_list(
    url: str, settings: Settings, etag: str | None, modified: str | None
) -> FetchResult:
    from mlopsmortem.crawl.fetch import Fetcher

    async with Fetcher(settings, wayback=False) as fetcher:
        return await fetcher.fetch(url, etag=etag, last_modified=modified, check_robots=False)


def _source_row(db: sqlite_utils.Database, spec: SourceSpec) -> dict:
    rows = list(db["sources"].rows_where("location = ?", [spec.location]))
    if rows:
        return rows[0]
    db["sources"].insert({"name": spec.name, "location": spec.location, "format": spec.format})
    return next(db["sources"].rows_where("location = ?", [spec.location]))


def _bounded(text: str | None) -> str | None:
    """`text` cut to MAX_ENTRY_TEXT characters at a space, with an ellipsis when cut."""
    if text is None or len(text) <= MAX_ENTRY_TEXT:
        return text
    cut = text[: MAX_ENTRY_TEXT - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > MAX_ENTRY_TEXT // 2 else cut).rstrip() + "…"


def _provenance(entry: ListEntry, canon: CanonicalURL) -> dict:
    return {
        "list_url": entry.url,
        "archive_url": canon.archive_url,
        "category": entry.category,
        "title": entry.title,
        "publisher": entry.publisher,
        "kind": entry.kind,
        "year": entry.year,
        "summary": _bounded(entry.summary),
        "tag": entry.tag,
        "section": entry.section,
        "line": entry.line,
        "list_title": entry.list_title,
        "list_involved": json.dumps(list(entry.involved)),
        "list_impact": json.dumps(list(entry.impact)),
        "list_text": _bounded(entry.list_text),
    }


def _refresh_story(db: sqlite_utils.Database, sid: str, now: str) -> None:
    """Derive a story's list fields from its live provenance, earliest source first."""
    rows = list(
        db.query(
            "SELECT * FROM story_sources WHERE story_id = ? AND removed_at IS NULL "
            "ORDER BY source_id, occurrence",
            [sid],
        )
    )
    if not rows:
        db.execute(
            "UPDATE stories SET removed_at = COALESCE(removed_at, ?) WHERE id = ?", [now, sid]
        )
        return
    update: dict[str, object] = {"removed_at": None}
    for name in STORY_FIELDS:
        update[name] = next((r[name] for r in rows if r[name] not in (None, "")), None)
    is_story = any(r["category"] == FAILURE_STORY for r in rows)
    update["category"] = FAILURE_STORY if is_story else rows[0]["category"]
    db["stories"].update(sid, update)


def ingest_parsed(
    db: sqlite_utils.Database,
    spec: SourceSpec,
    parsed: ParsedList,
    report: SourceReport,
    *,
    new_story_ids: list[str],
) -> None:
    """Upsert one parsed list in one transaction: an error rolls the whole list back.

    An entry whose link cannot be canonicalised (a bad port such as `:99999` or `:abc`, an
    unclosed `[::1`) is skipped and reported as `FILE:LINE: reason` with the parse problems.
    Summaries and list texts are stored cut to MAX_ENTRY_TEXT characters per link.
    """
    now = utcnow()
    problems = [str(p) for p in parsed.problems]
    # db.atomic() opens the transaction itself, so sqlite-utils' own writes inside become
    # savepoints; with `with db.conn:` each of them committed on its own.
    with db.atomic():
        source = _source_row(db, spec)
        source_id = source["id"]
        seen_rows: set[int] = set()
        touched: set[str] = set()
        occurrences: dict[str, int] = {}
        for entry in parsed.entries:
            try:
                canon = canonical(entry.url)
            except ValueError as err:
                problems.append(f"{spec.location}:{entry.line}: invalid link skipped: {err}")
                continue
            sid = story_id(canon.url)
            occurrence = occurrences.get(sid, 0)
            occurrences[sid] = occurrence + 1
            if not db["stories"].count_where("id = ?", [sid]):
                db["stories"].insert(
                    {
                        "id": sid,
                        "url": entry.url,
                        "canonical_url": canon.url,
                        "category": entry.category,
                        "components": "[]",
                        "impacts": "[]",
                        "first_seen": now,
                        "last_seen": now,
                    }
                )
                new_story_ids.append(sid)
            else:
                _touch_story(db, sid, canon.url, now)
            values = _provenance(entry, canon)
            existing = list(
                db["story_sources"].rows_where(
                    "source_id = ? AND story_id = ? AND occurrence = ?",
                    [source_id, sid, occurrence],
                )
            )
            if not existing:
                # new in this list (the story itself may be known from another list)
                row_id = (
                    db["story_sources"]
                    .insert(
                        {
                            "story_id": sid,
                            "source_id": source_id,
                            "occurrence": occurrence,
                            "first_seen": now,
                            "last_seen": now,
                            **values,
                        }
                    )
                    .last_pk
                )
                report.new += 1
            else:
                old = existing[0]
                row_id = old["id"]
                changed = any(old[k] != values[k] for k in values) or old["removed_at"]
                if changed:
                    db["story_source_history"].insert(
                        {
                            "story_source_id": row_id,
                            "changed_at": now,
                            **{k: old[k] for k in TRACKED_FIELDS},
                        }
                    )
                    report.updated += 1
                else:
                    report.unchanged += 1
                db["story_sources"].update(row_id, {**values, "last_seen": now, "removed_at": None})
            seen_rows.add(row_id)
            touched.add(sid)
        for row in db.query(
            "SELECT id, story_id FROM story_sources WHERE source_id = ? AND removed_at IS NULL",
            [source_id],
        ):
            if row["id"] not in seen_rows:
                db["story_sources"].update(row["id"], {"removed_at": now})
                report.removed += 1
                touched.add(row["story_id"])
        for sid in touched:
            _refresh_story(db, sid, now)
        for cand in parsed.candidates:
            db["candidate_sources"].upsert(
                {
                    "url": cand.url,
                    "source_id": source_id,
                    "line": cand.line,
                    "section": cand.section,
                    "label": cand.label,
                    "last_seen": now,
                },
                pk=("source_id", "url"),
            )
            db.execute(
                "UPDATE candidate_sources SET first_seen = COALESCE(first_seen, ?) "
                "WHERE source_id = ? AND url = ?",
                [now, source_id, cand.url],
            )
        report.candidates = len(parsed.candidates)
        report.skipped = len(problems)
        report.problems = problems
        report.format = parsed.format


def _touch_story(db: sqlite_utils.Database, sid: str, canonical_url: str, now: str) -> None:
    """Mark a known story seen; adopt today's canonical spelling of its own first URL (a bare
    query name used to gain a `=`, and the crawler fetches the canonical URL)."""
    story = db["stories"].get(sid)
    update: dict[str, object] = {"last_seen": now}
    if story["canonical_url"] != canonical_url:
        with contextlib.suppress(ValueError):
            if canonical(story["url"]).url == canonical_url:
                update["canonical_url"] = canonical_url
    db["stories"].update(sid, update)


def _record_source(
    db: sqlite_utils.Database, spec: SourceSpec, text: SourceText | None, error: str | None
) -> None:
    with db.atomic():
        row = _source_row(db, spec)
        update: dict[str, object] = {
            "name": spec.name,
            "format": spec.format or row["format"],
            "last_read": utcnow(),
            "status": "error" if error else "ok",
            "error": error,
        }
        if text is not None and not text.not_modified:
            update.update(
                etag=text.etag,
                last_modified=text.last_modified,
                content_hash=hashlib.sha256(text.text.encode("utf-8")).hexdigest(),
            )
        db["sources"].update(row["id"], update)


def ingest_sources(
    db: sqlite_utils.Database,
    specs: Iterable[SourceSpec],
    settings: Settings,
    *,
    on_problem: Callable[[str], None] | None = None,
) -> IngestReport:
    """Read and ingest each source; one source failing does not stop the others."""
    report = IngestReport()
    for spec in specs:
        source_report = SourceReport(name=spec.name, location=spec.location)
        report.sources.append(source_report)
        known = next(iter(db["sources"].rows_where("location = ?", [spec.location])), None)
        try:
            text = read_source(
                spec,
                settings,
                etag=known["etag"] if known else None,
                modified=known["last_modified"] if known else None,
            )
        except SourceError as err:
            source_report.error = str(err)
            _record_source(db, spec, None, str(err))
            continue
        if text.not_modified:
            _record_source(db, spec, text, None)
            source_report.unchanged = db["story_sources"].count_where(
                "source_id = ? AND removed_at IS NULL", [known["id"]] if known else [0]
            )
            continue
        parsed = parse_list(
            text.text, name=spec.location, format=spec.format, category=spec.category
        )
        if spec.format is None:
            spec = SourceSpec(spec.name, spec.location, parsed.format, spec.category)
        ingest_parsed(db, spec, parsed, source_report, new_story_ids=report.new_story_ids)
        _record_source(db, spec, text, None)
        for problem in source_report.problems:
            if on_problem:
                on_problem(problem)
    return report
