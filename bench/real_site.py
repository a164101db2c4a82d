"""The real corpus as a crawlable web site, for bench/real.py.

The 37 articles of ../shared/corpus/articles are rendered into HTML pages with page chrome (a
status page for PostHog's incidents, a code host for the dfds and Zalando postmortems, a docs
site for mybinder's, blog, forum and magazine layouts for the rest) and served from a temporary
folder; every chrome block carries one of `SENTINELS`, so chrome left in passages can be counted.
A site's chrome is the same on each of its pages, as on a real site. The four real lists are
copied with each article's URL pointed at its local page, and the articles no list names get
a list of their own, so the crawl reaches every article the way a user's crawl would. Nothing
is written inside the repository.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path

from bench.extract import MD, markdown_title
from bench.extract_layouts import LAYOUTS, SENTINELS, _head
from mlopsmortem.lists.ingest import SourceSpec

# (source name, file in ../shared/corpus/lists, format)
LISTS = (
    ("awful-mlops", "awful-mlops.md", "afs"),
    ("k8s.af", "k8s-failure-stories.md", "afs"),
    ("danluu-post-mortems", "danluu-post-mortems.md", "danluu"),
    ("mlops-resources", "mlops-resources.md", "resources"),
)
# Each site's layout; the other repositories take the remaining layouts in turn.
SITE_LAYOUTS = {
    "PostHog/post-mortems": "status",
    "dfds/postmortems": "readme",
    "zalando-incubator/kubernetes-on-aws": "readme",
    "jupyterhub/mybinder.org-deploy": "docs",
}
OTHER_LAYOUTS = ("blog", "forum", "magazine", "divsoup", "inline")


@dataclass(frozen=True)
class Article:
    file: str
    site: str  # the repository the article comes from: one site, one chrome
    title: str
    url: str  # as INDEX.tsv and the lists write it
    markdown: str


def read_articles(corpus: Path) -> list[Article]:
    with open(corpus / "articles" / "INDEX.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    articles = []
    for row in rows:
        markdown = (corpus / "articles" / row["file"]).read_text(encoding="utf-8")
        leaked = [w for w in SENTINELS if w in markdown.lower()]
        if leaked:
            raise SystemExit(f"{row['file']} contains sentinel words {leaked}: pick others")
        articles.append(Article(row["file"], row["repo"], row["title"], row["url"], markdown))
    return articles


def layout_status(title: str, article: str, n: int) -> str:
    """A hosted status page: component list, subscribe boxes and resolved banners around the
    postmortem."""

    def s(i: int) -> str:
        return SENTINELS[(n + i) % len(SENTINELS)]

    t = html.escape(title)
    # As on hosted status pages, the banner, the affected components and the updates sit in
    # the main column with the postmortem, where an extractor cannot tell them apart.
    return (
        _head(title) + f'<body><header class="status-header"><a href="/">{s(0)} Status</a>'
        f'<a class="subscribe" href="/subscribe">Subscribe to {s(1)} updates</a></header>'
        f"<main><h1>{t}</h1>"
        f"<p>This incident has been resolved. Posted by the {s(2)} operations team.</p>"
        f"<h2>Affected components</h2><ul><li>{s(3)} API (Operational)</li><li>{s(4)}"
        f" Ingestion (Operational)</li><li>{s(5)} Dashboard (Operational)</li></ul>"
        f"<h2>Updates</h2><p><strong>Resolved</strong> - This incident has been resolved. We"
        f" will publish a {s(6)} postmortem soon.</p><p><strong>Monitoring</strong> - A fix"
        f" has been implemented and we are monitoring the {s(7)} results.</p>"
        f"<h2>Postmortem</h2>{article}"
        f"<p>Subscribe to {s(8)} status updates via email, SMS or RSS.</p></main>"
        f"<footer><p>Powered by {s(9)} Statuspage</p></footer></body></html>"
    )


def site_layouts(articles: list[Article]) -> dict[str, str]:
    sites = sorted({a.site for a in articles})
    others = [s for s in sites if s not in SITE_LAYOUTS]
    layouts = {s: OTHER_LAYOUTS[i % len(OTHER_LAYOUTS)] for i, s in enumerate(others)}
    layouts.update({s: SITE_LAYOUTS[s] for s in sites if s in SITE_LAYOUTS})
    return layouts


def render_site(articles: list[Article], site_dir: Path) -> dict[str, str]:
    """Write one page per article under `site_dir`; returns {article URL: page path}."""
    layouts = site_layouts(articles)
    numbers = {site: i for i, site in enumerate(sorted(layouts))}
    paths = {}
    for article in articles:
        layout = layouts[article.site]
        render = layout_status if layout == "status" else LAYOUTS[layout]
        page = render(markdown_title(article.markdown, article.title), MD.render(article.markdown),
                      numbers[article.site])  # fmt: skip
        path = f"{layout}/{Path(article.file).stem}.html"
        (site_dir / layout).mkdir(parents=True, exist_ok=True)
        (site_dir / path).write_text(page, encoding="utf-8")
        paths[article.url] = path
    return paths


def write_lists(
    corpus: Path, articles: list[Article], local: dict[str, str], out: Path
) -> list[SourceSpec]:
    """The real lists with article links pointed at `local` ({article URL: local URL}), plus a
    generic list of the articles no list links to."""
    out.mkdir(parents=True, exist_ok=True)
    specs, named = [], set()
    for name, file, fmt in LISTS:
        text = (corpus / "lists" / file).read_text(encoding="utf-8")
        for url, target in local.items():
            if f"({url})" in text:
                named.add(url)
                text = text.replace(f"({url})", f"({target})")
        (out / file).write_text(text, encoding="utf-8")
        specs.append(SourceSpec(name=name, location=str(out / file), format=fmt))
    rest = [a for a in articles if a.url not in named]
    lines = ["# Postmortems from public repositories", ""]
    lines += [f"* [{a.title}]({local[a.url]})" for a in rest]
    (out / "articles.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    specs.append(SourceSpec(name="postmortem-repos", location=str(out / "articles.md"),
                            format="generic"))  # fmt: skip
    return specs
