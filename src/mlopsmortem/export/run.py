"""Export the knowledge base as a research dataset: JSONL, CSV or Parquet, with a datasheet.

Every byte written is a function of the database alone: rows in id order, no export
timestamps, JSON with sorted keys and Parquet with pinned writer options. Two exports of the
same database (with the same pyarrow) are byte-identical, so a published dataset only
changes when the data does, and a diff of two releases shows real changes.

The files hold plain types only (strings, integers, floats, booleans, lists of strings and
fixed-size lists of float32), so they load with pyarrow, `datasets.load_dataset("parquet")`,
`json` or `csv` without any mlopsmortem code.

`--no-text` leaves out every column of free-form prose, whoever wrote it: page text,
passages, tag evidence (a quote from a page), the incident cards' summaries, root causes,
resolutions, action items, timeline events and evidence quotes, and also the lists' own
summaries and entry texts, which are as much their authors' writing as a blog post is.
Titles, publishers, sections, the lists' short involved/impact items and the cards' ids
(triggers, detection), times and durations stay: they identify and classify a story rather
than tell it; a title a list format built from the summary (danluu's "Org: first
sentence") keeps only its link text (`tables.title_without_summary`).

This module runs an export; what each file holds is in `export.tables` (the incident cards'
files in `export.cards`), how it is written in `export.writers`, and manifest.json and
datasheet.md come from `export.manifest` and `export.datasheet`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import sqlite_utils

from mlopsmortem.crawl.history import open_existing_db
from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.export.cards import CARD_TABLES
from mlopsmortem.export.datasheet import datasheet_markdown
from mlopsmortem.export.manifest import DATASHEET_NAME, MANIFEST_NAME, ExportedFile, ExportManifest
from mlopsmortem.export.tables import (
    BASE_TABLES,
    coerce,
    embedding_tables,
    title_without_summary,
    type_name,
)
from mlopsmortem.export.writers import WRITERS
from mlopsmortem.progress import progress_bar
from mlopsmortem.settings import Settings

FORMATS = ("jsonl", "csv", "parquet")


class ExportError(MlopsmortemError):
    """The export could not be written (unknown format, output path not a directory)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
        tables = [*BASE_TABLES, *CARD_TABLES, *(embedding_tables(db) if with_embeddings else [])]
        with progress_bar("exporting", quiet=settings.quiet) as bar:
            bar.start(len(tables))
            for table in tables:
                columns = tuple(c for c in table.columns if not (no_text and c.text))
                source = table.rows(db)
                if no_text:
                    source = (title_without_summary(row) for row in source)
                rows = (
                    {c.name: coerce(row.get(c.name), c.type) for c in columns} for row in source
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
        manifest.describe(db)
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
