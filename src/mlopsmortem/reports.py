"""Change reports as markdown, for a commit message or a chat post."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlopsmortem.pipeline import CrawlRun


def crawl_report_markdown(result: CrawlRun) -> str:
    data = result.as_dict()
    lines = [
        f"# mlopsmortem crawl report (run {data['run_id']})",
        "",
        "| | count |",
        "|---|---:|",
    ]
    for key in ("new_stories", "changed_pages", "unchanged", "newly_dead", "recovered"):
        lines.append(f"| {key.replace('_', ' ')} | {data[key]} |")
    for key in ("archived", "refused", "blocked", "errors"):
        lines.append(f"| {key} | {data[key]} |")
    lines.append("")
    for source in result.ingest.sources:
        status = f"not read: {source.error}" if source.error else "ok"
        lines.append(
            f"- **{source.name}**: {status}; {source.new} new, {source.updated} updated, "
            f"{source.removed} removed, {source.skipped} skipped"
        )
    return "\n".join(lines) + "\n"
