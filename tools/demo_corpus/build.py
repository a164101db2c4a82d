"""Build the offline demo corpus for mlopsmortem.

Everything in this corpus is FICTIONAL sample data: invented companies, invented
incidents.  The source of truth is ``tools/demo_corpus/articles/NN-slug.md`` (plus the
front-matter-only ``tools/demo_corpus/talks/*.md`` for the video entry).  This script renders:

* ``site/``          the static web site served by the demo server on 127.0.0.1:8017
* ``list.md``        the curated list in the awful-mlops format
* ``queries.tsv``    search evaluation queries with graded relevance
* ``gold_tags.tsv``  canonical components / impacts per story
* ``stories.tsv``    slug -> list URL, title, layout, served file
* ``sentinels.txt``  words that appear only in page chrome, never in article text

Run it with ``python tools/demo_corpus/build.py``; it writes into data/demo/.  Output is
deterministic (no timestamps, no unseeded randomness): running it twice produces
byte-identical files.

Only the standard library and markdown-it-py are used.

The code is split over modules beside this file: ``demo_stories.py`` (vocabularies,
story model, front matter, validation), ``demo_chrome.py`` (deterministic helpers and
page chrome), ``demo_layouts.py`` (HTML layouts and site-level pages), ``demo_pdf.py``
(the PDF writer) and ``demo_eval_queries.py`` (evaluation queries and their checks).
This file keeps ``main()`` and the writing of the outputs.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

# The demo_* modules beside this script are imported from its directory (on sys.path).
from demo_eval_queries import QUERIES, validate_queries  # noqa: E402
from demo_layouts import (  # noqa: E402
    BADGE_SVG,
    RENDERERS,
    ROBOTS,
    index_page,
    simple_page,
    wayback_wrap,
)
from demo_pdf import build_pdf  # noqa: E402
from demo_stories import (  # noqa: E402
    BASE_URL,
    DEAD_NO_SNAPSHOT_SLUG,
    DEAD_WITH_SNAPSHOT_SLUG,
    MIN_STORIES,
    REDIRECT_SLUG,
    SENTINELS,
    WAYBACK_TIMESTAMP,
    Story,
    load_story,
    validate,
)

SOURCES = Path(__file__).resolve().parent  # the articles and talks, and these scripts
HERE = SOURCES.parents[1] / "data" / "demo"  # everything generated: what the wheel ships
ARTICLES_DIR = SOURCES / "articles"
TALKS_DIR = SOURCES / "talks"
SITE = HERE / "site"

# Not a real video: an ISO-BMFF 'ftyp' box followed by an empty 'mdat' box.
DUMMY_MP4 = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    b"\x00\x00\x00\x08free"
    b"\x00\x00\x00\x10mdat" + b"\x00" * 8
)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def list_entry(s: Story) -> str:
    out = f"* [{s.title} - {s.publisher} - {s.kind} {s.year}]({s.list_url})\n"
    if s.involved:
        out += f"    * involved: {s.involved}\n"
    if s.impact:
        out += f"    * impact: {s.impact}\n"
    return out


LIST_HEAD = """# MLOps Failure Stories (demo edition)

A compiled list of links to public **failure stories** related to MLOps and the
infrastructure underneath it. **Everything on this list is fictional sample data**: the
companies, people and incidents were invented for the offline demo of mlopsmortem, and the
links point to a local demo server on 127.0.0.1:8017. Most recent publications on top.

"""

LIST_TAIL = f"""# Contributing

Please help the community and
**[share a link to your failure story]({BASE_URL}/contributing.html)**.
Failure stories can be anything like blog posts, conference talks, incident postmortems,
tweetstorms, ...

[![build]({BASE_URL}/badge.svg)]({BASE_URL}/ci)
"""


def main() -> int:
    articles = sorted(ARTICLES_DIR.glob("*.md"))
    stories = [load_story(p) for p in articles]
    videos = [load_story(p, is_video=True) for p in sorted(TALKS_DIR.glob("*.md"))]
    all_stories = stories + videos

    final = len(stories) >= MIN_STORIES
    errors = validate(all_stories)
    errors += validate_queries(all_stories, final)
    if errors:
        for e in errors:
            print("error:", e, file=sys.stderr)
        return 1
    if not final:
        print(f"note: only {len(stories)} articles so far", file=sys.stderr)

    if SITE.exists():
        shutil.rmtree(SITE)
    SITE.mkdir()

    by_slug = {s.slug: s for s in stories}
    for s in stories:
        if s.slug == DEAD_NO_SNAPSHOT_SLUG:
            continue
        if s.layout == "pdf":
            (SITE / "papers").mkdir(exist_ok=True)
            (SITE / s.served_path.lstrip("/")).write_bytes(build_pdf(s))
            continue
        html_text = RENDERERS[s.layout](stories, s)
        if s.slug == DEAD_WITH_SNAPSHOT_SLUG:
            html_text = wayback_wrap(html_text, s)
        write_text(SITE / s.served_path.lstrip("/"), html_text, s.charset)
    for v in videos:
        (SITE / "talks").mkdir(exist_ok=True)
        (SITE / v.served_path.lstrip("/")).write_bytes(DUMMY_MP4)

    redirects = []
    if REDIRECT_SLUG in by_slug:
        s = by_slug[REDIRECT_SLUG]
        redirects.append(f"/old/{s.slug}.html\t{s.served_path}\t301\n")
    write_text(SITE / "_redirects.tsv", "".join(redirects))
    wayback = []
    if DEAD_WITH_SNAPSHOT_SLUG in by_slug:
        s = by_slug[DEAD_WITH_SNAPSHOT_SLUG]
        wayback.append(f"{s.list_url}\t{WAYBACK_TIMESTAMP}\t{s.served_path}\n")
    write_text(SITE / "_wayback.tsv", "".join(wayback))
    write_text(SITE / "robots.txt", ROBOTS)
    write_text(SITE / "index.html", index_page(stories))
    write_text(SITE / "badge.svg", BADGE_SVG)
    write_text(
        SITE / "contributing.html",
        simple_page(
            "Contributing",
            "<p>Open a pull request that adds one line to the list, in the format "
            "<code>* [Title - Publisher - kind year](url)</code>.</p>",
        ),
    )
    write_text(
        SITE / "ci" / "index.html",
        simple_page("CI status", "<p>The list linter passed on the main branch.</p>"),
    )

    ordered = sorted(all_stories, key=lambda s: (-s.year, s.number if not s.is_video else "99"))
    write_text(
        HERE / "list.md", LIST_HEAD + "\n".join(list_entry(s) for s in ordered) + "\n" + LIST_TAIL
    )

    write_text(HERE / "sentinels.txt", "".join(w + "\n" for w in SENTINELS))
    write_text(
        HERE / "gold_tags.tsv",
        "slug\tcomponents\timpacts\n"
        + "".join(
            f"{s.slug}\t{';'.join(s.components)}\t{';'.join(s.impacts)}\n" for s in all_stories
        ),
    )
    write_text(
        HERE / "stories.tsv",
        "slug\turl\ttitle\tlayout\tpath\n"
        + "".join(
            f"{s.slug}\t{s.list_url}\t{s.title}\t{'video' if s.is_video else s.layout}\t"
            f"{('site' + s.served_path) if s.served_path else ''}\n"
            for s in all_stories
        ),
    )
    write_text(
        HERE / "queries.tsv",
        "query\trelevant\ttype\n" + "".join(f"{q}\t{' '.join(r)}\t{t}\n" for q, r, t in QUERIES),
    )

    # Post-build checks: no sentinel leaked into article text (checked above) and every
    # chrome-bearing page actually contains sentinels.
    for path in sorted(SITE.rglob("*.html")):
        raw = path.read_bytes().decode("cp1252" if b"windows-1252" in raw_head(path) else "utf-8")
        if not any(w in raw.lower() for w in SENTINELS):
            print(f"error: {path} has no sentinel chrome", file=sys.stderr)
            return 1

    words = [s.words for s in stories]
    print(
        f"built {len(stories)} articles + {len(videos)} video; words "
        f"min {min(words)} median {statistics.median(words):g} max {max(words)}"
    )
    return 0


def raw_head(path: Path) -> bytes:
    return path.read_bytes()[:400]


if __name__ == "__main__":
    sys.exit(main())
