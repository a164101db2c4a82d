"""manifest.json: what an export wrote (files, row counts, sha256 sums, schemas) and what the
data is (counts, the lists and runs it was collected from, models, taxonomy), all read from
the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlite_utils

from mlopsmortem import HOMEPAGE, __version__
from mlopsmortem.db import MIGRATIONS_TABLE
from mlopsmortem.export.tables import current_embeddings_sql, json_list

MANIFEST_NAME = "manifest.json"
DATASHEET_NAME = "datasheet.md"
NOT_FETCHED = "not_fetched"  # link status of a story whose page was never fetched

LICENCE_NOTE = (
    "The texts in this dataset (list entries and summaries, page text, passages, titles, "
    "quoted evidence) belong to their authors and to the maintainers of the lists they come "
    "from; they are included for research on failures (search, analysis, classification) and "
    "are not relicensed by this export. Check the original source before republishing any "
    "text; a `--no-text` export carries none of the prose. The ids, tags, link statuses and "
    "counts are produced by mlopsmortem (Apache-2.0 code)."
)


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

    def describe(self, db: sqlite_utils.Database) -> None:
        """Fill in what the data is, from the database (inside the export's transaction)."""
        self.counts = _counts(db)
        self.collection = _collection(db)
        self.models = _models(db)
        self.taxonomy = _taxonomy(db)
        self.schema_version = _schema_version(db)

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
        components.update(set(json_list(row["components"]) or []))
        impacts.update(set(json_list(row["impacts"]) or []))
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
        **_card_counts(db),
    }


def _card_counts(db: sqlite_utils.Database) -> dict[str, Any]:
    """How many stories have an incident card, and the cards by trigger, detection and
    duration band (unknowns counted as "unknown")."""
    triggers: Counter[str] = Counter()
    for row in db.query("SELECT triggers FROM incident_cards"):
        triggers.update(set(json_list(row["triggers"]) or []))
    return {
        "incident_cards": next(db.query("SELECT COUNT(*) AS n FROM incident_cards"))["n"],
        "cards_by_trigger": _count_by(triggers.items()),
        "cards_by_detection": _count_by(
            (r["v"] or "unknown", r["n"])
            for r in db.query(
                "SELECT detection AS v, COUNT(*) AS n FROM incident_cards GROUP BY detection"
            )
        ),
        "cards_by_duration_band": _count_by(
            (r["v"] or "unknown", r["n"])
            for r in db.query(
                "SELECT duration_band AS v, COUNT(*) AS n FROM incident_cards"
                " GROUP BY duration_band"
            )
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
            "SELECT e.model, COUNT(*) AS n " + current_embeddings_sql() + " GROUP BY e.model"
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
