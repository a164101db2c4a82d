"""Wiring the stages together for the commands, and recording each run in `runs`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from mlopsmortem.db import open_db
from mlopsmortem.ingest import (
    IngestReport,
    SourceSpec,
    ingest_sources,
    load_source_specs,
    spec_from_argument,
)
from mlopsmortem.runs import record_run
from mlopsmortem.settings import Settings


@dataclass
class IngestRun:
    ingest: IngestReport
    run_id: int

    def summary_lines(self) -> list[str]:
        lines = []
        for s in self.ingest.sources:
            if s.error:
                lines.append(f"{s.name}: not read ({s.error})")
                continue
            lines.append(
                f"{s.name}: entries {s.new} new, {s.updated} updated, {s.unchanged} unchanged, "
                f"{s.removed} removed, {s.skipped} skipped"
                + (f", {s.candidates} candidate sources" if s.candidates else "")
                + (f" [{s.format}]" if s.format else "")
            )
        lines.append(f"{len(self.ingest.new_story_ids)} new stories")
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "sources": [asdict(s) for s in self.ingest.sources],
            "new_stories": len(self.ingest.new_story_ids),
            "totals": self.ingest.totals(),
        }


def resolve_sources(settings: Settings, arguments: Sequence[str]) -> list[SourceSpec]:
    """Command-line SOURCE arguments, or every default source when there are none."""
    configured = load_source_specs(settings.sources_file)
    if not arguments:
        return configured
    return [spec_from_argument(arg, configured) for arg in arguments]


def run_ingest(
    settings: Settings,
    arguments: Sequence[str],
    *,
    on_problem: Callable[[str], None] | None = None,
) -> IngestRun:
    db = open_db(settings.db_path)
    specs = resolve_sources(settings, arguments)
    with record_run(db, "ingest") as run:
        report = ingest_sources(db, specs, settings, on_problem=on_problem)
        run.counts = {**report.totals(), "new_stories": len(report.new_story_ids)}
        run.report = {"sources": [asdict(s) for s in report.sources]}
        run.status = "partial" if report.failed else "ok"
    return IngestRun(report, run.id)
