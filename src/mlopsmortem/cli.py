"""The command line: each command parses options, calls one library function, prints the result.

Library errors (`MlopsmortemError`) become one line on stderr and exit code 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlopsmortem import __version__
from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.settings import Settings, default_db_path

F = TypeVar("F", bound=Callable[..., Any])

# Exit code of a run that completed but could not read every source list.
EXIT_SOURCES_FAILED = 2


def common_options(fn: F) -> F:
    """--db and --quiet on every command; builds the Settings passed to the command."""

    @click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Database file (default: $MLOPSMORTEM_DB, else ./mlopsmortem.db).",
    )
    @click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
    @functools.wraps(fn)
    def wrapper(*args: Any, db_path: Path | None, quiet: bool, **kwargs: Any) -> Any:
        settings = Settings(db_path=db_path or default_db_path(), quiet=quiet)
        try:
            return fn(settings, *args, **kwargs)
        except MlopsmortemError as err:
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def echo(settings: Settings, message: str = "", *, err: bool = False) -> None:
    if not settings.quiet:
        click.echo(message, err=err)


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

    SOURCES are URLs, files or names from data/sources.toml; none means all defaults.
    """
    from mlopsmortem.pipeline import run_ingest

    if sources_file:
        settings = settings.with_(sources_path=sources_file)
    report = run_ingest(settings, sources, on_problem=lambda p: click.echo(p, err=True))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.summary_lines():
            echo(settings, line)
    for failed in report.ingest.failed:
        click.echo(f"error: {failed.error}", err=True)
    if report.ingest.failed:
        sys.exit(EXIT_SOURCES_FAILED)


def main() -> None:
    cli(prog_name="mlopsmortem")
