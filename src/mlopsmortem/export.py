"""Export the knowledge base as a research dataset: JSONL, CSV or Parquet, with a datasheet.

Every byte written is a function of the database alone: rows in id order, no export
timestamps, JSON with sorted keys and Parquet with pinned writer options. Two exports of the
same database (with the same pyarrow) are byte-identical, so a published dataset only
changes when the data does, and a diff of two releases shows real changes.

The files hold plain types only (strings, integers, floats, booleans, lists of strings and
fixed-size lists of float32), so they load with pyarrow, `datasets.load_dataset("parquet")`,
`json` or `csv` without any mlopsmortem code.

`--no-text` leaves out every column of free-form prose, whoever wrote it: page text,
passages, tag evidence (a quote from a page) and also the lists' own summaries and entry
texts, which are as much their authors' writing as a blog post is. Titles, publishers,
sections and the lists' short involved/impact items stay: they identify and classify a story
rather than tell it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlite_utils

from mlopsmortem import HOMEPAGE, __version__
from mlopsmortem.db import MIGRATIONS_TABLE
from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.history import open_existing_db
from mlopsmortem.progress import progress_bar
from mlopsmortem.settings import Settings

FORMATS = ("jsonl", "csv", "parquet")
MANIFEST_NAME = "manifest.json"
DATASHEET_NAME = "datasheet.md"
NOT_FETCHED = "not_fetched"  # link status of a story whose page was never fetched

# Pinned so that the bytes depend on the data only (and on the pyarrow version, which is
# recorded in each file's `created_by`). zstd at a fixed level is deterministic.
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 9,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "store_schema": True,
}
# Each batch becomes one Parquet row group; a fixed size keeps the file layout fixed too.
BATCH_ROWS = 10_000

LICENCE_NOTE = (
    "The texts in this dataset (list entries and summaries, page text, passages, titles, "
    "quoted evidence) belong to their authors and to the maintainers of the lists they come "
    "from; they are included for research on failures (search, analysis, classification) and "
    "are not relicensed by this export. Check the original source before republishing any "
    "text; a `--no-text` export carries none of the prose. The ids, tags, link statuses and "
    "counts are produced by mlopsmortem (Apache-2.0 code)."
)


class ExportError(MlopsmortemError):
    """The export could not be written (unknown format, output path not a directory)."""


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
    Column("title", pa.string(), "Title parsed from the list entry."),
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
    Column("title", pa.string(), "Title parsed from this entry."),
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


# --------------------------------------------------------------------------- rows


def _json_list(raw: Any) -> list[str] | None:
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


def _coerce(value: Any, type_: pa.DataType) -> Any:
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
        return _json_list(value)
    raise TypeError(f"no coercion for {type_}")


def _story_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    for row in db.query(
        "SELECT DISTINCT ss.story_id, src.name FROM story_sources ss "
        "JOIN sources src ON src.id = ss.source_id"
    ):
        names.setdefault(row["story_id"], []).append(row["name"])
    for row in db.query(
        "SELECT s.*, p.link_status, d.word_count, d.language FROM stories s "
        "LEFT JOIN pages p ON p.story_id = s.id LEFT JOIN documents d ON d.story_id = s.id "
        "ORDER BY s.id"
    ):
        row["sources"] = sorted(names.get(row["id"], []))
        yield row


def _provenance_rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    yield from db.query(
        "SELECT ss.*, src.name AS source FROM story_sources ss "
        "LEFT JOIN sources src ON src.id = ss.source_id ORDER BY ss.id"
    )


def _query_rows(sql: str) -> Callable[[sqlite_utils.Database], Iterator[dict[str, Any]]]:
    def rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
        yield from db.query(sql)

    return rows


def _current_embeddings_sql(where: str = "") -> str:
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
            + _current_embeddings_sql(" AND e.model = ?")
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


# --------------------------------------------------------------------------- writers


def _batched(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def arrow_schema(columns: Iterable[Column]) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, c.type, metadata={"description": c.description}) for c in columns]
    )


def _arrow_batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    arrays = []
    for f in schema:
        values = [row[f.name] for row in rows]
        if pa.types.is_fixed_size_list(f.type):
            # one contiguous float32 buffer: far cheaper than a Python list per vector
            flat = np.concatenate(values) if values else np.empty(0, np.float32)
            arrays.append(
                pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), f.type.list_size)
            )
        else:
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(path: Path, columns: tuple[Column, ...], rows: Iterator[dict]) -> int:
    schema = arrow_schema(columns)
    count = 0
    with pq.ParquetWriter(path, schema, **PARQUET_OPTIONS) as writer:
        for batch in _batched(rows, BATCH_ROWS):
            writer.write_table(_arrow_batch(batch, schema))
            count += len(batch)
    return count


def _jsonable(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _write_jsonl(path: Path, columns: tuple[Column, ...], rows: Iterator[dict]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            record = {c.name: _jsonable(row[c.name]) for c in columns}
            out.write(json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False))
            out.write("\n")
            count += 1
    return count


def _csv_cell(value: Any) -> str:
    """CSV has no types: lists are JSON arrays in one cell, null is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, np.ndarray | list):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_csv(path: Path, columns: tuple[Column, ...], rows: Iterator[dict]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow([_csv_cell(row[c.name]) for c in columns])
            count += 1
    return count


WRITERS: dict[str, Callable[[Path, tuple[Column, ...], Iterator[dict]], int]] = {
    "parquet": _write_parquet,
    "jsonl": _write_jsonl,
    "csv": _write_csv,
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def type_name(type_: pa.DataType) -> str:
    """Arrow types spelled the way the datasheet documents them."""
    if pa.types.is_fixed_size_list(type_):
        return f"fixed_size_list<float32>[{type_.list_size}]"
    if pa.types.is_list(type_):
        return "list<string>"
    return {"double": "float64", "bool": "bool"}.get(str(type_), str(type_))


# --------------------------------------------------------------------------- manifest


@dataclass
class ExportedFile:
    name: str
    table: str
    description: str
    rows: int
    bytes: int
    sha256: str
    columns: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ExportManifest:
    """What an export wrote and what the data is: the content of manifest.json."""

    format: str
    out_dir: Path
    with_embeddings: bool
    no_text: bool
    files: list[ExportedFile] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    taxonomy: dict[str, Any] = field(default_factory=dict)
    schema_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        # out_dir is left out on purpose: where a copy was written is not part of the data
        return {
            "name": "mlopsmortem",
            "description": "Public MLOps and infrastructure failure stories, from curated lists.",
            "homepage": HOMEPAGE,
            "generator": f"mlopsmortem {__version__}",
            "pyarrow": pa.__version__,
            "schema_version": self.schema_version,
            "format": self.format,
            "options": {"with_embeddings": self.with_embeddings, "no_text": self.no_text},
            "files": [f.as_dict() for f in self.files],
            "counts": self.counts,
            "collection": self.collection,
            "models": self.models,
            "taxonomy": self.taxonomy,
            "licence": LICENCE_NOTE,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"{f.name}: {f.rows} rows" for f in self.files]
        lines.append(
            f"wrote {len(self.files)} data files, {DATASHEET_NAME} and {MANIFEST_NAME} "
            f"to {self.out_dir}"
        )
        return lines


def _count_by(pairs: Iterable[tuple[Any, int]]) -> dict[str, int]:
    """Counts sorted by count, then name: the order a reader scans a table in."""
    items = sorted(((str(k), int(v)) for k, v in pairs), key=lambda kv: (-kv[1], kv[0]))
    return dict(items)


def _counts(db: sqlite_utils.Database) -> dict[str, Any]:
    components: Counter[str] = Counter()
    impacts: Counter[str] = Counter()
    for row in db.query("SELECT components, impacts FROM stories"):
        components.update(set(_json_list(row["components"]) or []))
        impacts.update(set(_json_list(row["impacts"]) or []))
    scalar = next(
        db.query(
            "SELECT COUNT(*) AS stories, COUNT(removed_at) AS removed, "
            "(SELECT COUNT(*) FROM stories WHERE components IS NULL AND impacts IS NULL) "
            "AS untagged FROM stories"
        )
    )
    return {
        "stories": scalar["stories"],
        "removed_from_lists": scalar["removed"],
        "untagged": scalar["untagged"],
        "by_category": _count_by(
            (r["category"] or "unknown", r["n"])
            for r in db.query("SELECT category, COUNT(*) AS n FROM stories GROUP BY category")
        ),
        "by_link_status": _count_by(
            (r["status"] or NOT_FETCHED, r["n"])
            for r in db.query(
                "SELECT p.link_status AS status, COUNT(*) AS n FROM stories s "
                "LEFT JOIN pages p ON p.story_id = s.id GROUP BY p.link_status"
            )
        ),
        "by_component": _count_by(components.items()),
        "by_impact": _count_by(impacts.items()),
        "tags_by_method": _count_by(
            (f"{r['kind']}/{r['method']}", r["n"])
            for r in db.query("SELECT kind, method, COUNT(*) AS n FROM tags GROUP BY kind, method")
        ),
    }


def _collection(db: sqlite_utils.Database) -> dict[str, Any]:
    sources = [
        {
            k: r[k]
            for k in (
                "id",
                "name",
                "location",
                "format",
                "last_read",
                "etag",
                "last_modified",
                "content_hash",
                "status",
                "error",
            )
        }
        for r in db.query("SELECT * FROM sources ORDER BY id")
    ]
    runs = {
        r["command"]: {
            "runs": r["n"],
            "completed": r["completed"],
            "first": r["first"],
            "last": r["last"],
        }
        for r in db.query(
            "SELECT command, COUNT(*) AS n, SUM(status IN ('ok', 'partial')) AS completed, "
            "MIN(started_at) AS first, MAX(started_at) AS last FROM runs "
            "GROUP BY command ORDER BY command"
        )
    }
    crawl_dates = [
        r["day"]
        for r in db.query(
            "SELECT DISTINCT substr(started_at, 1, 10) AS day FROM runs "
            "WHERE command IN ('crawl', 'fetch') AND status IN ('ok', 'partial') ORDER BY day"
        )
    ]
    fetched = next(db.query("SELECT MIN(fetched_at) AS first, MAX(fetched_at) AS last FROM pages"))
    extractors = [
        f"{r['extractor']} {r['extractor_version'] or ''}".strip()
        for r in db.query(
            "SELECT DISTINCT extractor, extractor_version FROM documents "
            "WHERE extractor IS NOT NULL ORDER BY extractor, extractor_version"
        )
    ]
    return {
        "sources": sources,
        "runs_by_command": runs,
        "crawl_dates": crawl_dates,
        "pages_fetched": {"first": fetched["first"], "last": fetched["last"]},
        "extractors": extractors,
    }


def _models(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    counts = {
        r["model"]: r["n"]
        for r in db.query(
            "SELECT e.model, COUNT(*) AS n " + _current_embeddings_sql() + " GROUP BY e.model"
        )
    }
    return [
        {
            "name": r["name"],
            "dimension": r["dimension"],
            "created_at": r["created_at"],
            "vectors": counts.get(r["name"], 0),
            "vectors_left_out": r["total"] - counts.get(r["name"], 0),
        }
        for r in db.query(
            "SELECT m.*, (SELECT COUNT(*) FROM embeddings e WHERE e.model = m.name) AS total "
            "FROM embedding_models m ORDER BY m.name"
        )
    ]


def _taxonomy(db: sqlite_utils.Database) -> dict[str, Any]:
    row = next(db.query("SELECT value FROM meta WHERE key = 'taxonomy_version'"), None)
    return {
        "version": row["value"] if row else None,
        "versions_in_tags": [
            r["v"]
            for r in db.query(
                "SELECT DISTINCT taxonomy_version AS v FROM tags "
                "WHERE taxonomy_version IS NOT NULL ORDER BY v"
            )
        ],
    }


def _schema_version(db: sqlite_utils.Database) -> int | None:
    if MIGRATIONS_TABLE not in db.table_names():
        return None
    return next(db.query(f"SELECT MAX(number) AS n FROM [{MIGRATIONS_TABLE}]"))["n"]


# --------------------------------------------------------------------------- datasheet


def _md(value: Any) -> str:
    """A value in a markdown table cell."""
    if value is None or value == "":
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _count_table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"**{title}**: none yet.", ""]
    lines = [f"| {title} | stories |", "|---|---:|"]
    lines += [f"| {_md(k)} | {v} |" for k, v in counts.items()]
    return lines + [""]


FORMAT_NOTES = {
    "parquet": (
        "Parquet (zstd). Lists are `list<string>` columns and vectors `fixed_size_list<float32>`; "
        "each column carries its description in the field metadata."
    ),
    "jsonl": (
        "JSON Lines, UTF-8, one object per row with sorted keys; null is `null`, lists and "
        "vectors are JSON arrays."
    ),
    "csv": (
        "CSV, UTF-8, header row, `\\n` line ends. An empty cell is null; booleans are "
        "`true`/`false`; lists and vectors are JSON arrays inside one cell."
    ),
}


def _loading(fmt: str) -> list[str]:
    if fmt == "parquet":
        return [
            "```python",
            "import pyarrow.parquet as pq",
            'stories = pq.read_table("stories.parquet")',
            "",
            "from datasets import load_dataset",
            'ds = load_dataset("parquet", data_files={"train": "stories.parquet"})',
            "```",
        ]
    if fmt == "jsonl":
        return [
            "```python",
            "import json",
            'stories = [json.loads(line) for line in open("stories.jsonl", encoding="utf-8")]',
            "",
            "from datasets import load_dataset",
            'ds = load_dataset("json", data_files={"train": "stories.jsonl"})',
            "```",
        ]
    return [
        "```python",
        "import csv, json",
        'stories = list(csv.DictReader(open("stories.csv", encoding="utf-8", newline="")))',
        'components = json.loads(stories[0]["components"] or "null")',
        "```",
    ]


def datasheet_markdown(manifest: dict[str, Any]) -> str:
    """The datasheet, written from the manifest so the two always agree."""
    counts = manifest["counts"]
    collection = manifest["collection"]
    fmt = manifest["format"]
    no_text = manifest["options"]["no_text"]
    lines = [
        "# mlopsmortem: a dataset of MLOps and infrastructure failure stories",
        "",
        f"Exported by {manifest['generator']} (schema version {manifest['schema_version']}, "
        f"pyarrow {manifest['pyarrow']}) from an mlopsmortem knowledge base; see "
        f"{manifest['homepage']}.",
        "",
        "## What it is",
        "",
        "Public write-ups of failures — postmortems, incident reports, talks — about machine "
        "learning systems and the infrastructure under them, as named by curated link lists. "
        "Each story has the lists' own description of it, the state of its link, the text of "
        "its page split into passages, and component and impact tags.",
        "",
    ]
    if no_text:
        lines += [
            "**This is a metadata-only export (`--no-text`).** It has no page text, no passages' "
            "text, no tag evidence and none of the lists' summaries or entry texts: only ids, "
            "titles, classifications, link states, tags and (if included) embeddings.",
            "",
        ]
    lines += ["## Files", "", "| file | rows | description | sha256 |", "|---|---:|---|---|"]
    for f in manifest["files"]:
        lines.append(f"| `{f['name']}` | {f['rows']} | {_md(f['description'])} | `{f['sha256']}` |")
    lines += [
        "",
        f"Format: {FORMAT_NOTES[fmt]} Rows are ordered by id. `{MANIFEST_NAME}` holds everything "
        "in this datasheet in machine-readable form.",
        "",
        "## Composition",
        "",
        f"{counts['stories']} stories, {counts['removed_from_lists']} of them no longer on any "
        f"list (kept, with `removed_at`), {counts['untagged']} not yet tagged.",
        "",
    ]
    lines += _count_table("category", counts["by_category"])
    lines += _count_table("link status", counts["by_link_status"])
    lines += _count_table("component", counts["by_component"])
    lines += _count_table("impact", counts["by_impact"])
    if counts["tags_by_method"]:
        lines += ["| tags (kind/method) | tags |", "|---|---:|"]
        lines += [f"| {_md(k)} | {v} |" for k, v in counts["tags_by_method"].items()]
        lines.append("")
    lines += [
        "## How it was collected",
        "",
        "mlopsmortem reads the lists below, gives each linked URL a canonical form and a stable "
        "id, fetches every page (respecting robots.txt, with a per-host delay, refusing private "
        "addresses), falls back to the Internet Archive for dead links, extracts the main text, "
        "splits it into passages, tags components and impacts (the lists' own hand tags, rules "
        "over a taxonomy, and semantic similarity) and embeds the passages.",
        "",
        "| list | location | format | last read | ETag | Last-Modified | content sha256 | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in collection["sources"]:
        lines.append(
            f"| {_md(s['name'])} | {_md(s['location'])} | {_md(s['format'])} | "
            f"{_md(s['last_read'])} | {_md(s['etag'])} | {_md(s['last_modified'])} | "
            f"{_md(s['content_hash'])} | {_md(s['status'])} |"
        )
    lines.append("")
    if collection["runs_by_command"]:
        lines += ["| command | runs | completed | first | last |", "|---|---:|---:|---|---|"]
        for command, r in collection["runs_by_command"].items():
            lines.append(
                f"| {_md(command)} | {r['runs']} | {r['completed']} | {_md(r['first'])} | "
                f"{_md(r['last'])} |"
            )
        lines.append("")
    dates = collection["crawl_dates"]
    lines += [
        f"Crawl dates (UTC): {', '.join(dates) if dates else 'none yet'}.",
        f"Pages fetched between {_md(collection['pages_fetched']['first'])} and "
        f"{_md(collection['pages_fetched']['last'])}.",
        f"Text extractors: {', '.join(collection['extractors']) or 'none yet'}.",
        "",
        "## Models and taxonomy",
        "",
    ]
    for m in manifest["models"]:
        lines.append(
            f"- embedding model `{m['name']}`: {m['dimension']} dimensions, "
            f"{m['vectors']} current vectors (stale vectors left out: {m['vectors_left_out']}), "
            f"registered {m['created_at']}"
        )
    if not manifest["models"]:
        lines.append("- no embedding model yet")
    taxonomy = manifest["taxonomy"]
    lines += [
        f"- taxonomy version: {_md(taxonomy['version'])}"
        + (
            f" (tags made with: {', '.join(taxonomy['versions_in_tags'])})"
            if taxonomy["versions_in_tags"]
            else ""
        ),
        "",
        "## Schema",
        "",
    ]
    for f in manifest["files"]:
        lines += [
            f"### `{f['name']}`",
            "",
            _md(f["description"]),
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{c['name']}` | `{c['type']}` | {_md(c['description'])} |" for c in f["columns"]
        ]
        lines.append("")
    lines += ["## Loading", ""]
    lines += _loading(fmt)
    lines += [
        "",
        "## Licence",
        "",
        manifest["licence"],
        "",
        "## Reproducibility",
        "",
        "The export contains no export date: two exports of the same database with the same "
        "pyarrow version are byte-identical, and the sha256 sums above change only when the "
        "data does.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- export


def _previous_files(out_dir: Path) -> set[str]:
    """Files an earlier export listed in its manifest, so a re-export can drop stale ones
    (an embedding model that is gone, another format) without touching anything else."""
    path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        names = {f["name"] for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n[:1] != "."}


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def export_dataset(
    db: sqlite_utils.Database,
    settings: Settings,
    fmt: str,
    out_dir: Path,
    with_embeddings: bool = False,
    no_text: bool = False,
) -> ExportManifest:
    """Write the dataset files, datasheet.md and manifest.json into out_dir."""
    if fmt not in WRITERS:
        raise ExportError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(out_dir)
    manifest = ExportManifest(fmt, out_dir, with_embeddings, no_text)
    write = WRITERS[fmt]
    # One read transaction: every file sees the same snapshot even while a crawl writes (WAL).
    db.conn.commit()
    db.conn.execute("BEGIN")
    try:
        tables = list(BASE_TABLES) + (embedding_tables(db) if with_embeddings else [])
        with progress_bar("exporting", quiet=settings.quiet) as bar:
            bar.start(len(tables))
            for table in tables:
                columns = tuple(c for c in table.columns if not (no_text and c.text))
                rows = (
                    {c.name: _coerce(row.get(c.name), c.type) for c in columns}
                    for row in table.rows(db)
                )
                name = f"{table.name}.{fmt}"
                tmp = out_dir / f".{name}.tmp"
                count = write(tmp, columns, rows)
                os.replace(tmp, out_dir / name)
                manifest.files.append(
                    ExportedFile(
                        name=name,
                        table=table.name,
                        description=table.description,
                        rows=count,
                        bytes=(out_dir / name).stat().st_size,
                        sha256=_sha256(out_dir / name),
                        columns=[
                            {
                                "name": c.name,
                                "type": type_name(c.type),
                                "description": c.description,
                            }
                            for c in columns
                        ],
                    )
                )
                bar.advance()
        manifest.counts = _counts(db)
        manifest.collection = _collection(db)
        manifest.models = _models(db)
        manifest.taxonomy = _taxonomy(db)
        manifest.schema_version = _schema_version(db)
    finally:
        db.conn.rollback()
    data = manifest.as_dict()
    _replace_text(out_dir / DATASHEET_NAME, datasheet_markdown(data))
    _replace_text(
        out_dir / MANIFEST_NAME,
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
    )
    for stale in previous - {f.name for f in manifest.files} - {DATASHEET_NAME, MANIFEST_NAME}:
        (out_dir / stale).unlink(missing_ok=True)
    return manifest


def run_export(
    settings: Settings,
    fmt: str,
    out_dir: Path,
    *,
    with_embeddings: bool = False,
    no_text: bool = False,
) -> ExportManifest:
    """`mlopsmortem export`: open the existing database and export it."""
    db = open_existing_db(settings)
    try:
        return export_dataset(db, settings, fmt, out_dir, with_embeddings, no_text)
    finally:
        db.close()
