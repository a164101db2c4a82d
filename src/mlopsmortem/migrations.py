"""Numbered schema migrations. Append new ones; never edit one that has shipped."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(number: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        MIGRATIONS.append((number, name, fn))
        return fn

    return register


@migration(1, "lists: sources, stories, provenance, runs")
def m001_lists(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "id": int,
            "name": str,
            "location": str,  # http(s) URL or local path
            "format": str,
            "last_read": str,
            "etag": str,
            "last_modified": str,
            "content_hash": str,
            "status": str,  # ok | error
            "error": str,
        },
        pk="id",
    )
    db["sources"].create_index(["location"], unique=True)
    db["stories"].create(
        {
            "id": str,  # stable hash of canonical_url
            "url": str,  # as the list wrote it (first seen)
            "canonical_url": str,
            "archive_url": str,
            "category": str,  # "failure story" | "resource"
            "title": str,
            "publisher": str,
            "kind": str,
            "year": int,
            "summary": str,
            "components": str,  # JSON array, filled by tagging
            "impacts": str,  # JSON array, filled by tagging
            "first_seen": str,
            "last_seen": str,
            "removed_at": str,
        },
        pk="id",
    )
    db["story_sources"].create(
        {
            "id": int,
            "story_id": str,
            "source_id": int,
            "occurrence": int,  # n-th appearance of this story in this source (0-based)
            "line": int,
            "section": str,
            "list_url": str,  # the URL exactly as written in the list
            "archive_url": str,
            "category": str,
            "title": str,  # parsed from the entry
            "publisher": str,
            "kind": str,
            "year": int,
            "summary": str,
            "tag": str,  # a resource list's *tag*
            "list_title": str,
            "list_involved": str,  # JSON array, exactly as written
            "list_impact": str,  # JSON array, exactly as written
            "list_text": str,  # the entry's own text
            "first_seen": str,
            "last_seen": str,
            "removed_at": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id"), ("source_id", "sources", "id")],
    )
    db["story_sources"].create_index(["source_id", "story_id", "occurrence"], unique=True)
    db["story_sources"].create_index(["story_id"])
    db["story_source_history"].create(
        {
            "id": int,
            "story_source_id": int,
            "changed_at": str,
            "list_title": str,
            "list_involved": str,
            "list_impact": str,
            "list_text": str,
            "section": str,
            "line": int,
        },
        pk="id",
        foreign_keys=[("story_source_id", "story_sources", "id")],
    )
    db["candidate_sources"].create(
        {
            "url": str,
            "source_id": int,
            "line": int,
            "section": str,
            "label": str,
            "first_seen": str,
            "last_seen": str,
        },
        pk=("source_id", "url"),
        foreign_keys=[("source_id", "sources", "id")],
    )
    db["runs"].create(
        {
            "id": int,
            "command": str,
            "started_at": str,
            "finished_at": str,
            "status": str,  # running | ok | partial | failed
            "duration_s": float,
            "counts": str,  # JSON
            "report": str,  # JSON
            "error": str,
        },
        pk="id",
    )


@migration(2, "crawl: pages, page history, documents")
def m002_pages(db: sqlite_utils.Database) -> None:
    db["pages"].create(
        {
            "story_id": str,
            "url": str,  # the URL requested (canonical story URL)
            "final_url": str,
            "archive_url": str,  # snapshot used when the page is dead
            "status_code": int,
            "content_type": str,
            "etag": str,
            "last_modified": str,
            "fetched_at": str,
            "content_hash": str,
            "body": bytes,  # zlib-compressed raw body
            "body_size": int,
            "truncated": int,
            "link_status": str,  # live|redirected|dead|archived|blocked|refused|error
            "error_kind": str,
            "error_message": str,
            "changed_at": str,
            "dead_since": str,
        },
        pk="story_id",
        foreign_keys=[("story_id", "stories", "id")],
    )
    db["page_history"].create(
        {
            "id": int,
            "story_id": str,
            "content_hash": str,
            "text_hash": str,
            "link_status": str,
            "fetched_at": str,
            "replaced_at": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id")],
    )
    db["page_history"].create_index(["story_id"])
    db["documents"].create(
        {
            "story_id": str,
            "title": str,
            "author": str,
            "date": str,
            "sitename": str,
            "language": str,
            "text": str,
            "word_count": int,
            "text_hash": str,
            "content_hash": str,  # of the page body the text came from
            "extractor": str,
            "extractor_version": str,
            "no_text_reason": str,
            "extracted_at": str,
        },
        pk="story_id",
        foreign_keys=[("story_id", "stories", "id")],
    )


@migration(3, "search: passages, models, embeddings, full-text index")
def m003_passages(db: sqlite_utils.Database) -> None:
    db["passages"].create(
        {
            "id": int,
            "story_id": str,
            "seq": int,  # 0 is the card passage
            "kind": str,  # card | text
            "text": str,
            "start": int,
            "end": int,
            "text_hash": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id")],
    )
    db["passages"].create_index(["story_id", "seq"], unique=True)
    db["embedding_models"].create(
        {"name": str, "dimension": int, "created_at": str},
        pk="name",
    )
    db["embeddings"].create(
        {"passage_id": int, "model": str, "text_hash": str, "vector": bytes},
        pk=("passage_id", "model"),
        foreign_keys=[("passage_id", "passages", "id"), ("model", "embedding_models", "name")],
    )
    # rowid = passages.id; a plain FTS5 table (this SQLite predates contentless_delete),
    # kept in sync by the code that writes passages.
    db.execute(
        "CREATE VIRTUAL TABLE passages_fts USING fts5(text, title, tokenize='porter unicode61')"
    )


@migration(4, "tagging: tags and taxonomy state")
def m004_tags(db: sqlite_utils.Database) -> None:
    db["tags"].create(
        {
            "id": int,
            "story_id": str,
            "kind": str,  # component | impact
            "tag": str,
            "method": str,  # list | rule | semantic
            "free": int,  # 1 when a list item matched no canonical tag
            "original": str,  # the list's own text, when method = list
            "confidence": float,
            "evidence": str,
            "passage_id": int,
            "taxonomy_version": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id")],
    )
    db["tags"].create_index(["story_id"])
    db["tags"].create_index(["kind", "tag"])
    db["meta"].create({"key": str, "value": str}, pk="key")


@migration(5, "tagging: per-story input fingerprints for incremental re-tagging")
def m005_tag_inputs(db: sqlite_utils.Database) -> None:
    db["tag_inputs"].create(
        {
            "story_id": str,
            "fingerprint": str,
            "taxonomy_version": str,
            "mentions": str,  # JSON array of "kind:tag"
            "tagged_at": str,
        },
        pk="story_id",
        if_not_exists=True,  # databases tagged before this migration already have it
    )


@migration(6, "raw page bodies in their own table, hidden when published")
def m006_page_bodies(db: sqlite_utils.Database) -> None:
    # The compressed bodies are for offline re-extraction, not for readers: in a table of
    # their own they can be hidden by Datasette, and dropped from a published copy at once.
    db["page_bodies"].create(
        {"story_id": str, "body": bytes},
        pk="story_id",
        foreign_keys=[("story_id", "stories", "id")],
        if_not_exists=True,
    )
    if "body" in db["pages"].columns_dict:
        db.execute(
            "INSERT OR IGNORE INTO page_bodies (story_id, body) "
            "SELECT story_id, body FROM pages WHERE body IS NOT NULL"
        )
        db.execute("ALTER TABLE pages DROP COLUMN body")


@migration(7, "site chrome: extracted texts before cross-page filtering, dropped blocks")
def m007_site_chrome(db: sqlite_utils.Database) -> None:
    # documents.text is the text without the blocks that repeat across pages of one host
    # (extract/sitechrome.py); the extractor's own text stays here, so a host can be filtered
    # again whenever one of its pages changes. `pending` marks hosts to filter again.
    db["extracted_texts"].create(
        {
            "story_id": str,
            "host": str,
            "text": str,  # as the extractor returned it; null when there is no text
            "text_hash": str,
            "pending": int,  # 1 until the host's chrome filter has seen this text
            "min_pages": int,  # Settings.chrome_min_pages of the last filtering
            "chrome_blocks": int,  # blocks dropped from documents.text
            "chrome_chars": int,  # their characters
        },
        pk="story_id",
        foreign_keys=[("story_id", "stories", "id")],
        if_not_exists=True,
    )
    db["extracted_texts"].create_index(["host"], if_not_exists=True)
    db["site_chrome"].create(
        {"host": str, "block_hash": str, "pages": int, "text": str},
        pk=("host", "block_hash"),
        if_not_exists=True,
    )
    # documents stored before this migration hold the extractor's text, still unfiltered; the
    # next filtering pass fills in their host (null here) from `pages`
    db.execute(
        "INSERT OR IGNORE INTO extracted_texts (story_id, text, text_hash, pending, "
        "chrome_blocks, chrome_chars) SELECT story_id, text, text_hash, 1, 0, 0 FROM documents"
    )


@migration(8, "pages: failed attempts beside the last good state, archive lookups")
def m008_page_failures(db: sqlite_utils.Database) -> None:
    # A failed re-fetch no longer replaces a page's last good state (crawl/pagestore.py): the
    # attempt is recorded beside it. error_kind / error_message hold the last failure.
    columns = {
        "checked_at": str,  # last attempt, good or failed (fetched_at: last good response)
        "failures": int,  # consecutive failed attempts; 0 after a good response
        "failing_since": str,  # first failed attempt of the current run of failures
        "archive_lookup": str,  # pending | found | none | error, for a dead page
        "archive_error": str,  # message of the last failed archive lookup
        "archive_checked_at": str,
    }
    existing = db["pages"].columns_dict
    for name, kind in columns.items():
        if name not in existing:
            db["pages"].add_column(name, kind)
    db.execute("UPDATE pages SET checked_at = fetched_at, failures = 0 WHERE checked_at IS NULL")


@migration(9, "query_encoders: the ONNX export of each model, to embed queries without torch")
def m009_query_encoders(db: sqlite_utils.Database) -> None:
    # One row per model key: the transformer exported to ONNX from the weights the passages were
    # embedded with (model_hash), and the model's own tokenizer.json. It lives in the database so
    # a copied or published file carries the encoder of its own vectors (docs/search.md).
    db["query_encoders"].create(
        {
            "model": str,  # embeddings.model / embedding_models.name
            "model_hash": str,  # sha256 of the model directory's files the export was made from
            "onnx": bytes,  # the transformer's ONNX graph and weights (token embeddings out)
            "onnx_sha256": str,
            "tokenizer": str,  # the model's tokenizer.json
            "max_seq_length": int,  # sentence-transformers' truncation length
            "dimension": int,
            "created_at": str,
        },
        pk="model",
        if_not_exists=True,
    )


@migration(10, "incident cards: what happened, triggers, detection, duration, timeline")
def m010_incident_cards(db: sqlite_utils.Database) -> None:
    # One card per story with text or a list summary, derived from them like tags (incidents/);
    # an unknown field is NULL (or an empty JSON list), never a guess.
    db["incident_cards"].create(
        {
            "story_id": str,
            "summary": str,
            "triggers": str,  # JSON list of trigger ids (incidents/types.py), [] when unknown
            "detection": str,  # alert | customer-report | internal-report, NULL when unknown
            "started_at": str,  # as the text gives it: YYYY-MM-DD[ HH:MM], its own time zone
            "resolved_at": str,
            "duration_minutes": float,
            "duration_band": str,  # < 1 h | 1-6 h | 6-24 h | > 24 h, for facets
            "root_cause": str,
            "resolution": str,
            "action_items": str,  # JSON list of sentences
            "evidence": str,  # JSON: field -> {passage_id, method, confidence, quote}
            "input_hash": str,  # of the text, list summary and extractor version it came from
            "extractor_version": str,
            "updated_at": str,
        },
        pk="story_id",
        foreign_keys=[("story_id", "stories", "id")],
        if_not_exists=True,
    )
    db["incident_timeline"].create(
        {
            "story_id": str,
            "seq": int,
            "time": str,  # as written
            "at": str,  # YYYY-MM-DD HH:MM or HH:MM when the text gives no date; NULL if unread
            "event": str,
        },
        pk=("story_id", "seq"),
        foreign_keys=[("story_id", "stories", "id")],
        if_not_exists=True,
    )
