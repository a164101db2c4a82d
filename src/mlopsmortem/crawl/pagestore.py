"""Storing one page's outcome: the response, its compressed body, its text, its history,
and what changed — each page in its own transaction, so a killed crawl loses nothing."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import sqlite_utils

from mlopsmortem.crawl.fetch import FetchResult
from mlopsmortem.crawl.sitechrome import record_extracted, site_host
from mlopsmortem.db import utcnow
from mlopsmortem.errors import FetchError
from mlopsmortem.extract.document import Document

LIVE, REDIRECTED, DEAD, ARCHIVED = "live", "redirected", "dead", "archived"
BLOCKED, REFUSED, ERROR = "blocked", "refused", "error"
ALIVE = frozenset({LIVE, REDIRECTED})
GONE = frozenset({DEAD, ARCHIVED})
DEAD_STATUS = frozenset({404, 410})


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
    errors: list[str] = field(default_factory=list)
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
            "skipped_fresh": self.skipped_fresh,
        }


def compress(body: bytes) -> bytes:
    return zlib.compress(body, 6)


def decompress(blob: bytes | None) -> bytes:
    return zlib.decompress(blob) if blob else b""


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class PageStore:
    """Writes one page's outcome in one transaction and classifies the change."""

    def __init__(self, db: sqlite_utils.Database, report: CrawlReport) -> None:
        self.db = db
        self.report = report

    def _previous(self, story_id: str) -> dict | None:
        return next(self.db["pages"].rows_where("story_id = ?", [story_id]), None)

    def _note_transition(self, story_id: str, before: str | None, after: str) -> None:
        if after in GONE and before not in GONE:
            self.report.newly_dead.append(story_id)
        if after in ALIVE and before in GONE:
            self.report.recovered.append(story_id)

    def record_failure(self, row: dict, status: str, err: FetchError) -> None:
        now = utcnow()
        previous = self._previous(row["id"])
        with self.db.conn:
            update = {
                "story_id": row["id"],
                "url": row["canonical_url"],
                "fetched_at": now,
                "link_status": status,
                "error_kind": err.kind,
                "error_message": str(err),
            }
            if previous is None:
                self.db["pages"].insert(update)
            else:
                self.db["pages"].update(row["id"], update)
        self._note_transition(row["id"], previous and previous["link_status"], status)
        {BLOCKED: self.report.blocked, REFUSED: self.report.refused}.get(
            status, self.report.errors
        ).append(row["id"])

    def still_archived(self, row: dict) -> None:
        """The live URL is still dead and we hold an archived copy: nothing to redo."""
        with self.db.conn:
            self.db["pages"].update(row["id"], {"fetched_at": utcnow()})
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
            "link_status": DEAD,
            "error_kind": err.kind if err else f"http_{result.status_code if result else ''}",
            "error_message": str(err) if err else f"HTTP {result.status_code if result else ''}",
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
                    "UPDATE pages SET fetched_at = ?, link_status = ?, error_kind = NULL, "
                    "error_message = NULL WHERE story_id = ?",
                    [now, status, row["id"]],
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
            "link_status": status,
            "error_kind": None,
            "error_message": None,
            "truncated": int(result.truncated),
        }
        if status == ARCHIVED and before not in GONE:
            values["dead_since"] = now
        if status in ALIVE:
            values["dead_since"] = None
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
