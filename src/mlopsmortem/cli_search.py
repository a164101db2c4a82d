"""The commands that search a built knowledge base: `search` and `similar` (read-only)."""

from __future__ import annotations

import click

from mlopsmortem.cli_options import common_options, filter_options
from mlopsmortem.settings import Settings


@click.command()
@click.argument("query")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "semantic", "keyword"]),
    default="hybrid",
    show_default=True,
)
@filter_options
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON array.")
@common_options
def search(
    settings: Settings,
    query: str,
    mode: str,
    components: tuple[str, ...],
    impacts: tuple[str, ...],
    since: int | None,
    sources: tuple[str, ...],
    link_status: tuple[str, ...],
    triggers: tuple[str, ...],
    detections: tuple[str, ...],
    durations: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Find the stories that match QUERY, each with the passage that matched.

    Above the results, a line says when none (or only some) of them contain QUERY's words."""
    from mlopsmortem.db import open_existing_db
    from mlopsmortem.hitprint import print_hits
    from mlopsmortem.search.run import search as search_stories

    hits = search_stories(
        open_existing_db(settings.db_path),
        query,
        settings=settings,
        mode=mode,  # type: ignore[arg-type]
        components=components,
        impacts=impacts,
        since=since,
        sources=sources,
        link_status=link_status,
        triggers=triggers,
        detections=detections,
        durations=durations,
        limit=limit,
    )
    print_hits(hits, as_json, quiet=settings.quiet, mode=mode)


@click.command()
@click.argument("story_id")
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON array.")
@common_options
def similar(settings: Settings, story_id: str, limit: int, as_json: bool) -> None:
    """The stories nearest to STORY_ID."""
    from mlopsmortem.db import open_existing_db
    from mlopsmortem.hitprint import print_hits
    from mlopsmortem.search.run import similar as similar_stories

    db = open_existing_db(settings.db_path)
    hits = similar_stories(db, story_id, settings=settings, limit=limit)
    print_hits(hits, as_json, quiet=settings.quiet)
