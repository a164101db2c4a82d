"""Extraction quality benchmark: prints figures, asserts nothing.

    .venv/bin/python -m bench.extract [--verbose] [--only NAME]

Two corpora, each used when present:

* demo: data/demo/stories.tsv + sentinels.txt, pages under data/demo/site rendered from
  tools/demo_corpus/articles/*.md with chrome that contains the sentinel words.
* shared: ../shared/corpus/articles/*.md (real postmortems, not in this repository), rendered at
  run time into seven layouts wrapped in heavy chrome carrying this file's own sentinel words,
  plus one PDF per article. Nothing of that prose is written to disk.

For every configuration of `HtmlOptions` it prints the share of HTML pages whose text contains a
sentinel (target <= 2 %) and the mean and minimum share of each article's own sentences found in
the extracted text (target >= 95 %). A sentence is recovered when it occurs in the extracted
text after both are whitespace-normalised; sentences of fewer than three words are not counted.
PDF pages count for sentences only. Also: pages with no text ("empty"), pages whose text has no
paragraph break ("flat"), and on the demo pages whose date has the front matter's year.
"""

from __future__ import annotations

import argparse
import csv
import mimetypes
import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from bench.extract_layouts import LAYOUTS, SENTINELS
from mlopsmortem.extract.dispatch import extract_document
from mlopsmortem.extract.htmltext import HtmlOptions
from tests.fixtures.extract.minipdf import pdf_from_paragraphs

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
SHARED_ARTICLES = ROOT.parent / "shared" / "corpus" / "articles"

MD = MarkdownIt("commonmark").enable("table")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
MIN_SENTENCE_WORDS = 3

_PLAIN = {"preclean": False, "anchor": False}
CONFIGS: dict[str, HtmlOptions] = {
    "defaults": HtmlOptions(**_PLAIN, include_comments=True),
    "no-comments": HtmlOptions(**_PLAIN),
    "precision": HtmlOptions(**_PLAIN, favor_precision=True),
    "recall": HtmlOptions(**_PLAIN, favor_recall=True),
    "no-fallback": HtmlOptions(**_PLAIN, no_fallback=True),
    "dedup": HtmlOptions(**_PLAIN, deduplicate=True),
    "preclean": HtmlOptions(anchor=False),
    "anchor": HtmlOptions(preclean=False),
    "preclean+anchor": HtmlOptions(),
    "preclean+anchor+precision": HtmlOptions(favor_precision=True),
    "preclean+anchor+recall": HtmlOptions(favor_recall=True),
    "preclean+anchor+no-fallback": HtmlOptions(no_fallback=True),
    "preclean+anchor+dedup": HtmlOptions(deduplicate=True),
    "preclean+anchor+no-tables": HtmlOptions(include_tables=False),
    "preclean+recall": HtmlOptions(anchor=False, favor_recall=True),
    "anchor+recall": HtmlOptions(preclean=False, favor_recall=True),
    "preclean+anchor+extensive-dates": HtmlOptions(extensive_date_search=True),
    "preclean+anchor@0.5": HtmlOptions(anchor_share=0.5),
    "preclean+anchor@0.6": HtmlOptions(anchor_share=0.6),
    "preclean+anchor@0.8": HtmlOptions(anchor_share=0.8),
    "preclean+anchor@0.9": HtmlOptions(anchor_share=0.9),
}


@dataclass(frozen=True)
class Page:
    corpus: str
    name: str
    layout: str
    body: bytes
    content_type: str
    url: str
    sentences: tuple[str, ...]
    sentinels: tuple[str, ...]
    year: str | None = None  # publication year from the article's front matter


@dataclass
class Result:
    recovered: list[float] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)  # page names
    html_pages: int = 0
    empty: list[str] = field(default_factory=list)
    seconds: float = 0.0
    misses: dict[str, list[str]] = field(default_factory=dict)
    flat: list[str] = field(default_factory=list)  # text without a single paragraph break
    dated: int = 0  # pages with a known year
    date_right: int = 0
    date_wrong: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- sentences


def norm(text: str) -> str:
    return " ".join(text.split())


def markdown_units(markdown: str) -> list[str]:
    """The article's visible text, one unit per block (paragraph, heading, list item, table cell,
    code line), markdown syntax stripped by parsing it."""
    units: list[str] = []
    for token in MD.parse(FRONT_MATTER.sub("", markdown)):
        if token.type == "inline":
            parts = []
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
            units.append("".join(parts))
        elif token.type in ("fence", "code_block"):
            units.extend(token.content.splitlines())
    return units


def sentences(markdown: str) -> tuple[str, ...]:
    out = []
    for unit in markdown_units(markdown):
        for sentence in SENTENCE_SPLIT.split(unit):
            sentence = norm(sentence)
            if len(sentence.split()) >= MIN_SENTENCE_WORDS:
                out.append(sentence)
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------- corpora


def demo_pages() -> list[Page]:
    stories, sentinel_file = DEMO / "stories.tsv", DEMO / "sentinels.txt"
    if not (stories.is_file() and sentinel_file.is_file()):
        return []
    words = tuple(w.strip().lower() for w in sentinel_file.read_text().split() if w.strip())
    articles = {
        p.stem.split("-", 1)[1]: p
        for p in (ROOT / "tools" / "demo_corpus" / "articles").glob("*.md")
    }
    pages = []
    with stories.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = DEMO / row["path"] if row.get("path") else None
            article = articles.get(row["slug"])
            if path is None or not path.is_file() or article is None:
                continue
            suffix = path.suffix.lower()
            if suffix not in (".html", ".pdf"):
                continue  # the video entry: see no_text_check()
            content_type = "application/pdf" if suffix == ".pdf" else "text/html"
            markdown = article.read_text(encoding="utf-8")
            found = sentences(markdown)
            year = re.search(r"^year:\s*(\d{4})", markdown, re.MULTILINE)
            if suffix == ".pdf":
                found = tuple(dict.fromkeys(_winansi(s) for s in found))
            pages.append(
                Page(
                    "demo",
                    row["slug"],
                    row.get("layout") or suffix,
                    path.read_bytes(),
                    content_type,
                    row.get("url") or path.as_uri(),
                    found,
                    words if suffix == ".html" else (),
                    year.group(1) if year else None,
                )
            )
    return pages


def shared_pages() -> list[Page]:
    if not SHARED_ARTICLES.is_dir():
        return []
    pages = []
    for number, path in enumerate(sorted(SHARED_ARTICLES.glob("*.md"))):
        markdown = path.read_text(encoding="utf-8")
        leaked = [w for w in SENTINELS if w in markdown.lower()]
        if leaked:
            raise SystemExit(f"{path.name} contains sentinel words {leaked}: pick others")
        title = markdown_title(markdown, path.stem)
        article_html = MD.render(markdown)
        found = sentences(markdown)
        for layout, render in LAYOUTS.items():
            url = f"http://127.0.0.1:9/{layout}/{path.stem}.html"
            page = render(title, article_html, number)
            pages.append(
                Page(
                    "shared",
                    path.stem,
                    layout,
                    page.encode("utf-8"),
                    "text/html; charset=utf-8",
                    url,
                    found,
                    SENTINELS,
                )
            )
        pdf_paragraphs = [_winansi(u) for u in markdown_units(markdown) if u.strip()]
        pages.append(
            Page(
                "shared",
                path.stem,
                "pdf",
                pdf_from_paragraphs(pdf_paragraphs, title=title, author="Bench"),
                "application/pdf",
                f"http://127.0.0.1:9/papers/{path.stem}.pdf",
                tuple(dict.fromkeys(_winansi(s) for s in found)),
                (),
            )
        )
    return pages


def _winansi(text: str) -> str:
    """What survives a Helvetica/WinAnsiEncoding PDF."""
    return text.encode("cp1252", errors="replace").decode("cp1252")


def markdown_title(markdown: str, fallback: str) -> str:
    """The first level-1 heading of `markdown`, else `fallback`."""
    match = re.search(r"^#\s+(.+)$", markdown, re.MULTILINE)
    return match.group(1).strip() if match else fallback


# --------------------------------------------------------------------------- measuring


def run(pages: Iterable[Page], options: HtmlOptions) -> Result:
    result = Result()
    started = time.perf_counter()
    for page in pages:
        doc = extract_document(page.body, page.content_type, page.url, options=options)
        text = norm(doc.text or "")
        if not text:
            result.empty.append(f"{page.layout}/{page.name}: {doc.no_text_reason}")
        elif "\n\n" not in (doc.text or ""):
            result.flat.append(f"{page.layout}/{page.name}")
        missing = [s for s in page.sentences if s not in text]
        if page.sentences:
            result.recovered.append(1 - len(missing) / len(page.sentences))
        if missing:
            result.misses[f"{page.layout}/{page.name}"] = missing
        if page.year:
            result.dated += 1
            if (doc.date or "")[:4] == page.year:
                result.date_right += 1
            else:
                result.date_wrong.append(f"{page.layout}/{page.name}: {doc.date} != {page.year}")
        if page.content_type.startswith("text/html"):
            result.html_pages += 1
            lowered = text.lower()
            found = [w for w in page.sentinels if w in lowered]
            if found:
                result.leaked.append(f"{page.layout}/{page.name}: {', '.join(found)}")
    result.seconds = time.perf_counter() - started
    return result


def report(corpus: str, pages: list[Page], names: list[str], verbose: bool) -> None:
    layouts: dict[str, int] = {}
    for page in pages:
        layouts[page.layout] = layouts.get(page.layout, 0) + 1
    print(
        f"\n== {corpus}: {len(pages)} pages ({', '.join(f'{k} {v}' for k, v in layouts.items())})"
    )
    print(
        f"{'configuration':32} {'sentinel pages':>15} {'mean recall':>12} {'min recall':>11}"
        f" {'empty':>6} {'flat':>5} {'date ok':>8} {'ms/page':>8}"
    )
    for name in names:
        result = run(pages, CONFIGS[name])
        leak_share = len(result.leaked) / result.html_pages if result.html_pages else 0.0
        print(
            f"{name:32} {leak_share:>15.1%} {statistics.mean(result.recovered):>12.1%}"
            f" {min(result.recovered):>11.1%} {len(result.empty):>6} {len(result.flat):>5}"
            f" {_share(result.date_right, result.dated):>8}"
            f" {1000 * result.seconds / len(pages):>8.1f}"
        )
        if verbose:
            by_layout: dict[str, list[float]] = {}
            leaks: dict[str, int] = {}
            for page, recall in zip(pages, _recalls(pages, result), strict=True):
                by_layout.setdefault(page.layout, []).append(recall)
            for leak in result.leaked:
                leaks[leak.split("/")[0]] = leaks.get(leak.split("/")[0], 0) + 1
            for layout, recalls in by_layout.items():
                print(
                    f"    {layout:12} mean {statistics.mean(recalls):6.1%} min "
                    f"{min(recalls):6.1%} leaked {leaks.get(layout, 0)}/{len(recalls)}"
                )
            for leak in result.leaked[:12]:
                print(f"    leak  {leak}")
            for wrong in result.date_wrong[:6]:
                print(f"    date  {wrong}")
            for empty in result.empty[:12]:
                print(f"    empty {empty}")
            worst = sorted(result.misses.items(), key=lambda kv: -len(kv[1]))[:6]
            for key, missing in worst:
                print(f"    miss  {key}: {len(missing)} e.g. {missing[0][:100]!r}")


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _recalls(pages: list[Page], result: Result) -> list[float]:
    out = []
    for page in pages:
        missing = result.misses.get(f"{page.layout}/{page.name}", [])
        out.append(1 - len(missing) / len(page.sentences) if page.sentences else 1.0)
    return out


def no_text_check() -> None:
    """Demo entries served as something else than HTML or PDF must come out without text."""
    stories = DEMO / "stories.tsv"
    if not stories.is_file():
        return
    with stories.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = DEMO / row["path"] if row.get("path") else None
            if path is None or not path.is_file() or path.suffix.lower() in (".html", ".pdf"):
                continue
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            doc = extract_document(path.read_bytes(), content_type, row.get("url") or "")
            print(f"   {row['slug']} ({content_type}): text {doc.text!r}, {doc.no_text_reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="per-layout figures, misses")
    parser.add_argument("--only", action="append", choices=sorted(CONFIGS), help="configuration")
    parser.add_argument("--corpus", action="append", choices=["demo", "shared"])
    args = parser.parse_args()
    names = args.only or list(CONFIGS)
    corpora = {"demo": demo_pages, "shared": shared_pages}
    for corpus in args.corpus or list(corpora):
        pages = corpora[corpus]()
        if not pages:
            print(f"\n== {corpus}: not present, skipped")
            continue
        report(corpus, pages, names, args.verbose)
        if corpus == "demo":
            no_text_check()


if __name__ == "__main__":
    main()
