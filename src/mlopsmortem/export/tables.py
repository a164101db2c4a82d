"""What each exported file holds: its columns (name, Arrow type, description, whether it is
prose that `--no-text` leaves out) and the query that yields its rows, in a stable order.

Values come out of SQLite as whatever was stored; `coerce` turns each into the plain Python
type its column declares, so every writer sees the same values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import sqlite_utils


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    text: bool = False  # free-form prose: left out by --no-text


@dataclass(frozen=True)
class Table:
    """One exported file: its columns and the query that yields its rows, in a stable order."""

    name: str
    description: str
    columns: tuple[Column, ...]
    rows: Callable[[sqlite_utils.Database], Iterator[dict[str, Any]]]


STRINGS = pa.list_(pa.string())

STORY_COLUMNS = (
    Column("id", pa.string(), "Stable story id: first 16 hex digits of sha256(canonical_url)."),
    Column("url", pa.string(), "The URL as a list first wrote it."),
    Column("canonical_url", pa.string(), "Normalised URL the id is derived from."),
    Column("archive_url", pa.string(), "Archive snapshot a list linked to instead, if any."),
    Column("category", pa.string(), "'failure story' or 'resource'."),
    Column(
        "title",
        pa.string(),
        "Title parsed from the list entry (--no-text: without words quoted from a summary).",
    ),
    Column("publisher", pa.string(), "Publisher named by the list (organisation or author)."),
    Column("kind", pa.string(), "Kind of write-up named by the list (blog post, talk, ...)."),
    Column("year", pa.int64(), "Year named by the list."),
    Column("summary", pa.string(), "Summary as written in the list (the list's prose).", True),
    Column(
        "components",
        STRINGS,
        "Canonical component tags (taxonomy names); null until the story is tagged.",
    ),
    Column("impacts", STRINGS, "Canonical impact tags (taxonomy ids); null until tagged."),
    Column("sources", STRINGS, "Names of the lists that name (or named) the story, sorted."),
    Column(
        "link_status",
        pa.string(),
        "live, redirected, dead, archived, blocked, refused or error; null: never fetched.",
    ),
    Column("word_count", pa.int64(), "Words of extracted page text; null: no text."),
    Column("language", pa.string(), "Language of the page text, as detected on extraction."),
    Column("first_seen", pa.string(), "When a list first named the story (UTC, ISO 8601)."),
    Column("last_seen", pa.string(), "When a list last named the story (UTC)."),
    Column("removed_at", pa.string(), "When the story left every list; null while listed."),
)

PROVENANCE_COLUMNS = (
    Column("id", pa.int64(), "Provenance row id."),
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("source_id", pa.int64(), "The list (manifest.json sources[].id)."),
    Column("source", pa.string(), "The list's name."),
    Column("occurrence", pa.int64(), "n-th appearance of the story in this list (0-based)."),
    Column("line", pa.int64(), "Line of the entry in the list."),
    Column("section", pa.string(), "Heading the entry appears under."),
    Column("list_url", pa.string(), "The URL exactly as written in the list."),
    Column("archive_url", pa.string(), "Archive snapshot the entry linked to, if any."),
    Column("category", pa.string(), "'failure story' or 'resource', as this list implies."),
    Column(
        "title",
        pa.string(),
        "Title parsed from this entry (--no-text: without words quoted from its summary).",
    ),
    Column("publisher", pa.string(), "Publisher parsed from this entry."),
    Column("kind", pa.string(), "Kind parsed from this entry."),
    Column("year", pa.int64(), "Year parsed from this entry."),
    Column("summary", pa.string(), "Summary parsed from this entry (the list's prose).", True),
    Column("tag", pa.string(), "A resource list's own *tag* for the entry."),
    Column("list_title", pa.string(), "The entry's link text, as written."),
    Column("list_involved", STRINGS, "The entry's 'involved' items, exactly as written."),
    Column("list_impact", STRINGS, "The entry's 'impact' items, exactly as written."),
    Column("list_text", pa.string(), "The entry's whole text, as written.", True),
    Column("first_seen", pa.string(), "When this list first had the entry (UTC)."),
    Column("last_seen", pa.string(), "When this list last had the entry (UTC)."),
    Column("removed_at", pa.string(), "When the entry left this list; null while listed."),
)

PAGE_COLUMNS = (
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("url", pa.string(), "The URL requested (the story's canonical URL)."),
    Column("final_url", pa.string(), "Where redirects ended."),
    Column("archive_url", pa.string(), "Archive snapshot used while the page is dead."),
    Column(
        "link_status", pa.string(), "live, redirected, dead, archived, blocked, refused, error."
    ),
    Column("status_code", pa.int64(), "HTTP status of the last response."),
    Column("content_type", pa.string(), "Content-Type of the stored response."),
    Column("etag", pa.string(), "ETag of the stored response."),
    Column("last_modified", pa.string(), "Last-Modified of the stored response."),
    Column("fetched_at", pa.string(), "When the page was last fetched (UTC)."),
    Column("content_hash", pa.string(), "sha256 of the stored body (the body is not exported)."),
    Column("body_size", pa.int64(), "Bytes of the stored body."),
    Column("truncated", pa.bool_(), "True when the body was cut at the size limit."),
    Column("error_kind", pa.string(), "Short reason of the last failure (http_404, timeout...)."),
    Column("error_message", pa.string(), "The crawler's message for the last failure."),
    Column("changed_at", pa.string(), "When the page's content last changed (UTC)."),
    Column("dead_since", pa.string(), "When the link was first seen dead; null while alive."),
)

DOCUMENT_COLUMNS = (
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("title", pa.string(), "Title found in the page."),
    Column("author", pa.string(), "Author found in the page."),
    Column("date", pa.string(), "Date found in the page."),
    Column("sitename", pa.string(), "Site name found in the page."),
    Column("language", pa.string(), "Detected language."),
    Column("word_count", pa.int64(), "Words of text."),
    Column("text", pa.string(), "The page's main text as extracted.", True),
    Column("text_hash", pa.string(), "sha256 of the text."),
    Column("content_hash", pa.string(), "sha256 of the page body the text came from."),
    Column("extractor", pa.string(), "Extractor used (trafilatura, pdf, ...)."),
    Column("extractor_version", pa.string(), "Its version."),
    Column("no_text_reason", pa.string(), "Why there is no text, when there is none."),
    Column("extracted_at", pa.string(), "When the text was extracted (UTC)."),
)

PASSAGE_COLUMNS = (
    Column("id", pa.int64(), "Passage id (embeddings.passage_id)."),
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("seq", pa.int64(), "Order within the story; 0 is the card passage."),
    Column(
        "kind",
        pa.string(),
        "'card' (what the lists say: title, summary, tags) or 'text' (page text).",
    ),
    Column("text", pa.string(), "The passage.", True),
    Column("start", pa.int64(), "Start offset in documents.text (text passages)."),
    Column("end", pa.int64(), "End offset in documents.text (text passages)."),
    Column("text_hash", pa.string(), "sha256 of the passage text."),
)

TAG_COLUMNS = (
    Column("id", pa.int64(), "Tag row id."),
    Column("story_id", pa.string(), "The story (stories.id)."),
    Column("kind", pa.string(), "'component' or 'impact'."),
    Column("tag", pa.string(), "Canonical tag (or the list's own item when free)."),
    Column("method", pa.string(), "'list' (hand tag from a list), 'rule' or 'semantic'."),
    Column("free", pa.bool_(), "True when a list item matched no canonical tag."),
    Column("original", pa.string(), "The list's own item, for method 'list'."),
    Column("confidence", pa.float64(), "Confidence in [0, 1]."),
    Column("evidence", pa.string(), "What the tag was found in (may quote the page).", True),
    Column("passage_id", pa.int64(), "Passage the evidence comes from, if any."),
    Column("taxonomy_version", pa.string(), "Taxonomy version the tag was made with."),
)


def embedding_columns(dimension: int) -> tuple[Column, ...]:
    return (
        Column("passage_id", pa.int64(), "The passage (passages.id)."),
        Column("story_id", pa.string(), "The story (stories.id)."),
        Column("model", pa.string(), "Embedding model name."),
        Column("dimension", pa.int64(), "Vector length."),
        Column("text_hash", pa.string(), "sha256 of the passage text the vector embeds."),
        Column(
            "vector",
            pa.list_(pa.float32(), dimension),
            "L2-normalised float32 embedding (cosine similarity = dot product).",
        ),
    )


def type_name(type_: pa.DataType) -> str:
    """Arrow types spelled the way the datasheet documents them."""
    if pa.types.is_fixed_size_list(type_):
        return f"fixed_size_list<float32>[{type_.list_size}]"
    if pa.types.is_list(type_):
        return "list<string>"
    return {"double": "float64", "bool": "bool"}.get(str(type_), str(type_))


# --------------------------------------------------------------------------- rows


def json_list(raw: Any) -> list[str] | None:
    """A JSON array column as a list of strings. The database should only hold arrays, but
    one odd row must not stop an export: anything else is kept as a one-item list."""
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def coerce(value: Any, type_: pa.DataType) -> Any:
    """A value as the plain Python type its column declares (SQLite types are only advisory)."""
    if value is None:
        return None
    if pa.types.is_string(type_):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if pa.types.is_int64(type_):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if pa.types.is_float64(type_):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    if pa.types.is_boolean(type_):
        return bool(int(value))
    if pa.types.is_fixed_size_list(type_):
        return value  # a float32 ndarray, made by _embedding_rows
    if pa.types.is_list(type_):
        return json_list(value)
    raise TypeError(f"no coercion for {type_}")


LIST_SUMMARIES = "_list_summaries"  # a story row's key (not a column): its entries' summaries


def _story_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    summaries: dict[str, list[str]] = {}
    for row in db.query(
        "SELECT ss.story_id, src.name, ss.summary FROM story_sources ss "
        "JOIN sources src ON src.id = ss.source_id ORDER BY ss.id"
    ):
        if row["name"] not in names.setdefault(row["story_id"], []):
            names[row["story_id"]].append(row["name"])
        if isinstance(row["summary"], str):
            summaries.setdefault(row["story_id"], []).append(row["summary"])
    for row in db.query(
        "SELECT s.*, p.link_status, d.word_count, d.language FROM stories s "
        "LEFT JOIN pages p ON p.story_id = s.id LEFT JOIN documents d ON d.story_id = s.id "
        "ORDER BY s.id"
    ):
        row["sources"] = sorted(names.get(row["id"], []))
        row[LIST_SUMMARIES] = summaries.get(row["id"], [])
        yield row


def title_without_summary(row: dict[str, Any]) -> dict[str, Any]:
    """The row, for `--no-text`, with a title that quotes a list's summary cut back to the
    link text or publisher it starts with.

    A format may build a title out of the entry's prose: danluu's is "<link text>: <first
    sentence of the summary>" (`lists.formats`), and --no-text leaves the summary out. A
    title "<name>: <rest>", where <name> is the row's `list_title` or `publisher` and <rest>
    (without a closing "…") begins the row's summary or one of its story's list summaries,
    becomes <name>. Any other title stays as it is."""
    title = row.get("title")
    if not isinstance(title, str):
        return row
    summaries = [row.get("summary"), *row.get(LIST_SUMMARIES, ())]
    starts = [s.strip() for s in summaries if isinstance(s, str) and s.strip()]
    if not starts:
        return row
    for name in (row.get("list_title"), row.get("publisher")):
        if not isinstance(name, str) or not title.startswith(name + ": "):
            continue
        rest = title[len(name) + 2 :].removesuffix("…").strip()
        if rest and any(summary.startswith(rest) for summary in starts):
            return {**row, "title": name}
    return row


def _provenance_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    yield from db.query(
        "SELECT ss.*, src.name AS source FROM story_sources ss "
        "LEFT JOIN sources src ON src.id = ss.source_id ORDER BY ss.id"
    )


def _query_rows(sql: str) -> Callable[[sqlite_utils.Database], Iterator[dict[str, Any]]]:
    def rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
        yield from db.query(sql)

    return rows


def current_embeddings_sql(where: str = "") -> str:
    # Only vectors of the passage's current text and of the model's registered dimension: a
    # stale vector no longer embeds what the passages file says.
    return (
        "FROM embeddings e JOIN passages p ON p.id = e.passage_id "
        "JOIN embedding_models m ON m.name = e.model "
        "WHERE e.text_hash IS p.text_hash AND length(e.vector) = 4 * m.dimension" + where
    )


def _embedding_rows(
    model: str, dimension: int
) -> Callable[[sqlite_utils.Database], Iterator[dict[str, Any]]]:
    def rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
        for row in db.query(
            "SELECT e.passage_id, p.story_id, e.model, e.text_hash, e.vector "
            + current_embeddings_sql(" AND e.model = ?")
            + " ORDER BY e.passage_id",
            [model],
        ):
            row["dimension"] = dimension
            row["vector"] = np.frombuffer(row["vector"], dtype="<f4").astype(np.float32)
            yield row

    return rows


BASE_TABLES = (
    Table(
        "stories",
        "One row per story (a linked write-up), with its canonical tags and link status.",
        STORY_COLUMNS,
        _story_rows,
    ),
    Table(
        "provenance",
        "One row per appearance of a story in a list, with the list's own wording.",
        PROVENANCE_COLUMNS,
        _provenance_rows,
    ),
    Table(
        "pages",
        "The last fetch of each story's page: link status and HTTP metadata (no bodies).",
        PAGE_COLUMNS,
        _query_rows("SELECT * FROM pages ORDER BY story_id"),
    ),
    Table(
        "documents",
        "Text and metadata extracted from each fetched page.",
        DOCUMENT_COLUMNS,
        _query_rows("SELECT * FROM documents ORDER BY story_id"),
    ),
    Table(
        "passages",
        "The chunks that are searched and embedded: a card per story, then its page text.",
        PASSAGE_COLUMNS,
        _query_rows("SELECT * FROM passages ORDER BY id"),
    ),
    Table(
        "tags",
        "Every component and impact tag with how it was found.",
        TAG_COLUMNS,
        _query_rows("SELECT * FROM tags ORDER BY id"),
    ),
)


def _model_slug(name: str) -> str:
    """A model name (possibly a path) as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def embedding_tables(db: sqlite_utils.Database) -> list[Table]:
    """One file per model (a fixed-size vector column needs one dimension per file)."""
    tables = []
    for row in db.query(
        "SELECT name, dimension FROM embedding_models m "
        "WHERE EXISTS (SELECT 1 FROM embeddings e WHERE e.model = m.name) ORDER BY name"
    ):
        tables.append(
            Table(
                f"embeddings-{_model_slug(row['name'])}",
                f"Passage vectors of model {row['name']} ({row['dimension']} dimensions).",
                embedding_columns(int(row["dimension"])),
                _embedding_rows(row["name"], int(row["dimension"])),
            )
        )
    return tables
