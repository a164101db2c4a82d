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
from mlopsmortem.errors import MlopsmortemError, SourceError
from mlopsmortem.incidents.run import build_cards
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
from mlopsmortem.runs import RunRecord, record_run
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


class CrawlInterrupted(MlopsmortemError):
    """A fetching run stopped by Ctrl-C; what it stored is kept and a rerun resumes."""


def resolve_sources(
    settings: Settings, arguments: Sequence[str], db: sqlite_utils.Database | None = None
) -> list[SourceSpec]:
    """The lists a run reads: its SOURCE arguments, else the database's own sources.

    Without arguments, a database that holds sources re-reads those, under the names they
    have there (the demo database its demo list); only a new, empty database reads the
    defaults of `data/sources.toml`. An argument is a source name (the database's or the
    sources file's), a URL or a file; a file or URL the database already holds keeps its
    name there. An argument that names no source and does not look like a path (no slash,
    no file extension) raises SourceError naming the known sources; a missing file is left
    to fail as that source's own error, so the other lists are still read.
    """
    held = _held_sources(db)
    if not arguments and held:
        return held
    try:
        configured = load_source_specs(settings.sources_file)
    except SourceError:
        if not arguments:
            raise
        configured = []  # names and paths can still be resolved
    if not arguments:
        return configured
    by_location = {spec.location: spec for spec in held}
    specs = []
    for argument in arguments:
        named = next((s for s in [*held, *configured] if s.name == argument), None)
        if named is None and not _is_location(argument):
            known = sorted({s.name for s in [*held, *configured]})
            raise SourceError(
                f"no such source: {argument!r} is not a source name, a URL or a file "
                f"(known sources: {', '.join(known) or 'none'})"
            )
        spec = named or spec_from_argument(argument, configured)
        held_spec = by_location.get(spec.location)
        if held_spec is not None:
            spec = SourceSpec(
                held_spec.name,
                spec.location,
                spec.format or held_spec.format,
                spec.category or held_spec.category,
            )
        specs.append(spec)
    return specs


def _is_location(argument: str) -> bool:
    """A URL, or something meant as a file: an existing path, a slash or an extension."""
    if argument.lower().startswith(("http://", "https://")) or Path(argument).exists():
        return True
    return "/" in argument or "\\" in argument or bool(Path(argument).suffix)


def _held_sources(db: sqlite_utils.Database | None) -> list[SourceSpec]:
    """The sources a database has read at least once, oldest first, under their stored
    names (a mistyped path that never read is not one of them)."""
    if db is None or not db["sources"].exists():
        return []
    return [
        SourceSpec(name=row["name"], location=row["location"], format=row["format"])
        for row in db.query(
            "SELECT name, location, format FROM sources WHERE content_hash IS NOT NULL ORDER BY id"
        )
    ]


@contextmanager
def resumable_run(db: sqlite_utils.Database, command: str) -> Iterator[RunRecord]:
    """`record_run` for a fetching command. On Ctrl-C the run is left `interrupted` (the next
    fetching run resumes after it, as after a kill) and CrawlInterrupted says so."""
    run: RunRecord | None = None
    try:
        with record_run(db, command) as run:
            yield run
    except KeyboardInterrupt:
        if run is not None:
            with db.conn:
                db.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", [run.id])
        raise CrawlInterrupted(
            f"{command} interrupted: the pages stored so far are kept; "
            "run the same command again to resume where it stopped"
        ) from None


def run_ingest(
    settings: Settings,
    arguments: Sequence[str],
    *,
    on_problem: Callable[[str], None] | None = None,
) -> IngestRun:
    db = open_db(settings.db_path)
    specs = resolve_sources(settings, arguments, db)
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
            f"failing {c['failing']} (last good state kept, retried next run), "
            f"archive lookups failed {c['archive_errors']} (retried next run)",
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
    with crawl_lock(settings.db_path), resumable_run(db, "fetch") as run:
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
            "failing": c["failing"],
            "archive_errors": c["archive_errors"],
            "sources": [asdict(s) for s in self.ingest.sources],
            "stages": self.stages,
            "story_ids": {
                "new": self.ingest.new_story_ids,
                "changed": self.crawl.changed,
                "newly_dead": self.crawl.newly_dead,
                "recovered": self.crawl.recovered,
                "refused": self.crawl.refused,
                "errors": self.crawl.errors,
                "failing": self.crawl.failing,
                "archive_errors": self.crawl.archive_errors,
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
            f"recovered, {d['refused']} refused, {d['errors']} errors, {d['failing']} failing "
            f"(last good state kept), {d['archive_errors']} archive lookups failed"
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
        specs = resolve_sources(settings, arguments, db)
    with crawl_lock(settings.db_path), resumable_run(db, "crawl") as run:
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
    vectors), and once more after tagging and the incident cards, because a story's card
    passage names its tags, its incident summary and its triggers. The report counts each
    thing once: `passages` is the sync of the stories' texts and cards, `cards` the cards
    rewritten afterwards to name new tags and triggers, and `embed` the passages embedded
    (`embedded`) apart from those cards embedded again (`cards_reembedded`).
    """
    stages: dict[str, dict[str, object]] = {}
    first = sync_passages(db, settings=settings)
    embedded = embed_passages(db, settings)
    stages["tag"], second, again = tag_and_refresh_cards(db, settings)
    stages["incidents"] = stages["tag"].pop("incidents")  # type: ignore[assignment]
    stages["passages"] = asdict(first)
    stages["cards"] = {"updated_with_tags": second.inserted + second.updated}
    stages["embed"] = {
        "model": embedded.model,
        "embedded": embedded.embedded,
        "cards_reembedded": again.embedded,
    }
    return stages


def tag_and_refresh_cards(
    db: sqlite_utils.Database, settings: Settings, *, rebuild: bool = False
) -> tuple[dict[str, object], SyncCounts, EmbedCounts]:
    """Tag stories and derive their incident cards, then re-sync and re-embed the card passages
    that name the new tags, summaries and triggers (the report's `incidents` entry)."""
    report = asdict(tag_stories(db, settings, rebuild=rebuild))
    report["incidents"] = run_incident_cards(db, settings, rebuild=rebuild)
    return report, sync_passages(db, settings=settings), embed_passages(db, settings)


def run_incident_cards(
    db: sqlite_utils.Database, settings: Settings, *, rebuild: bool = False
) -> dict[str, object]:
    """Re-derive the incident cards of stories whose text or list summary changed."""
    with progress_bar("incident cards", quiet=settings.quiet) as bar:
        return asdict(build_cards(db, rebuild=rebuild, progress=bar))


def run_tag(settings: Settings, *, rebuild: bool) -> dict[str, object]:
    """`mlopsmortem tag`: tags, then the incident cards (both incremental; `rebuild` redoes
    every story's)."""
    db = open_db(settings.db_path)
    with record_run(db, "tag") as run:
        report, _, _ = tag_and_refresh_cards(db, settings, rebuild=rebuild)
        run.counts = {k: v for k, v in report.items() if isinstance(v, int)}
    return report


def run_embed(
    settings: Settings, *, rebuild: bool, encoder: bool = False
) -> tuple[SyncCounts, EmbedCounts]:
    """Sync and embed passages. The ONNX query encoder is made current whenever passages were
    embedded; `encoder` makes it current even when none needed embedding (an older database)."""
    db = open_db(settings.db_path)
    with record_run(db, "embed") as run:
        synced = sync_passages(db, settings=settings)
        counts = embed_passages(db, settings, rebuild=rebuild)
        if encoder and not counts.encoder:
            from mlopsmortem.passages.encoder_export import ensure_query_encoder

            action = ensure_query_encoder(db, settings.model_name).action
            counts = replace(counts, encoder=action)
        run.counts = {
            **asdict(synced),
            "embedded": counts.embedded,
            "model": counts.model,
            "encoder": counts.encoder,
        }
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
