"""Storing one page's outcome: the response, its compressed body, its text, its history,
and what changed — each page in its own transaction, so a killed crawl loses nothing.

A failed attempt never replaces a page's last good state (`KEPT`: live, redirected, dead,
archived) with its text and passages: it is recorded beside it (`error_kind`,
`error_message`, `failures`, `failing_since`, `checked_at`). Only a 404/410, the site's own
answer, marks a page dead at once; other failures do so once they persist over
`Settings.dead_after_failures` attempts and `Settings.dead_after_s` seconds. `refused` and
`blocked` come from the run's own flags and rules and never count against a page.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from mlopsmortem.crawl.fetch import FetchResult
from mlopsmortem.crawl.sitechrome import record_extracted, site_host
from mlopsmortem.db import utcnow
from mlopsmortem.errors import FetchError
from mlopsmortem.extract.document import Document
from mlopsmortem.settings import Settings

LIVE, REDIRECTED, DEAD, ARCHIVED = "live", "redirected", "dead", "archived"
BLOCKED, REFUSED, ERROR = "blocked", "refused", "error"
ALIVE = frozenset({LIVE, REDIRECTED})
GONE = frozenset({DEAD, ARCHIVED})
DEAD_STATUS = frozenset({404, 410})
# States a failed attempt never replaces until the failure persists.
KEPT = ALIVE | GONE
# Failures caused by the run itself (no --allow-host, robots.txt): never held against a page.
SELF_INFLICTED = frozenset({REFUSED, BLOCKED})
# pages.archive_lookup of a dead page: the archive is looked up again on the next run.
LOOKUP_PENDING, LOOKUP_FOUND, LOOKUP_NONE, LOOKUP_ERROR = "pending", "found", "none", "error"
RETRY_LOOKUP = frozenset({LOOKUP_PENDING, LOOKUP_ERROR})
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # db.utcnow()'s


@dataclass
class CrawlReport:
    """What a fetch run saw. Lists hold story ids so reports can name the stories."""

    total: int = 0
    fetched: int = 0
    changed: list[str] = field(default_factory=list)  # text changed (or first text)
    unchanged: int = 0
    not_modified: int = 0
    newly_dead: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # failed, no good state to keep
    failing: list[str] = field(default_factory=list)  # failed, last good state kept
    archive_errors: list[str] = field(default_factory=list)  # archive lookup failed: retried
    skipped_fresh: int = 0
    resumed: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "pages": self.total,
            "fetched": self.fetched,
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "not_modified": self.not_modified,
            "newly_dead": len(self.newly_dead),
            "recovered": len(self.recovered),
            "archived": len(self.archived),
            "refused": len(self.refused),
            "blocked": len(self.blocked),
            "errors": len(self.errors),
            "failing": len(self.failing),
            "archive_errors": len(self.archive_errors),
            "skipped_fresh": self.skipped_fresh,
        }


def compress(body: bytes) -> bytes:
    return zlib.compress(body, 6)


def decompress(blob: bytes | None) -> bytes:
    return zlib.decompress(blob) if blob else b""


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _elapsed_s(since: str | None, now: str) -> float:
    if not since:
        return 0.0
    start = datetime.strptime(since, TIME_FORMAT).replace(tzinfo=UTC)
    return (datetime.strptime(now, TIME_FORMAT).replace(tzinfo=UTC) - start).total_seconds()


class PageStore:
    """Writes one page's outcome in one transaction and classifies the change."""

    def __init__(
        self, db: sqlite_utils.Database, report: CrawlReport, settings: Settings | None = None
    ) -> None:
        self.db = db
        self.report = report
        self.settings = settings or Settings()

    def _previous(self, story_id: str) -> dict | None:
        return next(self.db["pages"].rows_where("story_id = ?", [story_id]), None)

    def _note_transition(self, story_id: str, before: str | None, after: str) -> None:
        if after in GONE and before not in GONE:
            self.report.newly_dead.append(story_id)
        if after in ALIVE and before in GONE:
            self.report.recovered.append(story_id)

    def _write(self, story_id: str, previous: dict | None, values: dict) -> None:
        if previous is None:
            self.db["pages"].insert({"story_id": story_id, **values})
        else:
            self.db["pages"].update(story_id, values)

    def record_failure(self, row: dict, status: str, err: FetchError) -> str:
        """Record a failed attempt; returns the page's link status afterwards.

        `status` is what the attempt says by itself: REFUSED or BLOCKED (the run's own flags
        or robots rules) or ERROR (connection, DNS, timeout, TLS, an HTTP status other than
        200, 304, 404, 410). A page in a `KEPT` state keeps it, its body and its text; the
        attempt goes to error_kind / error_message / checked_at and, unless self-inflicted,
        to the run of `failures` since `failing_since`. DEAD is returned, and the caller
        looks up an archived copy, when the page is newly dead: its failures lasted
        `dead_after_failures` attempts and `dead_after_s` seconds, or a DNS failure hit a
        page without a good state (there is nothing to keep).
        """
        now = utcnow()
        previous = self._previous(row["id"])
        before = previous["link_status"] if previous else None
        values: dict[str, object] = {
            "url": row["canonical_url"],
            "checked_at": now,
            "error_kind": err.kind,
            "error_message": str(err),
        }
        if status in SELF_INFLICTED:
            after = before if before in KEPT else status
            if after == status:
                values.update(link_status=status, fetched_at=now)
            with self.db.conn:
                self._write(row["id"], previous, values)
            self._note_transition(row["id"], before, after)
            (self.report.blocked if status == BLOCKED else self.report.refused).append(row["id"])
            return after  # type: ignore[return-value]
        failures = ((previous or {}).get("failures") or 0) + 1
        since = ((previous or {}).get("failing_since") or now) if failures > 1 else now
        values.update(failures=failures, failing_since=since)
        persistent = (
            failures >= self.settings.dead_after_failures
            and _elapsed_s(since, now) >= self.settings.dead_after_s
        )
        if before in GONE:
            after = before  # already dead: its archived copy (or lookup) stands
        elif before in ALIVE:
            after = DEAD if persistent else before
        else:
            after = DEAD if persistent or err.kind == "dns" else ERROR
        if after == DEAD and before != DEAD:
            values.update(link_status=DEAD, dead_since=since, archive_lookup=LOOKUP_PENDING)
            if before not in KEPT:
                values["fetched_at"] = now
        elif after == ERROR:
            values.update(link_status=ERROR, fetched_at=now)
        with self.db.conn:
            self._write(row["id"], previous, values)
        self._note_transition(row["id"], before, after)
        if after in ALIVE:
            self.report.failing.append(row["id"])
        elif after == ERROR:
            self.report.errors.append(row["id"])
        return after

    def archive_outcome(self, row: dict, lookup: str, err: FetchError | None = None) -> None:
        """The archive lookup of a dead page ended without a copy: `none` (no snapshot) or
        `error` (the lookup failed; the next run retries it, and the report counts it)."""
        with self.db.conn:
            self.db["pages"].update(
                row["id"],
                {
                    "archive_lookup": lookup,
                    "archive_error": str(err) if err else None,
                    "archive_checked_at": utcnow(),
                },
            )
        if lookup == LOOKUP_ERROR:
            self.report.archive_errors.append(row["id"])

    def still_archived(self, row: dict) -> None:
        """The live URL is still dead and we hold an archived copy: nothing to redo."""
        now = utcnow()
        with self.db.conn:
            self.db["pages"].update(
                row["id"], {"fetched_at": now, "checked_at": now, "failures": 0}
            )
        self.report.unchanged += 1

    def record_dead(self, row: dict, result: FetchResult | None, err: FetchError | None) -> None:
        now = utcnow()
        previous = self._previous(row["id"])
        values = {
            "story_id": row["id"],
            "url": row["canonical_url"],
            "final_url": result.final_url if result else None,
            "status_code": result.status_code if result else None,
            "fetched_at": now,
            "checked_at": now,
            "link_status": DEAD,
            "error_kind": err.kind if err else f"http_{result.status_code if result else ''}",
            "error_message": str(err) if err else f"HTTP {result.status_code if result else ''}",
            # the site's own answer: not a failure to retry, and the archive is due
            "failures": 0,
            "failing_since": None,
            "archive_lookup": LOOKUP_PENDING,
        }
        with self.db.conn:
            if previous is None:
                self.db["pages"].insert({**values, "dead_since": now})
            else:
                if previous["link_status"] not in GONE:
                    values["dead_since"] = now
                self.db["pages"].update(row["id"], values)
        self._note_transition(row["id"], previous and previous["link_status"], DEAD)

    def record_response(
        self,
        row: dict,
        result: FetchResult,
        document: Document | None,
        *,
        status: str,
        archive_url: str | None = None,
    ) -> bool:
        """Store a 200 (or 304) response; True when the page's content changed."""
        now = utcnow()
        self.report.fetched += 1
        if result.not_modified and row["content_hash"] is not None:
            # the common case of a scheduled re-crawl: one plain UPDATE, nothing else
            with self.db.conn:
                self.db.execute(
                    "UPDATE pages SET fetched_at = ?, checked_at = ?, link_status = ?, "
                    "error_kind = NULL, error_message = NULL, failures = 0, "
                    "failing_since = NULL WHERE story_id = ?",
                    [now, now, status, row["id"]],
                )
            self.report.not_modified += 1
            self._note_transition(row["id"], row["link_status"], status)
            return False
        previous = self._previous(row["id"])
        before = previous["link_status"] if previous else None
        digest = content_hash(result.body)
        changed = previous is None or previous["content_hash"] != digest
        values = {
            "story_id": row["id"],
            "url": row["canonical_url"],
            "final_url": result.final_url,
            "archive_url": archive_url,
            "status_code": result.status_code,
            "content_type": result.content_type,
            "etag": result.etag,
            "last_modified": result.last_modified,
            "fetched_at": now,
            "checked_at": now,
            "link_status": status,
            "error_kind": None,
            "error_message": None,
            "failures": 0,
            "failing_since": None,
            "truncated": int(result.truncated),
        }
        if status == ARCHIVED:
            values.update(archive_lookup=LOOKUP_FOUND, archive_error=None, archive_checked_at=now)
        if status == ARCHIVED and before not in GONE:
            values["dead_since"] = now
        if status in ALIVE:
            values.update(dead_since=None, archive_lookup=None, archive_error=None)
        with self.db.conn:
            if changed:
                values.update(content_hash=digest, body_size=len(result.body), changed_at=now)
                self.db["page_bodies"].upsert(
                    {"story_id": row["id"], "body": compress(result.body)}, pk="story_id"
                )
                if previous is not None and previous["content_hash"]:
                    old_doc = next(
                        self.db["documents"].rows_where("story_id = ?", [row["id"]]), None
                    )
                    self.db["page_history"].insert(
                        {
                            "story_id": row["id"],
                            "content_hash": previous["content_hash"],
                            "text_hash": old_doc["text_hash"] if old_doc else None,
                            "link_status": previous["link_status"],
                            "fetched_at": previous["fetched_at"],
                            "replaced_at": now,
                        }
                    )
                if document is not None:
                    host = site_host(row["canonical_url"], result.final_url, status)
                    store_document(self.db, row["id"], digest, document, host=host)
            if previous is None:
                self.db["pages"].insert(values)
            else:
                self.db["pages"].update(row["id"], values)
        self._note_transition(row["id"], before, status)
        if changed:
            self.report.changed.append(row["id"])
        else:
            self.report.unchanged += 1
        if status == ARCHIVED:
            self.report.archived.append(row["id"])
        return changed


def store_document(
    db: sqlite_utils.Database, story_id: str, page_hash: str, document: Document, *, host: str
) -> None:
    """Store a page's extracted document; call inside a transaction. `documents.text` holds
    the extractor's text until `crawl.sitechrome.filter_site_chrome` drops the chrome shared
    with other pages of `host` (the site, as `site_host` names it)."""
    record_extracted(db, story_id, host, document.text, document.text_hash)
    db["documents"].upsert(
        {
            "story_id": story_id,
            "title": document.title,
            "author": document.author,
            "date": document.date,
            "sitename": document.sitename,
            "language": document.language,
            "text": document.text,
            "word_count": document.word_count,
            "text_hash": document.text_hash,
            "content_hash": page_hash,
            "extractor": document.extractor,
            "extractor_version": document.extractor_version,
            "no_text_reason": document.no_text_reason,
            "extracted_at": utcnow(),
        },
        pk="story_id",
    )
