"""datasheet.md: the manifest as a document for people, written from the manifest's own
dictionary so the two always agree."""

from __future__ import annotations

from typing import Any

from mlopsmortem.export.manifest import MANIFEST_NAME


def _md(value: Any) -> str:
    """A value in a markdown table cell."""
    if value is None or value == "":
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _count_table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"**{title}**: none yet.", ""]
    lines = [f"| {title} | stories |", "|---|---:|"]
    lines += [f"| {_md(k)} | {v} |" for k, v in counts.items()]
    return lines + [""]


FORMAT_NOTES = {
    "parquet": (
        "Parquet (zstd). Lists are `list<string>` columns and vectors `fixed_size_list<float32>`; "
        "each column carries its description in the field metadata."
    ),
    "jsonl": (
        "JSON Lines, UTF-8, one object per row with sorted keys; null is `null`, lists and "
        "vectors are JSON arrays."
    ),
    "csv": (
        "CSV, UTF-8, header row, `\\n` line ends. An empty cell is null; booleans are "
        "`true`/`false`; lists and vectors are JSON arrays inside one cell."
    ),
}


def _loading(fmt: str) -> list[str]:
    if fmt == "parquet":
        return [
            "```python",
            "import pyarrow.parquet as pq",
            'stories = pq.read_table("stories.parquet")',
            "",
            "from datasets import load_dataset",
            'ds = load_dataset("parquet", data_files={"train": "stories.parquet"})',
            "```",
        ]
    if fmt == "jsonl":
        return [
            "```python",
            "import json",
            'stories = [json.loads(line) for line in open("stories.jsonl", encoding="utf-8")]',
            "",
            "from datasets import load_dataset",
            'ds = load_dataset("json", data_files={"train": "stories.jsonl"})',
            "```",
        ]
    return [
        "```python",
        "import csv, json",
        'stories = list(csv.DictReader(open("stories.csv", encoding="utf-8", newline="")))',
        'components = json.loads(stories[0]["components"] or "null")',
        "```",
    ]


def datasheet_markdown(manifest: dict[str, Any]) -> str:
    """The datasheet, written from the manifest so the two always agree."""
    counts = manifest["counts"]
    collection = manifest["collection"]
    fmt = manifest["format"]
    no_text = manifest["options"]["no_text"]
    lines = [
        "# mlopsmortem: a dataset of MLOps and infrastructure failure stories",
        "",
        f"Exported by {manifest['generator']} (schema version {manifest['schema_version']}, "
        f"pyarrow {manifest['pyarrow']}) from an mlopsmortem knowledge base; see "
        f"{manifest['homepage']}.",
        "",
        "## What it is",
        "",
        "Public write-ups of failures — postmortems, incident reports, talks — about machine "
        "learning systems and the infrastructure under them, as named by curated link lists. "
        "Each story has the lists' own description of it, the state of its link, the text of "
        "its page split into passages, component and impact tags, and an incident card: what "
        "happened, what set it off, how it was found, how long it lasted and how it was fixed, "
        "each field taken from the story's own text with its evidence (unknown stays unknown).",
        "",
    ]
    if no_text:
        lines += [
            "**This is a metadata-only export (`--no-text`).** It has no page text, no passages' "
            "text, no tag evidence, none of the incident cards' sentences, timeline events or "
            "quotes and none of the lists' summaries or entry texts: only ids, titles, "
            "classifications, link states, tags, the cards' triggers, detection, times and "
            "durations and (if included) embeddings.",
            "",
        ]
    lines += ["## Files", "", "| file | rows | description | sha256 |", "|---|---:|---|---|"]
    for f in manifest["files"]:
        lines.append(f"| `{f['name']}` | {f['rows']} | {_md(f['description'])} | `{f['sha256']}` |")
    lines += [
        "",
        f"Format: {FORMAT_NOTES[fmt]} Rows are ordered by id. `{MANIFEST_NAME}` holds everything "
        "in this datasheet in machine-readable form.",
        "",
        "## Composition",
        "",
        f"{counts['stories']} stories, {counts['removed_from_lists']} of them no longer on any "
        f"list (kept, with `removed_at`), {counts['untagged']} not yet tagged.",
        "",
    ]
    lines += _count_table("category", counts["by_category"])
    lines += _count_table("link status", counts["by_link_status"])
    lines += _count_table("component", counts["by_component"])
    lines += _count_table("impact", counts["by_impact"])
    lines += [f"{counts['incident_cards']} stories have an incident card.", ""]
    lines += _count_table("trigger", counts["cards_by_trigger"])
    lines += _count_table("detection", counts["cards_by_detection"])
    lines += _count_table("duration band", counts["cards_by_duration_band"])
    if counts["tags_by_method"]:
        lines += ["| tags (kind/method) | tags |", "|---|---:|"]
        lines += [f"| {_md(k)} | {v} |" for k, v in counts["tags_by_method"].items()]
        lines.append("")
    lines += [
        "## How it was collected",
        "",
        "mlopsmortem reads the lists below, gives each linked URL a canonical form and a stable "
        "id, fetches every page (respecting robots.txt, with a per-host delay, refusing private "
        "addresses), falls back to the Internet Archive for dead links, extracts the main text, "
        "splits it into passages, tags components and impacts (the lists' own hand tags, rules "
        "over a taxonomy, and semantic similarity), reads an incident card out of each text "
        "(its own sentences and timeline lines, found by section and word cues: nothing is "
        "generated) and embeds the passages.",
        "",
        "| list | location | format | last read | ETag | Last-Modified | content sha256 | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in collection["sources"]:
        lines.append(
            f"| {_md(s['name'])} | {_md(s['location'])} | {_md(s['format'])} | "
            f"{_md(s['last_read'])} | {_md(s['etag'])} | {_md(s['last_modified'])} | "
            f"{_md(s['content_hash'])} | {_md(s['status'])} |"
        )
    lines.append("")
    if collection["runs_by_command"]:
        lines += ["| command | runs | completed | first | last |", "|---|---:|---:|---|---|"]
        for command, r in collection["runs_by_command"].items():
            lines.append(
                f"| {_md(command)} | {r['runs']} | {r['completed']} | {_md(r['first'])} | "
                f"{_md(r['last'])} |"
            )
        lines.append("")
    dates = collection["crawl_dates"]
    lines += [
        f"Crawl dates (UTC): {', '.join(dates) if dates else 'none yet'}.",
        f"Pages fetched between {_md(collection['pages_fetched']['first'])} and "
        f"{_md(collection['pages_fetched']['last'])}.",
        f"Text extractors: {', '.join(collection['extractors']) or 'none yet'}.",
        "",
        "## Models and taxonomy",
        "",
    ]
    for m in manifest["models"]:
        lines.append(
            f"- embedding model `{m['name']}`: {m['dimension']} dimensions, "
            f"{m['vectors']} current vectors (stale vectors left out: {m['vectors_left_out']}), "
            f"registered {m['created_at']}"
        )
    if not manifest["models"]:
        lines.append("- no embedding model yet")
    taxonomy = manifest["taxonomy"]
    lines += [
        f"- taxonomy version: {_md(taxonomy['version'])}"
        + (
            f" (tags made with: {', '.join(taxonomy['versions_in_tags'])})"
            if taxonomy["versions_in_tags"]
            else ""
        ),
        "",
        "## Schema",
        "",
    ]
    for f in manifest["files"]:
        lines += [
            f"### `{f['name']}`",
            "",
            _md(f["description"]),
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{c['name']}` | `{c['type']}` | {_md(c['description'])} |" for c in f["columns"]
        ]
        lines.append("")
    lines += ["## Loading", ""]
    lines += _loading(fmt)
    lines += [
        "",
        "## Licence",
        "",
        manifest["licence"],
        "",
        "## Reproducibility",
        "",
        "The export contains no export date: two exports of the same database with the same "
        "pyarrow version are byte-identical, and the sha256 sums above change only when the "
        "data does.",
        "",
    ]
    return "\n".join(lines)
