"""Options and output helpers shared by the command modules (cli, cli_search, cli_incidents)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from mlopsmortem.errors import MlopsmortemError, SearchError
from mlopsmortem.incidents.types import DETECTIONS, DURATION_BAND_LABELS, TRIGGERS
from mlopsmortem.settings import Settings, default_db_path

F = TypeVar("F", bound=Callable[..., Any])


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


class Report(Protocol):
    def as_dict(self) -> dict[str, Any]: ...

    def summary_lines(self) -> list[str]: ...


def print_report(settings: Settings, report: Report, as_json: bool) -> None:
    """A command's report: JSON for programs (even under --quiet), lines for people."""
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.summary_lines():
            echo(settings, line)


# Years `--since` accepts: the lists' stories are from 1900 on (lists/formats.py reads 19xx and
# 20xx); a story can be dated at most next year (time zones, a list written ahead).
SINCE_FIRST_YEAR = 1900


def _since_year(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    last = datetime.now(UTC).year + 1
    if value is not None and not SINCE_FIRST_YEAR <= value <= last:
        raise click.BadParameter(f"{value} is not a year from {SINCE_FIRST_YEAR} to {last}")
    return value


def _card_ids(kind: str) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], Any]:
    """A callback checking --trigger, --detection or --duration values against their fixed
    vocabulary, before any database is opened: an unknown id is a usage error listing them."""

    def check(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
        from mlopsmortem.search.filters import card_filter_values

        try:
            return tuple(card_filter_values(kind, values))
        except SearchError as err:
            raise click.BadParameter(str(err)) from err

    return check


def filter_options(fn: F) -> F:
    @click.option("--component", "components", multiple=True, help="Only stories with this tag.")
    @click.option("--impact", "impacts", multiple=True, help="Only stories with this impact.")
    @click.option(
        "--since",
        type=int,
        callback=_since_year,
        metavar="YEAR",
        help=f"Only stories from this year on ({SINCE_FIRST_YEAR} to next year).",
    )
    @click.option("--source", "sources", multiple=True, help="Only stories from this list.")
    @click.option("--link-status", multiple=True, help="live, dead, archived, ...")
    @click.option(
        "--trigger",
        "triggers",
        multiple=True,
        metavar="ID",
        callback=_card_ids("trigger"),
        help=f"Only stories set off by this (repeated: by each): {', '.join(TRIGGERS)}.",
    )
    @click.option(
        "--detection",
        "detections",
        multiple=True,
        metavar="ID",
        callback=_card_ids("detection"),
        help=f"Only stories first noticed this way (repeated: any): {', '.join(DETECTIONS)}.",
    )
    @click.option(
        "--duration",
        "durations",
        multiple=True,
        metavar="BAND",
        callback=_card_ids("duration"),
        help=f"Only incidents that lasted this long (repeated: any): "
        f"{', '.join(DURATION_BAND_LABELS)}.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
