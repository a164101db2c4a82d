"""Choosing and scheduling page fetches: the navigation half of crawling.

The transport (`fetch.py`) knows HTTP; this module knows stories. It decides which pages to
fetch, follows dead links to an archived copy, extracts text, and hands each outcome to
`pagestore.py`, which stores it in its own transaction with its history and change counts.
A crawl killed at any point resumes: pages stored by the interrupted runs are not fetched
again (except a dead page whose archive lookup did not finish), and nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from mlopsmortem.crawl.fetch import Fetcher, FetchResult
from mlopsmortem.crawl.pagestore import (
    ALIVE,
    ARCHIVED,
    BLOCKED,
    DEAD,
    DEAD_STATUS,
    ERROR,
    LIVE,
    LOOKUP_ERROR,
    LOOKUP_NONE,
    REDIRECTED,
    REFUSED,
    RETRY_LOOKUP,
    CrawlReport,
    PageStore,
    content_hash,
    decompress,
    store_document,
)
from mlopsmortem.crawl.sitechrome import ChromeReport, filter_site_chrome, site_host
from mlopsmortem.errors import (
    ExtractError,
    FetchError,
    LockedError,
    NotFoundError,
    RefusedURL,
    RobotsBlocked,
)
from mlopsmortem.extract.dispatch import extract_document, is_current
from mlopsmortem.extract.document import Document, no_text
from mlopsmortem.settings import Settings
from mlopsmortem.urls import canonicalize

ProgressCallback = Callable[[str, str], None]  # (story_id, outcome)


@contextmanager
def crawl_lock(db_path: Path) -> Iterator[None]:
    """An exclusive lock beside the database; the OS drops it when the process dies."""
    lock_path = Path(f"{db_path}.lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockedError(
                f"another crawl is running on {db_path} ({holder}); try again when it ends"
            ) from err
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def interrupted_since(
    db: sqlite_utils.Database, commands: Sequence[str], current_run: int | None
) -> str | None:
    """Start of the earliest of the fetching runs interrupted since the last one that
    finished, to resume after all of them (None when the last one finished).

    Two kills in a row leave two such runs; pages either stored are done. Only called while
    holding the crawl lock, so a `running` row belongs to a dead process.
    """
    placeholders = ", ".join("?" for _ in commands)
    earliest = None
    for row in db.query(
        f"SELECT status, started_at FROM runs WHERE id != ? AND command IN ({placeholders}) "
        "ORDER BY id DESC",
        [current_run or -1, *commands],
    ):
        if row["status"] not in ("running", "interrupted"):
            break
        earliest = row["started_at"]
    return earliest


def mark_interrupted(db: sqlite_utils.Database, current_run: int | None) -> None:
    with db.conn:
        db.execute(
            "UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND id != ?",
            [current_run or -1],
        )


def select_pages(
    db: sqlite_utils.Database,
    settings: Settings,
    *,
    only: Sequence[str] = (),
    resume_after: str | None = None,
) -> tuple[list[dict], int]:
    """Stories whose page is due, and how many were skipped as fresh."""
    sql = (
        "SELECT s.id, s.url, s.canonical_url, s.archive_url, p.etag, p.last_modified, "
        "p.fetched_at, p.link_status, p.content_hash, p.archive_url AS page_archive_url, "
        "COALESCE(p.checked_at, p.fetched_at) AS checked_at, p.archive_lookup "
        "FROM stories s LEFT JOIN pages p ON p.story_id = s.id WHERE s.removed_at IS NULL"
    )
    params: list[object] = []
    if only:
        sql += f" AND s.id IN ({', '.join('?' for _ in only)})"
        params.extend(only)
    rows = list(db.query(sql + " ORDER BY s.first_seen, s.id", params))
    if only:
        known = {r["id"] for r in rows}
        missing = [sid for sid in only if sid not in known]
        if missing:
            raise NotFoundError(f"no such story: {', '.join(missing)}")
    if settings.force:
        return rows, 0
    cutoff = None
    if settings.max_age is not None:
        cutoff = (datetime.now(UTC) - timedelta(seconds=settings.max_age)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    due = []
    for row in rows:
        checked = row["checked_at"]
        if row["link_status"] == DEAD and row["archive_lookup"] in RETRY_LOOKUP:
            pass  # its archive lookup failed or never finished: due whatever its age
        elif checked and resume_after and checked >= resume_after:
            continue  # done by a run that was interrupted
        elif checked and cutoff and checked >= cutoff:
            continue
        due.append(row)
    return due, len(rows) - len(due)


def _link_status_for(result: FetchResult, requested: str) -> str:
    if result.redirects and canonicalize(result.final_url) != canonicalize(requested):
        return REDIRECTED
    return LIVE


def extract_or_explain(body: bytes, content_type: str | None, url: str) -> Document:
    """Text of a page; a page that crashes the extractor gets a no-text document saying why,
    so one bad page never stops a crawl (its body is stored for a later `extract`)."""
    try:
        return extract_document(body, content_type, url)
    except ExtractError as err:
        return no_text("none", "failed", f"extraction failed: {err}")


async def _extract(result: FetchResult) -> Document:
    # trafilatura and pypdf are CPU-bound: keep the event loop free for other downloads
    return await asyncio.to_thread(
        extract_or_explain, result.body, result.content_type, result.final_url
    )


async def _fetch_archive(fetcher: Fetcher, row: dict, store: PageStore) -> bool:
    """Try the list's archive link, else the Wayback Machine. True when a copy was stored.

    Without a copy the page stays dead, and the lookup is recorded: `none` when there is no
    snapshot, `error` when the lookup failed (counted in the report and retried next run)."""
    snapshot = row["archive_url"]
    try:
        if not snapshot:
            snapshot = await fetcher.wayback_lookup(row["canonical_url"])
        if not snapshot:
            store.archive_outcome(row, LOOKUP_NONE)
            return False
        result = await fetcher.fetch(snapshot)
    except FetchError as err:
        store.archive_outcome(row, LOOKUP_ERROR, err)
        return False
    if result.status_code != 200 or not result.body:
        code = result.status_code
        if code >= 500 or code == 429:
            err = FetchError(f"http_{code}", f"{snapshot}: HTTP {code}")
            store.archive_outcome(row, LOOKUP_ERROR, err)
        else:
            store.archive_outcome(row, LOOKUP_NONE)
        return False
    document = await _extract(result)
    store.record_response(row, result, document, status=ARCHIVED, archive_url=snapshot)
    return True


async def _failed(fetcher: Fetcher, row: dict, store: PageStore, err: FetchError) -> str:
    """A failed attempt: the page keeps its last good state unless the failure persists."""
    status = store.record_failure(row, ERROR, err)
    if status == DEAD:
        return ARCHIVED if await _fetch_archive(fetcher, row, store) else DEAD
    return status


async def crawl_page(fetcher: Fetcher, row: dict, store: PageStore, settings: Settings) -> str:
    """Fetch one story's page and store the outcome; returns the link status."""
    url = row["canonical_url"]
    conditional = not settings.force and row["content_hash"] is not None
    try:
        result = await fetcher.fetch(
            url,
            etag=row["etag"] if conditional else None,
            last_modified=row["last_modified"] if conditional else None,
        )
    except RefusedURL as err:
        return store.record_failure(row, REFUSED, err)
    except RobotsBlocked as err:
        return store.record_failure(row, BLOCKED, err)
    except FetchError as err:
        return await _failed(fetcher, row, store, err)
    if result.status_code in DEAD_STATUS:
        if row["link_status"] == ARCHIVED and row["page_archive_url"]:
            store.still_archived(row)
            return ARCHIVED
        store.record_dead(row, result, None)
        return ARCHIVED if await _fetch_archive(fetcher, row, store) else DEAD
    if result.not_modified:
        status = row["link_status"] if row["link_status"] in ALIVE else LIVE
        store.record_response(row, result, None, status=status)
        return status
    if result.status_code != 200:
        code = result.status_code
        return await _failed(fetcher, row, store, FetchError(f"http_{code}", f"HTTP {code}"))
    status = _link_status_for(result, url)
    document = None
    if row["content_hash"] != content_hash(result.body):
        document = await _extract(result)
    store.record_response(row, result, document, status=status)
    return status


async def crawl_pages(
    db: sqlite_utils.Database,
    settings: Settings,
    rows: list[dict],
    report: CrawlReport,
    *,
    on_page: ProgressCallback | None = None,
) -> CrawlReport:
    store = PageStore(db, report, settings)
    async with Fetcher(settings) as fetcher:

        async def one(row: dict) -> None:
            outcome = await crawl_page(fetcher, row, store, settings)
            if on_page:
                on_page(row["id"], outcome)

        # the Fetcher bounds concurrency globally and per host; tasks just queue on it
        await asyncio.gather(*(one(row) for row in rows))
    return report


def fetch_stories(
    db: sqlite_utils.Database,
    settings: Settings,
    *,
    only: Sequence[str] = (),
    run_id: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_page: ProgressCallback | None = None,
) -> CrawlReport:
    """Fetch every due page. Call while holding `crawl_lock`."""
    resume_after = interrupted_since(db, ("fetch", "crawl"), run_id)
    mark_interrupted(db, run_id)
    rows, fresh = select_pages(db, settings, only=only, resume_after=resume_after)
    report = CrawlReport(total=len(rows), skipped_fresh=fresh, resumed=resume_after is not None)
    if on_start:
        on_start(len(rows))
    asyncio.run(crawl_pages(db, settings, rows, report, on_page=on_page))
    filter_site_chrome(db, settings)
    return report


@dataclass
class ExtractReport:
    extracted: int = 0
    unchanged: int = 0
    no_text: int = 0
    chrome_hosts: int = 0  # hosts whose cross-page chrome was filtered again
    chrome_pages: int = 0  # pages that lost at least one block as site chrome


def extract_stored(
    db: sqlite_utils.Database,
    *,
    everything: bool = False,
    on_page: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> ExtractReport:
    """Re-extract stored bodies offline: all with `everything`, else the ones whose
    extractor version or page content differ from their document; then drop the chrome
    repeated across pages of each host whose pages changed (every host with `everything`)."""
    report = ExtractReport()
    rows = db.query(
        "SELECT p.story_id, b.body, p.content_type, p.url, p.final_url, p.link_status, "
        "p.content_hash, "
        "d.extractor_version, d.content_hash AS doc_hash, d.text_hash "
        "FROM pages p LEFT JOIN documents d ON d.story_id = p.story_id "
        "JOIN page_bodies b ON b.story_id = p.story_id ORDER BY p.story_id"
    )
    for row in list(rows):
        current = is_current(row["extractor_version"])
        if not everything and current and row["doc_hash"] == row["content_hash"]:
            report.unchanged += 1
            continue
        document = extract_or_explain(
            decompress(row["body"]), row["content_type"], row["final_url"] or ""
        )
        host = site_host(row["url"], row["final_url"], row["link_status"])
        with db.conn:
            store_document(db, row["story_id"], row["content_hash"], document, host=host)
        report.extracted += 1
        if document.text is None:
            report.no_text += 1
        if on_page:
            on_page(row["story_id"], "extracted")
    chrome: ChromeReport = filter_site_chrome(db, settings or Settings(), everything=everything)
    report.chrome_hosts, report.chrome_pages = chrome.hosts, chrome.pages
    return report
