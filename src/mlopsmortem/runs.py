"""Every command run leaves a row in `runs`: what ran, when, how long, with what counts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlite_utils

from mlopsmortem.db import utcnow


@dataclass
class RunRecord:
    id: int
    command: str
    status: str = "ok"  # ok | partial | failed
    counts: dict[str, object] = field(default_factory=dict)
    report: dict[str, object] = field(default_factory=dict)


@contextmanager
def record_run(db: sqlite_utils.Database, command: str) -> Iterator[RunRecord]:
    """Insert a `running` row now; on exit store status, counts, report and duration."""
    started = time.monotonic()
    with db.conn:
        run_id = (
            db["runs"]
            .insert({"command": command, "started_at": utcnow(), "status": "running"})
            .last_pk
        )
    run = RunRecord(id=int(run_id), command=command)
    try:
        yield run
    except BaseException as err:
        with db.conn:
            db["runs"].update(
                run_id,
                {
                    "status": "failed",
                    "finished_at": utcnow(),
                    "duration_s": round(time.monotonic() - started, 3),
                    "counts": json.dumps(run.counts),
                    "error": f"{type(err).__name__}: {err}",
                },
            )
        raise
    with db.conn:
        db["runs"].update(
            run_id,
            {
                "status": run.status,
                "finished_at": utcnow(),
                "duration_s": round(time.monotonic() - started, 3),
                "counts": json.dumps(run.counts, sort_keys=True),
                "report": json.dumps(run.report, sort_keys=True, default=str),
            },
        )
