"""The command line: each command parses options, calls one library function, prints the result.

Library errors (`MlopsmortemError`) become one line on stderr and exit code 1.

Reading never writes: `search`, `similar`, `status`, `changes`, `export` and `serve` open the
database read-only (`db.open_existing_db`). They never create it (a missing `--db` is "PATH
does not exist"), convert it to WAL or apply migrations: a database whose schema is older
than this version is an error telling to run a writing command (`crawl`, `ingest`, `fetch`,
`extract`, `embed`, `tag`, `demo`), which upgrades it. Output for people is never
hard-wrapped when stdout is not a terminal, so piped ids and URLs stay on one line.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from mlopsmortem import __version__
from mlopsmortem.cli_incidents import like, show
from mlopsmortem.cli_options import F, common_options, echo, print_report
from mlopsmortem.cli_search import search, similar
from mlopsmortem.extras import require_crawl_extra
from mlopsmortem.settings import Settings, parse_duration

# Exit code of a run that completed but could not read every source list.
EXIT_SOURCES_FAILED = 2


@click.group()
@click.version_option(__version__, prog_name="mlopsmortem")
def cli() -> None:
    """mlopsmortem: a searchable knowledge base of MLOps and infrastructure failure stories."""


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--sources-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sources.toml naming the default lists (default: data/sources.toml).",
)
@common_options
def ingest(
    settings: Settings, sources: tuple[str, ...], as_json: bool, sources_file: Path | None
) -> None:
    """Read failure-story lists into stories.

    SOURCES are URLs, files or names from data/sources.toml. None: the lists the database
    already holds, under their names; a new database reads data/sources.toml's defaults.
    """
    require_crawl_extra("ingest")
    from mlopsmortem.pipeline import run_ingest

    if sources_file:
        settings = settings.with_(sources_path=sources_file)
    report = run_ingest(settings, sources, on_problem=lambda p: click.echo(p, err=True))
    print_report(settings, report, as_json)
    for failed in report.ingest.failed:
        click.echo(f"error: {failed.error}", err=True)
    if report.ingest.failed:
        sys.exit(EXIT_SOURCES_FAILED)


def _max_age_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def fetch_options(fn: F) -> F:
    """Transport options shared by `fetch` and `crawl`; they refine the Settings."""

    @click.option("--concurrency", type=click.IntRange(1, 256), help="Requests at once (8).")
    @click.option("--delay", type=click.FloatRange(0), help="Seconds between requests per host.")
    @click.option(
        "--max-age",
        callback=_max_age_seconds,
        help="Skip pages fetched more recently than this (30m, 12h, 7d).",
    )
    @click.option("--force", is_flag=True, help="Fetch every page, unconditionally.")
    @click.option(
        "--allow-host",
        "allow_hosts",
        multiple=True,
        help="Admit this host even on a private or loopback address (repeatable).",
    )
    @click.option("--only", multiple=True, metavar="STORY_ID", help="Only these stories.")
    @click.option("--wayback-api", hidden=True, help="Wayback availability API base URL.")
    @functools.wraps(fn)
    def wrapper(
        settings: Settings,
        *args: Any,
        concurrency: int | None,
        delay: float | None,
        max_age: float | None,
        force: bool,
        allow_hosts: tuple[str, ...],
        wayback_api: str | None,
        **kwargs: Any,
    ) -> Any:
        changes: dict[str, object] = {"force": force}
        if concurrency is not None:
            changes["concurrency"] = concurrency
        if delay is not None:
            changes["delay"] = delay
        if max_age is not None:
            changes["max_age"] = max_age
        if allow_hosts:
            changes["allow_hosts"] = frozenset(h.lower() for h in allow_hosts)
        if wayback_api:
            changes["wayback_api"] = wayback_api
        return fn(settings.with_(**changes), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@cli.command()
@common_options
@fetch_options
def fetch(settings: Settings, only: tuple[str, ...]) -> None:
    """Fetch the stories' pages and extract their text."""
    require_crawl_extra("fetch")
    from mlopsmortem.pipeline import run_fetch

    result = run_fetch(settings, only)
    for line in result.summary_lines():
        echo(settings, line)


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the change report as JSON.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the change report as markdown to this file.",
)
@common_options
@fetch_options
def crawl(
    settings: Settings,
    sources: tuple[str, ...],
    as_json: bool,
    report_path: Path | None,
    only: tuple[str, ...],
) -> None:
    """Ingest the lists, fetch pages, then tag and embed: the one command for cron.

    SOURCES as for `ingest`; none re-crawls the lists the database holds. Exit code 0 when
    the crawl completed (dead links included), 2 when some source lists could not be read, 1
    on failure.
    """
    require_crawl_extra("crawl")
    from mlopsmortem.pipeline import run_crawl

    result = run_crawl(settings, sources, only=only, on_problem=lambda p: click.echo(p, err=True))
    print_report(settings, result, as_json)
    if report_path:
        from mlopsmortem.reports import crawl_report_markdown

        report_path.write_text(crawl_report_markdown(result), encoding="utf-8")
    for failed in result.ingest.failed:
        click.echo(f"error: {failed.error}", err=True)
    if result.sources_failed:
        sys.exit(EXIT_SOURCES_FAILED)


@cli.command()
@click.option("--all", "everything", is_flag=True, help="Re-extract every stored page.")
@common_options
def extract(settings: Settings, everything: bool) -> None:
    """Re-extract text from stored responses, offline."""
    require_crawl_extra("extract")
    from mlopsmortem.pipeline import run_extract

    report = run_extract(settings, everything)
    echo(
        settings,
        f"extracted {report.extracted} ({report.no_text} without text), "
        f"{report.unchanged} already current",
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@click.option("--open", "open_browser", is_flag=True, help="Open a browser on the search page.")
@common_options
def serve(settings: Settings, host: str, port: int, open_browser: bool) -> None:
    """Publish the knowledge base with Datasette and the similarity-search plugin."""
    from mlopsmortem.web.serve import serve as serve_datasette

    serve_datasette(settings, host=host, port=port, open_browser=open_browser)


@cli.command()
@click.option("--site-port", default=8017, show_default=True, type=int, help="Demo site port.")
@click.option("--port", default=8001, show_default=True, type=int, help="Datasette port.")
@click.option("--no-serve", is_flag=True, help="Build the demo knowledge base, then stop.")
@click.option("--open", "open_browser", is_flag=True, help="Open a browser on the search page.")
@common_options
def demo(settings: Settings, site_port: int, port: int, no_serve: bool, open_browser: bool) -> None:
    """Serve the bundled fictional sample site on 127.0.0.1, crawl it, and publish the result."""
    require_crawl_extra("demo")
    from mlopsmortem.pipeline import demo_session
    from mlopsmortem.web.serve import bind_port
    from mlopsmortem.web.serve import serve as serve_datasette

    # the server's port is reserved before the crawl, so a taken one fails at once
    sock = None if no_serve else bind_port("127.0.0.1", port)
    try:
        with demo_session(settings, site_port=site_port) as (result, site):
            echo(settings, f"demo site: {site.base_url}")
            for line in result.summary_lines():
                echo(settings, line)
            if sock is not None:
                serve_datasette(
                    settings, host="127.0.0.1", port=port, open_browser=open_browser, sock=sock
                )
    finally:
        if sock is not None:
            sock.close()


def _since_timestamp(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mlopsmortem.crawl.history import parse_since

    try:
        return parse_since(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="parquet",
    show_default=True,
    help="File format of the data files.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the data files, datasheet.md and manifest.json.",
)
@click.option("--with-embeddings", is_flag=True, help="Also export passage vectors (per model).")
@click.option(
    "--no-text",
    is_flag=True,
    help="Metadata, tags and embeddings only: no prose of pages or lists.",
)
@common_options
def export(
    settings: Settings, fmt: str, out_dir: Path, with_embeddings: bool, no_text: bool
) -> None:
    """Export the knowledge base as a dataset with a datasheet and a manifest.

    The same database always gives byte-identical files.
    """
    from mlopsmortem.export.run import run_export

    manifest = run_export(settings, fmt, out_dir, with_embeddings=with_embeddings, no_text=no_text)
    for line in manifest.summary_lines():
        echo(settings, line)


@cli.command()
@click.option(
    "--since",
    default="7d",
    show_default=True,
    callback=_since_timestamp,
    help="A date (2026-11-01, UTC) or a duration back from now (12h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@common_options
def changes(settings: Settings, since: str, as_json: bool) -> None:
    """New stories, changed pages, newly dead and recovered links since a date."""
    from mlopsmortem.crawl.history import changes_report

    print_report(settings, changes_report(settings, since), as_json)


@cli.command()
@click.option(
    "--max-age",
    default="30d",
    show_default=True,
    callback=_max_age_seconds,
    help="Pages fetched longer ago than this count as stale (12h, 30d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@common_options
def status(settings: Settings, max_age: float, as_json: bool) -> None:
    """Story counts by category and link status, unfetched and stale pages, the last runs."""
    from mlopsmortem.crawl.history import status_report

    print_report(settings, status_report(settings, max_age), as_json)


@cli.command()
@click.option("--model", "model_name", help="A sentence-transformers model name or path.")
@click.option("--rebuild", is_flag=True, help="Re-embed every passage.")
@click.option(
    "--encoder", is_flag=True, help="Make the ONNX query encoder current even if none is embedded."
)
@common_options
def embed(settings: Settings, model_name: str | None, rebuild: bool, encoder: bool) -> None:
    """Split documents into passages and embed the new or changed ones."""
    require_crawl_extra("embed")
    from mlopsmortem.pipeline import run_embed

    if model_name:
        settings = settings.with_(model_name=model_name)
    synced, counts = run_embed(settings, rebuild=rebuild, encoder=encoder)
    echo(
        settings,
        f"passages: {synced.inserted} new, {synced.updated} changed, {synced.deleted} removed; "
        f"embedded {counts.embedded} with {counts.model} ({counts.dimension}-d)"
        + (f"; query encoder {counts.encoder}" if counts.encoder else ""),
    )


@cli.command()
@click.option("--rebuild", is_flag=True, help="Re-tag every story.")
@common_options
def tag(settings: Settings, rebuild: bool) -> None:
    """Tag stories by component and impact, and derive their incident cards."""
    require_crawl_extra("tag")
    from mlopsmortem.pipeline import run_tag

    report = run_tag(settings, rebuild=rebuild)
    echo(
        settings,
        f"tagged {report['tagged']} stories ({report['unchanged']} unchanged), "
        f"{report['tags']} tags, taxonomy {report['taxonomy_version']}",
    )
    cards = report["incidents"]
    echo(
        settings,
        f"incident cards: {cards['built']} derived ({cards['unchanged']} unchanged, "
        f"{cards['removed']} removed), extractor {cards['extractor_version']}",
    )
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)


cli.add_command(search)
cli.add_command(similar)
cli.add_command(show)
cli.add_command(like)


def main() -> None:
    cli(prog_name="mlopsmortem")
