"""The file writers (Parquet, JSON Lines, CSV): one table's coerced rows -> one file.

Each writer is deterministic: rows in the order given, JSON with sorted keys, CSV with fixed
line ends and Parquet with pinned writer options and fixed-size row groups.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlopsmortem.export.tables import Column

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
