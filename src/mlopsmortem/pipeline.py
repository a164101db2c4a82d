"""Wiring the stages together for the commands, and recording each run in `runs`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import sqlite_utils

from mlopsmortem.crawl.pagestore import CrawlReport
from mlopsmortem.crawl.scheduler import ExtractReport, crawl_lock, extract_stored, fetch_stories
from mlopsmortem.db import open_db
from mlopsmortem.demo import DEMO_BASE, DEMO_HOST, RunningSite, demo_list_text, serve_site
from mlopsmortem.lists.ingest import (
    IngestReport,
    SourceSpec,
    ingest_sources,
    load_source_specs,
    spec_from_argument,
)
from mlopsmortem.passages.embed import EmbedCounts, embed_passages
from mlopsmortem.passages.sync import SyncCounts, sync_passages
from mlopsmortem.progress import progress_bar
from mlopsmortem.runs import record_run
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.run import tag_stories


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


@dataclass
class FetchRun:
    crawl: CrawlReport
    run_id: int

    def summary_lines(self) -> list[str]:
        c = self.crawl.counts()
        return [
            f"pages: {c['pages']} due, {c['skipped_fresh']} fresh"
            + (" (resumed an interrupted run)" if self.crawl.resumed else ""),
            f"changed {c['changed']}, unchanged {c['unchanged'] + c['not_modified']} "
            f"({c['not_modified']} not modified), newly dead {c['newly_dead']}, "
            f"recovered {c['recovered']}, archived {c['archived']}, refused {c['refused']}, "
            f"blocked {c['blocked']}, errors {c['errors']}",
        ]


_ERROR_OUTCOMES = frozenset({"error", "refused", "blocked", "dead"})


def _fetch_with_progress(
    db: sqlite_utils.Database, settings: Settings, only: Sequence[str], run_id: int
) -> CrawlReport:
    with progress_bar("fetching", quiet=settings.quiet) as bar:
        return fetch_stories(
            db,
            settings,
            only=only,
            run_id=run_id,
            on_start=bar.start,
            on_page=lambda _sid, outcome: bar.advance(error=outcome in _ERROR_OUTCOMES),
        )


def run_fetch(settings: Settings, only: Sequence[str] = ()) -> FetchRun:
    db = open_db(settings.db_path)
    with crawl_lock(settings.db_path), record_run(db, "fetch") as run:
        report = _fetch_with_progress(db, settings, only, run.id)
        run.counts = report.counts()
        run.report = asdict(report)
    return FetchRun(report, run.id)


def run_extract(settings: Settings, everything: bool) -> ExtractReport:
    db = open_db(settings.db_path)
    with crawl_lock(settings.db_path), record_run(db, "extract") as run:
        with progress_bar("extracting", quiet=settings.quiet) as bar:
            total = db["page_bodies"].count
            bar.start(total)
            report = extract_stored(
                db,
                everything=everything,
                on_page=lambda _sid, _outcome: bar.advance(),
                settings=settings,
            )
        run.counts = asdict(report)
    return report


@dataclass
class CrawlRun:
    """The change report of one scheduled crawl: every stage's counts."""

    ingest: IngestReport
    crawl: CrawlReport
    run_id: int
    stages: dict[str, dict[str, object]]

    @property
    def sources_failed(self) -> bool:
        return bool(self.ingest.failed)

    def as_dict(self) -> dict[str, object]:
        c = self.crawl.counts()
        return {
            "run_id": self.run_id,
            "new_stories": len(self.ingest.new_story_ids),
            "changed_pages": c["changed"],
            "unchanged": c["unchanged"] + c["not_modified"],
            "newly_dead": c["newly_dead"],
            "recovered": c["recovered"],
            "archived": c["archived"],
            "refused": c["refused"],
            "blocked": c["blocked"],
            "errors": c["errors"],
            "sources": [asdict(s) for s in self.ingest.sources],
            "stages": self.stages,
            "story_ids": {
                "new": self.ingest.new_story_ids,
                "changed": self.crawl.changed,
                "newly_dead": self.crawl.newly_dead,
                "recovered": self.crawl.recovered,
                "refused": self.crawl.refused,
                "errors": self.crawl.errors,
            },
        }

    def summary_lines(self) -> list[str]:
        d = self.as_dict()
        lines = IngestRun(self.ingest, self.run_id).summary_lines()
        lines += FetchRun(self.crawl, self.run_id).summary_lines()
        for stage, counts in self.stages.items():
            numbers = {k: v for k, v in counts.items() if isinstance(v, int) and k != "seconds"}
            lines.append(f"{stage}: " + ", ".join(f"{k} {v}" for k, v in numbers.items()))
        lines.append(
            f"change report: {d['new_stories']} new stories, {d['changed_pages']} changed pages, "
            f"{d['unchanged']} unchanged, {d['newly_dead']} newly dead, {d['recovered']} "
            f"recovered, {d['refused']} refused, {d['errors']} errors"
        )
        return lines


def run_crawl(
    settings: Settings,
    arguments: Sequence[str],
    *,
    only: Sequence[str] = (),
    on_problem: Callable[[str], None] | None = None,
    specs: Sequence[SourceSpec] | None = None,
) -> CrawlRun:
    """Ingest the lists, fetch the pages, then every later stage: the command for cron."""
    db = open_db(settings.db_path)
    if specs is None:
        specs = resolve_sources(settings, arguments)
    with crawl_lock(settings.db_path), record_run(db, "crawl") as run:
        ingest = ingest_sources(db, specs, settings, on_problem=on_problem)
        crawl = _fetch_with_progress(db, settings, only, run.id)
        stages = run_later_stages(db, settings)
        result = CrawlRun(ingest, crawl, run.id, stages)
        report = result.as_dict()
        run.counts = {k: v for k, v in report.items() if isinstance(v, int) and k != "run_id"}
        run.report = report
        run.status = "partial" if ingest.failed else "ok"
    return result


def run_later_stages(db: sqlite_utils.Database, settings: Settings) -> dict[str, dict[str, object]]:
    """Stages after fetching, in order; each is incremental, so an unchanged crawl is cheap.

    Passages are synced and embedded before tagging (the semantic tagger reads passage
    vectors), and once more after it, because a story's card passage names its tags.
    """
    stages: dict[str, dict[str, object]] = {}
    first = sync_passages(db, settings=settings)
    embedded = embed_passages(db, settings)
    stages["tag"], second, again = tag_and_refresh_cards(db, settings)
    embedded = replace(embedded, embedded=embedded.embedded + again.embedded)
    stages["passages"] = asdict(_add_counts(first, second))
    stages["embed"] = {"model": embedded.model, "embedded": embedded.embedded}
    return stages


def _add_counts(a: SyncCounts, b: SyncCounts) -> SyncCounts:
    return SyncCounts(
        stories=a.stories,
        changed_stories=a.changed_stories + b.changed_stories,
        inserted=a.inserted + b.inserted,
        updated=a.updated + b.updated,
        deleted=a.deleted + b.deleted,
        unchanged=b.unchanged,
    )


def tag_and_refresh_cards(
    db: sqlite_utils.Database, settings: Settings, *, rebuild: bool = False
) -> tuple[dict[str, object], SyncCounts, EmbedCounts]:
    """Tag stories, then re-sync and re-embed the card passages that name the new tags."""
    report = asdict(tag_stories(db, settings, rebuild=rebuild))
    return report, sync_passages(db, settings=settings), embed_passages(db, settings)


def run_tag(settings: Settings, *, rebuild: bool) -> dict[str, object]:
    """`mlopsmortem tag`."""
    db = open_db(settings.db_path)
    with record_run(db, "tag") as run:
        report, _, _ = tag_and_refresh_cards(db, settings, rebuild=rebuild)
        run.counts = {k: v for k, v in report.items() if isinstance(v, int)}
    return report


def run_embed(settings: Settings, *, rebuild: bool) -> tuple[SyncCounts, EmbedCounts]:
    db = open_db(settings.db_path)
    with record_run(db, "embed") as run:
        synced = sync_passages(db, settings=settings)
        counts = embed_passages(db, settings, rebuild=rebuild)
        run.counts = {**asdict(synced), "embedded": counts.embedded, "model": counts.model}
    return synced, counts


@contextmanager
def demo_session(settings: Settings, *, site_port: int) -> Iterator[tuple[CrawlRun, RunningSite]]:
    """Serve the bundled sample site on 127.0.0.1 and crawl it end to end.

    The site stays up inside the block, so the stories' original links keep working while
    Datasette shows the result.
    """
    with serve_site(settings.demo_dir / "site", site_port) as site:
        list_path = settings.demo_dir / "list.md"
        if site.base_url != DEMO_BASE:
            list_path = Path(f"{settings.db_path}.demo-list.md")
            list_path.write_text(demo_list_text(settings.demo_dir / "list.md", site.base_url))
        demo_settings = settings.with_(
            allow_hosts=settings.allow_hosts | {DEMO_HOST},
            wayback_api=site.wayback_api,
            delay=0.0,  # our own local server: no need to be polite to it
        )
        spec = SourceSpec(name="mlopsmortem-demo", location=str(list_path.resolve()), format="afs")
        yield run_crawl(demo_settings, [], specs=[spec]), site
