"""Extraction quality benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/extract.py [--verbose] [--only NAME]

Two corpora, each used when present:

* demo: data/demo/stories.tsv + sentinels.txt, pages under data/demo/site rendered from
  data/demo/articles/*.md with chrome that contains the sentinel words.
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
import html
import mimetypes
import re
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from mlopsmortem.extract import HtmlOptions, extract_document

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
SHARED_ARTICLES = ROOT.parent / "shared" / "corpus" / "articles"
sys.path.insert(0, str(ROOT))
from tests.fixtures.extract.minipdf import pdf_from_paragraphs  # noqa: E402

MD = MarkdownIt("commonmark").enable("table")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
MIN_SENTENCE_WORDS = 3

# Words that occur only in the chrome of the generated pages (checked against the articles).
SENTINELS = (
    "vexmarion",
    "quillodrap",
    "snorbage",
    "plinthwax",
    "mudgeroo",
    "trevallic",
    "oskabrine",
    "fulmidge",
    "wendrostal",
    "kappelfry",
    "zorbleton",
    "hinquist",
)

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
    articles = {p.stem.split("-", 1)[1]: p for p in (DEMO / "articles").glob("*.md")}
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
        title = _title(markdown, path.stem)
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


def _title(markdown: str, fallback: str) -> str:
    match = re.search(r"^#\s+(.+)$", markdown, re.MULTILINE)
    return match.group(1).strip() if match else fallback


# --------------------------------------------------------------------------- shared layouts
# Chrome mixes full sentences (which an extractor can mistake for content) with link lists.
# Some layouts name their chrome semantically, one uses opaque CSS-module class names only.


def _s(number: int, offset: int = 0) -> str:
    return SENTINELS[(number + offset) % len(SENTINELS)]


def _head(title: str) -> str:
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{t} | Bench Site'
        f'</title><meta name="author" content="Bench Author"><meta property="og:title" '
        f'content="{t}"><meta property="article:published_time" content="2021-04-05"></head>'
    )


def _comments(n: int, cls: str = "comment") -> str:
    items = "".join(
        f'<div class="{cls}"><p class="{cls}-author">user{i}</p><p>I really enjoyed this '
        f"write-up about the outage and we saw something very similar with our {_s(n, i)} "
        f"cluster last year, where the retry storm took down the database for an hour.</p>"
        f"<p>Did you consider moving the {_s(n, i + 1)} checks earlier in the pipeline?</p></div>"
        for i in range(4)
    )
    return f'<section id="comments"><h2>4 Comments</h2>{items}</section>'


def _related(n: int) -> str:
    items = "".join(
        f'<li><a href="/p{i}"><h3>How we rebuilt our {_s(n, i)} platform</h3></a><p>A story '
        f"about migrating a large fleet of services to the {_s(n, i + 2)} scheduler without "
        f"downtime, and what we learned along the way.</p></li>"
        for i in range(3)
    )
    return f'<section class="related-posts"><h2>Related posts</h2><ul>{items}</ul></section>'


def layout_blog(title: str, article: str, n: int) -> str:
    return (
        _head(title) + '<body><div class="cookie-notice"><p>This website uses cookies from '
        f"{_s(n)} to improve your experience. By continuing to browse the site you agree to "
        f"our use of cookies and to the {_s(n, 1)} privacy policy.</p><button>Accept</button>"
        f'</div><nav class="top-nav"><a href="/">Home</a> <a href="/b">{_s(n, 2)} Blog</a>'
        '</nav><div class="layout"><main><article class="post"><header class="post-header">'
        f'<p class="byline">By Bench Author, 5 April 2021</p></header><div class="post-body">'
        f'{article}</div></article><div class="share-bar">Share on {_s(n, 3)} Twitter LinkedIn'
        f"</div>{_comments(n)}</main>"
        f'<aside class="sidebar"><div class="about"><h3>About the author</h3><p>Bench Author '
        f"is a site reliability engineer at {_s(n, 4)} who writes about distributed systems, "
        f"incident response and the occasional failed deploy.</p></div>{_related(n)}"
        f'<div class="newsletter-signup"><h3>Subscribe</h3><p>Get the {_s(n, 5)} newsletter '
        "with our best engineering stories delivered to your inbox every month.</p></div>"
        f'</aside></div><footer class="site-footer"><p>Copyright 2024 {_s(n, 6)} Inc. All '
        "rights reserved. Made with care by the platform team.</p></footer></body></html>"
    )


def layout_divsoup(title: str, article: str, n: int) -> str:
    # CSS-module class names: nothing in the markup says what is chrome.
    return (
        _head(title) + '<body><div class="css-1q2w3e"><div class="css-9k8j7h"><p>We value your '
        f"privacy. We and our {_s(n)} partners store and access information on your device "
        "to provide personalised content and measure audience engagement.</p><span>Accept"
        f'</span></div><div class="css-4r5t6y"><a href="/">{_s(n, 1)}</a> <a href="/x">'
        f'Products</a> <a href="/y">Pricing</a></div><div class="css-7u8i9o"><div '
        f'class="css-0p1a2s"><h1 class="css-3d4f5g">{html.escape(title)}</h1><div '
        f'class="css-6h7j8k">{article}</div></div><div class="css-9l0z1x"><h4>Recommended '
        f"for you</h4><div><p>Read how the {_s(n, 2)} team cut their cloud bill in half by "
        "rightsizing every node pool in production.</p></div><div><p>Ten lessons from "
        f"running {_s(n, 3)} at scale for five years, and the mistakes we made.</p></div>"
        f'</div></div><div class="css-2c3v4b"><p>Responses (2)</p><div><p>Great article, '
        f"the part about the {_s(n, 4)} rollout matches exactly what happened at my company."
        f"</p></div><div><p>We had the same problem but solved it with {_s(n, 5)} instead.</p>"
        f'</div></div><div class="css-5n6m7q"><p>{_s(n, 6)} Inc. 2024. Terms. Privacy. '
        "Careers. Help.</p></div></div></body></html>"
    )


def layout_docs(title: str, article: str, n: int) -> str:
    toc = "".join(
        f'<li class="toctree-l1"><a href="/d{i}">{_s(n, i)} guide {i}</a></li>' for i in range(6)
    )
    return (
        _head(title) + '<body><div class="related" role="navigation"><ul><li><a href="/">'
        f'{_s(n)} docs</a> &raquo;</li><li>Incident reports</li></ul></div><div class="document">'
        '<div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">'
        f'<div class="section">{article}</div></div></div></div><div class="sphinxsidebar" '
        f'role="navigation"><h3>Table of contents</h3><ul>{toc}</ul><div class="searchbox">'
        f'<form><input name="q"></form></div></div></div><div class="footer">&copy; Copyright '
        f"2024, the {_s(n, 3)} project. Created using Sphinx. Last updated on 5 April 2021."
        f'</div><div class="rst-versions"><span>Read the Docs</span> v: latest {_s(n, 4)}</div>'
        "</body></html>"
    )


def layout_readme(title: str, article: str, n: int) -> str:
    files = "".join(
        f'<tr class="file-row"><td><a href="/f{i}">file{i}.md</a></td><td>Fix typo in the '
        f"{_s(n, i)} section of the postmortem</td><td>3 years ago</td></tr>"
        for i in range(5)
    )
    return (
        _head(title) + '<body><header class="AppHeader"><a href="/">Code host</a> <input '
        f'placeholder="Search or jump to"></header><div class="repohead"><h2>org / {_s(n)}'
        '-postmortems</h2><nav class="UnderlineNav"><a>Code</a><a>Issues 12</a><a>Pull '
        'requests 3</a><a>Actions</a></nav></div><div class="Layout"><div class="Layout-main">'
        f'<table class="files">{files}</table><div id="readme" class="Box"><div class="Box-header">'
        'README.md</div><article class="markdown-body entry-content">'
        f'{article}</article></div></div><div class="Layout-sidebar"><h2>About</h2><p>Public '
        f"postmortems of the {_s(n, 1)} platform team, shared so others can learn from our "
        f"mistakes.</p><ul><li>{_s(n, 2)} Readme</li><li>MIT license</li><li>412 stars</li>"
        '</ul></div></div><footer class="footer"><ul><li>Terms</li><li>Privacy</li><li>'
        f"Security</li><li>Status</li><li>{_s(n, 3)} Docs</li></ul></footer></body></html>"
    )


def layout_forum(title: str, article: str, n: int) -> str:
    replies = "".join(
        f'<div class="topic-post reply"><div class="topic-avatar">u{i}</div>'
        '<div class="topic-body">'
        f'<div class="names">{_s(n, i)}_fan</div><div class="cooked"><p>Thanks for sharing '
        f"this, we run a very similar setup on {_s(n, i + 1)} and this thread just saved us "
        f"from making the same mistake in production next week.</p></div></div></div>"
        for i in range(3)
    )
    return (
        _head(title) + '<body><div class="d-header"><a href="/">Community forum</a> <a '
        f'href="/latest">{_s(n)} latest</a></div><div id="main-outlet"><h1 class="fancy-title">'
        f'{html.escape(title)}</h1><div class="topic-post first"><div class="topic-avatar">op'
        '</div><div class="topic-body"><div class="names">op_user</div><div class="cooked">'
        f'{article}</div></div></div>{replies}<div class="suggested-topics"><h3>Suggested '
        f"topics</h3><table><tr><td>Upgrading {_s(n, 2)} without downtime</td><td>12 replies"
        f"</td></tr><tr><td>Best practices for {_s(n, 3)} alerts</td><td>4 replies</td></tr>"
        "</table></div></div></body></html>"
    )


def layout_magazine(title: str, article: str, n: int) -> str:
    return (
        _head(title) + '<body><div id="gdpr-consent" role="dialog"><p>We and our partners use '
        f"{_s(n)} cookies and similar technologies to deliver ads and analyse traffic.</p></div>"
        f'<header class="site-header"><div class="logo">{_s(n, 1)} Weekly</div><ul class="menu">'
        '<li>News</li><li>Features</li><li>Podcasts</li></ul></header><div class="content-area">'
        f'<h1 class="entry-title">{html.escape(title)}</h1><div class="entry-meta">Posted in '
        f'Engineering by Bench Author</div><div class="entry-content">{article}'
        f'<div class="ad-slot advertisement"><p>Sponsored: try {_s(n, 2)} cloud free for 30 '
        "days and ship your infrastructure faster than ever before.</p></div></div>"
        f'<div class="author-box"><p>Bench Author writes about {_s(n, 3)} and reliability '
        "engineering for teams that run their own infrastructure.</p></div>"
        f'<div class="social-share"><a>Facebook</a><a>{_s(n, 4)}</a></div>{_related(n + 5)}'
        f'{_comments(n + 6, "comment-body")}</div><div id="footer-widgets"><p>{_s(n, 7)} '
        "Weekly is an independent publication about infrastructure and operations.</p></div>"
        "</body></html>"
    )


def layout_inline(title: str, article: str, n: int) -> str:
    # Chrome inside the article element itself, as blogs insert calls to action mid-post.
    parts = article.split("</p>", 3)
    if len(parts) == 4:
        article = (
            "</p>".join(parts[:2]) + f'</p><aside class="read-next"><h4>Read next</h4><a '
            f'href="/n">Why our {_s(n)} migration took two years</a></aside>{parts[2]}</p>'
            f'<div class="newsletter-cta"><p>Enjoying this post? Get the {_s(n, 1)} digest of '
            "engineering stories in your inbox every other week.</p><form><input></form></div>"
            + parts[3]
        )
    return (
        _head(title) + '<body><header class="site-header"><a href="/">Home</a></header><main>'
        f'<article class="post">{article}<div class="post-tags">Tags: <a href="/t">{_s(n, 2)}'
        '</a> <a href="/k">kubernetes</a></div><div class="author-bio"><p>Bench Author is a '
        f"staff engineer at {_s(n, 3)} and has been on call for far too many years.</p></div>"
        f'<div class="post-navigation"><a href="/prev">Previous: {_s(n, 4)} capacity planning '
        f'notes</a> <a href="/next">Next: our {_s(n, 5)} on-call handbook</a></div>'
        f'<ul class="share-links"><li><a>Share on {_s(n, 6)}</a></li><li><a>Email</a></li></ul>'
        "</article></main></body></html>"
    )


LAYOUTS = {
    "inline": layout_inline,
    "blog": layout_blog,
    "divsoup": layout_divsoup,
    "docs": layout_docs,
    "readme": layout_readme,
    "forum": layout_forum,
    "magazine": layout_magazine,
}


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
