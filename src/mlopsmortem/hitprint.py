"""Search and similar hits for the command line: JSON for programs, text blocks for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click
from rich.console import Console
from rich.text import Text

from mlopsmortem.search.cards import card_line
from mlopsmortem.search.types import StoryHit


def words_line(hits: Sequence[StoryHit], mode: str | None) -> str | None:
    """What the search page says above hybrid results: whether they contain the query's words
    (a keyword search's results always do; a semantic search does not look at words)."""
    if mode == "keyword" and not hits:
        return "no story contains your words"
    if mode != "hybrid" or not hits:
        return None
    with_words = sum(hit.matched_by != "semantic" for hit in hits)
    if with_words == len(hits):
        return None
    if with_words == 0:
        return "no story contains your words; these are the nearest by meaning"
    return f"{with_words} of {len(hits)} contain your words, the others match by meaning only"


def print_hits(
    hits: Sequence[StoryHit], as_json: bool, *, quiet: bool = False, mode: str | None = None
) -> None:
    """JSON for programs; for people, one block per story with the matched words highlighted
    and a line of its incident card (triggers, detection, duration) when it knows any, under a
    line saying when results of a `mode` search lack the query's words. Wrapped to the
    terminal's width on a terminal only: piped, each line is whole."""
    if as_json:
        click.echo(json.dumps([hit.to_dict() for hit in hits], indent=2, ensure_ascii=False))
        return
    if quiet:
        return
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    note = words_line(hits, mode)
    if note:
        console.print(Text(note, style="bold"))
        console.print()
    elif not hits:
        console.print("no stories found")
    for hit in hits:
        head = Text(f"{hit.rank}. ", style="bold")
        head.append(hit.title or hit.url, style="bold")
        details = ", ".join(str(x) for x in (hit.publisher, hit.year) if x)
        if details:
            head.append(f"  ({details})")
        head.append(f"  [{hit.link_status or 'not fetched'}]  score {hit.score:.3f}", style="dim")
        if mode == "hybrid" and hit.matched_by == "semantic":
            head.append("  meaning only", style="dim")
        console.print(head)
        console.print(Text(f"   {hit.url}   id {hit.id}", style="cyan"))
        tags = [*hit.components, *hit.impacts]
        if tags:
            console.print(Text("   " + " · ".join(tags), style="magenta"))
        card = card_line(hit.triggers, hit.detection, hit.duration_minutes)
        if card:
            console.print(Text("   " + card, style="green"))
        snippet = Text("   " + hit.snippet)
        for start, end in hit.highlights:
            snippet.stylize("bold yellow", start + 3, end + 3)
        console.print(snippet)
        console.print()
