"""The commands over incident cards: `show` (one story) and `like` (the stories nearest to a
text). Both only read: the knowledge base is opened read-only and never upgraded."""

from __future__ import annotations

import json
from typing import IO

import click

from mlopsmortem.cli_options import common_options
from mlopsmortem.settings import Settings


def _emit(data: dict[str, object], lines: list[str], as_json: bool, settings: Settings) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif not settings.quiet:
        click.echo("\n".join(lines))


@click.command()
@click.argument("story_id")
@click.option("--json", "as_json", is_flag=True, help="Print the story as a JSON object.")
@common_options
def show(settings: Settings, story_id: str, as_json: bool) -> None:
    """One story: title, URL, link status, incident card, tags and the lists naming it."""
    from mlopsmortem.db import open_existing_db
    from mlopsmortem.incidents.show import show_story

    db = open_existing_db(settings.db_path)
    try:
        report = show_story(db.conn, story_id)
    finally:
        db.close()
    _emit(report.as_dict(), report.text_lines(), as_json, settings)


@click.command()
@click.argument("source", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option(
    "-n", "--limit", default=10, show_default=True, type=click.IntRange(1, 50), help="Stories."
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as a JSON object.")
@common_options
def like(settings: Settings, source: IO[str], limit: int, as_json: bool) -> None:
    """The stories nearest to the incident in SOURCE (a file, or - for standard input): a
    draft postmortem or an alert text of up to 20,000 characters, embedded locally and never
    stored; what the stories share and how they were resolved."""
    from mlopsmortem.db import open_existing_db
    from mlopsmortem.errors import SearchError
    from mlopsmortem.search.like import MAX_LIKE_CHARS, check_text, incidents_like

    # never read a huge file whole: four times the limit leaves room for "\r\n" line endings
    # and whitespace around the text, and anything longer is too long
    most = 4 * MAX_LIKE_CHARS
    raw = source.read(most + 1)
    if len(raw) > most:
        raise SearchError(
            f"the text is more than {most:,} characters long; the limit is {MAX_LIKE_CHARS:,}"
        )
    text = check_text(raw)
    db = open_existing_db(settings.db_path)
    try:
        answer = incidents_like(db, text, settings=settings, limit=limit)
    finally:
        db.close()
    _emit(answer.as_dict(), answer.text_lines(), as_json, settings)
