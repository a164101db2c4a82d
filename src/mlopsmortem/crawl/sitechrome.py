"""Dropping site chrome from stored documents, host by host, after pages are (re-)extracted.

The extractor's text of each page is kept in `extracted_texts`; `documents.text` is that text
without the blocks that repeat on `Settings.chrome_min_pages` pages of the same host (rules in
`mlopsmortem.extract.sitechrome`). Storing a page marks its row `pending`; after a fetch or
extract run, `filter_site_chrome` filters every host with a pending row again, from the kept
texts of all its pages: a new page can make a block chrome on its neighbours, a changed or
moved one can make it content again. A document is rewritten only when its filtered text
differs, so passages (and their embeddings, by text hash) change only where the text did.
The blocks dropped are listed per host in `site_chrome`, and counted per page in
`extracted_texts.chrome_blocks` / `chrome_chars`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlite_utils

from mlopsmortem.extract.sitechrome import block_hash, chrome_blocks, normalise, strip_chrome
from mlopsmortem.settings import Settings

ARCHIVED = "archived"  # pagestore's link status; not imported, pagestore imports this module


def site_host(url: str | None, final_url: str | None, link_status: str | None) -> str:
    """The site a page's text comes from: where redirects ended, except for an archived copy,
    which is a copy of the story's own site. Lower case, without a leading "www."."""
    source = url if link_status == ARCHIVED else (final_url or url)
    host = (urlsplit(source or "").hostname or "").lower()
    return host.removeprefix("www.")


def record_extracted(
    db: sqlite_utils.Database, story_id: str, host: str, text: str | None, digest: str | None
) -> None:
    """Keep the extractor's text of a page and mark its host (and the host it left) for
    filtering. Runs inside the caller's transaction, beside the `documents` upsert."""
    before = db.execute(
        "SELECT host FROM extracted_texts WHERE story_id = ?", [story_id]
    ).fetchone()
    db.execute(
        "INSERT INTO extracted_texts (story_id, host, text, text_hash, pending, chrome_blocks, "
        "chrome_chars) VALUES (?, ?, ?, ?, 1, 0, 0) ON CONFLICT (story_id) DO UPDATE SET "
        "host = excluded.host, text = excluded.text, text_hash = excluded.text_hash, pending = 1, "
        "chrome_blocks = 0, chrome_chars = 0",
        [story_id, host, text, digest],
    )
    if before and before[0] and before[0] != host:
        db.execute("UPDATE extracted_texts SET pending = 1 WHERE host = ?", [before[0]])


@dataclass
class ChromeReport:
    hosts: int = 0  # hosts filtered (again)
    pages: int = 0  # their pages that lost at least one block
    blocks: int = 0  # blocks dropped from those pages
    rewritten: int = 0  # documents whose stored text changed


def filter_site_chrome(
    db: sqlite_utils.Database, settings: Settings, *, everything: bool = False
) -> ChromeReport:
    """Filter the hosts with a pending page (every host with `everything`, and every host
    last filtered with another `chrome_min_pages`). Idempotent: filtering an unchanged host
    again writes no document. One transaction per host."""
    _fill_hosts(db)
    min_pages = settings.chrome_min_pages
    sql = "SELECT DISTINCT host FROM extracted_texts"
    params: list[object] = []
    if not everything:
        sql += " WHERE pending = 1 OR min_pages IS NOT ?"
        params.append(min_pages)
    report = ChromeReport()
    for (host,) in db.execute(sql + " ORDER BY host", params).fetchall():
        _filter_host(db, host, min_pages, report)
    return report


def _fill_hosts(db: sqlite_utils.Database) -> None:
    """Hosts of rows kept before the host was recorded (migration 7 leaves them null)."""
    rows = db.execute(
        "SELECT e.story_id, p.url, p.final_url, p.link_status FROM extracted_texts e "
        "LEFT JOIN pages p ON p.story_id = e.story_id WHERE e.host IS NULL"
    ).fetchall()
    if rows:
        with db.conn:
            db.conn.executemany(
                "UPDATE extracted_texts SET host = ? WHERE story_id = ?",
                [(site_host(url, final, status), sid) for sid, url, final, status in rows],
            )


def _filter_host(
    db: sqlite_utils.Database, host: str, min_pages: int, report: ChromeReport
) -> None:
    rows = db.execute(
        "SELECT e.story_id, e.text, d.title, d.text FROM extracted_texts e "
        "JOIN documents d ON d.story_id = e.story_id WHERE e.host = ? ORDER BY e.story_id",
        [host],
    ).fetchall()
    # a page whose host is unknown has no neighbours to compare with
    chrome = chrome_blocks((row[1] for row in rows), min_pages) if host else {}
    dropped_blocks: dict[str, str] = {}
    report.hosts += 1
    with db.conn:
        db.execute("DELETE FROM site_chrome WHERE host = ?", [host])
        for story_id, extracted, title, stored in rows:
            text = extracted
            dropped: tuple[str, ...] = ()
            if extracted is not None:
                stripped = strip_chrome(extracted, chrome, title)
                text, dropped = stripped.text, stripped.dropped
            if text != stored:
                db.execute(
                    "UPDATE documents SET text = ?, text_hash = ?, word_count = ? "
                    "WHERE story_id = ?",
                    [text, _digest(text), len(text.split()) if text else 0, story_id],
                )
                report.rewritten += 1
            db.execute(
                "UPDATE extracted_texts SET pending = 0, min_pages = ?, chrome_blocks = ?, "
                "chrome_chars = ? WHERE story_id = ?",
                [min_pages, len(dropped), sum(len(b) for b in dropped), story_id],
            )
            if dropped:
                report.pages += 1
                report.blocks += len(dropped)
            for block in dropped:
                dropped_blocks.setdefault(normalise(block), block)
        db.conn.executemany(
            "INSERT INTO site_chrome (host, block_hash, pages, text) VALUES (?, ?, ?, ?)",
            [(host, block_hash(norm), chrome[norm], norm) for norm in sorted(dropped_blocks)],
        )


def _digest(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None
