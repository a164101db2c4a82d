"""Build the offline demo corpus for mlopsmortem.

Everything in this corpus is FICTIONAL sample data: invented companies, invented
incidents.  The source of truth is ``data/demo/articles/NN-slug.md`` (plus the
front-matter-only ``data/demo/talks/*.md`` for the video entry).  This script renders:

* ``site/``          the static web site served by the demo server on 127.0.0.1:8017
* ``list.md``        the curated list in the awful-mlops format
* ``queries.tsv``    search evaluation queries with graded relevance
* ``gold_tags.tsv``  canonical components / impacts per story
* ``stories.tsv``    slug -> list URL, title, layout, served file
* ``sentinels.txt``  words that appear only in page chrome, never in article text

Run it with ``python data/demo/build.py``.  Output is deterministic (no timestamps,
no unseeded randomness): running it twice produces byte-identical files.

Only the standard library and markdown-it-py are used.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

HERE = Path(__file__).resolve().parent
ARTICLES_DIR = HERE / "articles"
TALKS_DIR = HERE / "talks"
SITE = HERE / "site"
BASE_URL = "http://127.0.0.1:8017"

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

SENTINELS = [
    "quorvexal",
    "blenthrop",
    "zindrafel",
    "mokwastle",
    "pelvitrane",
    "trusketh",
    "obliwand",
    "fennoquay",
    "glimbraxt",
    "surdellow",
    "yattermund",
    "crivabole",
]

COMPONENTS = [
    "fluent-bit",
    "Fluentd",
    "Elasticsearch",
    "Loki",
    "Prometheus",
    "Grafana",
    "Kubernetes",
    "EKS",
    "GKE",
    "Helm",
    "Istio",
    "CoreDNS",
    "DNS",
    "etcd",
    "conntrack",
    "nginx",
    "Airflow",
    "Kubeflow",
    "MLflow",
    "Feast",
    "Spark",
    "Kafka",
    "Redis",
    "PostgreSQL",
    "MySQL",
    "S3",
    "SageMaker",
    "Triton",
    "KServe",
    "Seldon",
    "BentoML",
    "vLLM",
    "DVC",
    "Argo Workflows",
    "Terraform",
    "Jenkins",
    "GitHub Actions",
    "BGP",
    "TLS certificates",
    "Let's Encrypt",
    "Vault",
    "GPU",
    "NVIDIA driver",
    "Ray",
    "Jupyter",
    "Docker",
    "Celery",
    "BigQuery",
    "Snowflake",
    "dbt",
    "Great Expectations",
    "Datadog",
    "PagerDuty",
]

IMPACTS = [
    "outage",
    "partial-outage",
    "lost-logs",
    "data-loss",
    "data-corruption",
    "elevated-latency",
    "elevated-error-rate",
    "model-degradation",
    "wrong-predictions",
    "cost-overrun",
    "security-breach",
    "failed-deployment",
    "capacity-exhaustion",
    "lost-engineering-time",
]

# How a component is recognised in text, used by the self-checks below: a listed
# component must be named at least once; an unlisted one must not be in the title or
# named three or more times.  Patterns without (?i) are case-sensitive.
MENTION_PATTERNS = {
    "fluent-bit": r"(?i)\bfluent[- ]?bit\b",
    "Fluentd": r"(?i)\bfluentd\b",
    "Elasticsearch": r"(?i)\belasticsearch\b",
    "Loki": r"(?i)\bloki\b",
    "Prometheus": r"(?i)\bprometheus\b",
    "Grafana": r"(?i)\bgrafana\b",
    "Kubernetes": r"(?i)\bkubernetes\b|\bk8s\b",
    "EKS": r"\bEKS\b",
    "GKE": r"\bGKE\b",
    "Helm": r"(?i)\bhelm\b",
    "Istio": r"(?i)\bistio\b",
    "CoreDNS": r"(?i)\bcoredns\b",
    "DNS": r"\bDNS\b",
    "etcd": r"(?i)\betcd\b",
    "conntrack": r"(?i)conntrack",
    "nginx": r"(?i)\bnginx\b",
    "Airflow": r"(?i)\bairflow\b",
    "Kubeflow": r"(?i)\bkubeflow\b",
    "MLflow": r"(?i)\bmlflow\b",
    "Feast": r"(?i)\bfeast\b",
    "Spark": r"(?i)\bspark\b",
    "Kafka": r"(?i)\bkafka\b",
    "Redis": r"(?i)\bredis\b",
    "PostgreSQL": r"(?i)\bpostgres(?:ql)?\b|\bpg\b",
    "MySQL": r"(?i)\bmysql\b",
    "S3": r"\bS3\b",
    "SageMaker": r"(?i)\bsagemaker\b",
    "Triton": r"(?i)\btriton\b",
    "KServe": r"(?i)\bkserve\b",
    "Seldon": r"(?i)\bseldon\b",
    "BentoML": r"(?i)\bbentoml\b",
    "vLLM": r"(?i)\bvllm\b",
    "DVC": r"(?i)\bdvc\b",
    "Argo Workflows": r"(?i)\bargo\b",
    "Terraform": r"(?i)\bterraform\b",
    "Jenkins": r"(?i)\bjenkins\b",
    "GitHub Actions": r"(?i)\bgithub actions\b",
    "BGP": r"\bBGP\b",
    "TLS certificates": r"(?i)\btls\b|\bcertificates?\b|\bx509\b",
    "Let's Encrypt": r"(?i)\blet['\u2019]s encrypt\b",
    "Vault": r"(?i)\bvault\b",
    "GPU": r"\bGPUs?\b",
    "NVIDIA driver": r"(?i)\bnvidia drivers?\b",
    "Ray": r"\bRay\b",
    "Jupyter": r"(?i)\bjupyter",
    "Docker": r"(?i)\bdocker\b",
    "Celery": r"(?i)\bcelery\b",
    "BigQuery": r"(?i)\bbigquery\b",
    "Snowflake": r"(?i)\bsnowflake\b",
    "dbt": r"(?i)\bdbt\b",
    "Great Expectations": r"(?i)\bgreat expectations\b",
    "Datadog": r"(?i)\bdatadog\b",
    "PagerDuty": r"(?i)\bpagerduty\b",
}

KINDS = {"blog post", "postmortem", "incident report", "talk", "paper"}
LAYOUTS = {"blog", "status", "reader", "readme", "forum", "pdf"}
LAYOUT_DIRS = {
    "blog": "posts",
    "status": "status",
    "reader": "reader",
    "readme": "code",
    "forum": "forum",
    "pdf": "papers",
}

# --------------------------------------------------------------------------------------
# Special entries (by slug, i.e. the article file name without the NN- prefix)
# --------------------------------------------------------------------------------------

REDIRECT_SLUG = "coredns-ndots-search-domains"  # listed under /old/, 301 to /posts/
DEAD_WITH_SNAPSHOT_SLUG = "jenkins-enospc-docker-layers"  # 404, archived copy exists
DEAD_NO_SNAPSHOT_SLUG = "celery-visibility-timeout-double-scoring"  # 404, nothing archived
WAYBACK_TIMESTAMP = "20220315000000"
CP1252_SLUGS = {"mysql-utf8-silent-truncation", "dns-ttl-region-failover"}

MIN_STORIES = 42

# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass
class Story:
    number: str
    slug: str
    title: str
    publisher: str
    kind: str
    year: int
    layout: str
    components: list[str]
    impacts: list[str]
    involved: str | None
    impact: str | None
    body: str
    source: Path
    is_video: bool = False
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> int:
        return len(self.body.split())

    @property
    def charset(self) -> str:
        return "windows-1252" if self.slug in CP1252_SLUGS else "utf-8"

    @property
    def served_path(self) -> str:
        """Site-relative path of the served file ('' if nothing is served)."""
        if self.is_video:
            return f"/talks/{self.slug}.mp4"
        if self.slug == DEAD_NO_SNAPSHOT_SLUG:
            return ""
        if self.slug == DEAD_WITH_SNAPSHOT_SLUG:
            return f"/wayback/{WAYBACK_TIMESTAMP}/posts/{self.slug}.html"
        if self.layout == "pdf":
            return f"/papers/{self.slug}.pdf"
        return f"/{LAYOUT_DIRS[self.layout]}/{self.slug}.html"

    @property
    def canonical_path(self) -> str:
        """Where the story lives on the (live) site, used for internal links."""
        if self.slug in (DEAD_WITH_SNAPSHOT_SLUG, DEAD_NO_SNAPSHOT_SLUG):
            return f"/posts/{self.slug}.html"
        return self.served_path

    @property
    def list_url(self) -> str:
        if self.slug == REDIRECT_SLUG:
            return f"{BASE_URL}/old/{self.slug}.html"
        return BASE_URL + self.canonical_path


FRONT_MATTER_KEYS = {
    "title",
    "publisher",
    "kind",
    "year",
    "layout",
    "components",
    "impacts",
    "involved",
    "impact",
}


def parse_front_matter(text: str, path: Path) -> tuple[dict[str, str], str]:
    lines = text.split("\n")
    if lines[0] != "---":
        raise SystemExit(f"{path}: missing front matter")
    end = lines.index("---", 1)
    meta: dict[str, str] = {}
    for line in lines[1:end]:
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise SystemExit(f"{path}: bad front matter line {line!r}")
        key = key.strip()
        if key not in FRONT_MATTER_KEYS:
            raise SystemExit(f"{path}: unknown front matter key {key!r}")
        meta[key] = value.strip()
    body = "\n".join(lines[end + 1 :]).strip() + "\n"
    return meta, body


def split_semis(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def load_story(path: Path, is_video: bool = False) -> Story:
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"), path)
    stem = path.stem
    m = re.fullmatch(r"(\d\d)-([a-z0-9-]+)", stem)
    if not m:
        raise SystemExit(f"{path}: file name must be NN-slug.md")
    for key in ("title", "publisher", "kind", "year", "layout", "components", "impacts"):
        if key not in meta:
            raise SystemExit(f"{path}: missing {key}")
    story = Story(
        number=m.group(1),
        slug=m.group(2),
        title=meta["title"],
        publisher=meta["publisher"],
        kind=meta["kind"],
        year=int(meta["year"]),
        layout=meta["layout"],
        components=split_semis(meta["components"]),
        impacts=split_semis(meta["impacts"]),
        involved=meta.get("involved"),
        impact=meta.get("impact"),
        body="" if is_video else body,
        source=path,
        is_video=is_video,
        meta=meta,
    )
    return story


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def count_mentions(component: str, text: str) -> int:
    return len(re.findall(MENTION_PATTERNS[component], text))


def validate(stories: list[Story]) -> list[str]:
    errors: list[str] = []
    warnings: list[str] = []
    slugs = [s.slug for s in stories]
    if len(set(slugs)) != len(slugs):
        errors.append("duplicate slugs")
    numbers = [s.number for s in stories if not s.is_video]
    if len(set(numbers)) != len(numbers):
        errors.append("duplicate article numbers")
    sentinel_re = re.compile("|".join(SENTINELS), re.IGNORECASE)
    for s in stories:
        where = s.source.name
        if s.kind not in KINDS:
            errors.append(f"{where}: bad kind {s.kind!r}")
        if not 2018 <= s.year <= 2025:
            errors.append(f"{where}: bad year {s.year}")
        if not s.is_video and s.layout not in LAYOUTS:
            errors.append(f"{where}: bad layout {s.layout!r}")
        if " - " in s.title or "[" in s.title or "]" in s.title or "\t" in s.title:
            errors.append(f"{where}: title must not contain ' - ', brackets or tabs")
        for c in s.components:
            if c not in COMPONENTS:
                errors.append(f"{where}: unknown component {c!r}")
        for i in s.impacts:
            if i not in IMPACTS:
                errors.append(f"{where}: unknown impact {i!r}")
        if not s.components or not s.impacts:
            errors.append(f"{where}: needs components and impacts")
        everything = "\n".join([s.title, s.publisher, s.body, s.involved or "", s.impact or ""])
        if sentinel_re.search(everything):
            errors.append(f"{where}: article text contains a sentinel word")
        if s.is_video:
            continue
        if not 300 <= s.words <= 1500:
            errors.append(f"{where}: {s.words} words (want 300-1500)")
        if s.slug in CP1252_SLUGS:
            try:
                s.body.encode("cp1252")
                s.title.encode("cp1252")
            except UnicodeEncodeError as exc:
                errors.append(f"{where}: not encodable as windows-1252: {exc}")
            if not re.search("[\u00e9\u00fc\u2013\u201c\u201d]", s.body):
                errors.append(f"{where}: windows-1252 page needs real non-ASCII text")
        text = s.title + "\n" + s.body
        for c in COMPONENTS:
            n_title = count_mentions(c, s.title)
            n_all = count_mentions(c, text)
            if c in s.components:
                if n_all == 0:
                    errors.append(f"{where}: component {c!r} listed but never named")
            else:
                if n_title:
                    errors.append(f"{where}: unlisted component {c!r} in title")
                if n_all >= 3:
                    errors.append(f"{where}: unlisted component {c!r} named {n_all} times")
                elif n_all == 2:
                    warnings.append(f"{where}: unlisted component {c!r} named twice")
    for w in warnings:
        print("warning:", w, file=sys.stderr)
    return errors


# --------------------------------------------------------------------------------------
# Deterministic helpers
# --------------------------------------------------------------------------------------


def h(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:12], 16)


def pick(seq: list, *key: object):
    return seq[h(*key) % len(seq)]


def pick_n(seq: list, n: int, *key: object) -> list:
    ranked = sorted(range(len(seq)), key=lambda i: h(*key, i))
    return [seq[i] for i in sorted(ranked[:n])]


def fake_date(s: Story) -> tuple[int, int, int]:
    # Publication date: some day in December of the story's year, so that it never
    # precedes the incident described in the text.
    return s.year, 12, 5 + h("day", s.slug) % 24


MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def date_text(s: Story) -> str:
    y, m, d = fake_date(s)
    return f"{MONTHS[m - 1]} {d}, {y}"


def iso_date(s: Story) -> str:
    y, m, d = fake_date(s)
    return f"{y:04d}-{m:02d}-{d:02d}"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(body: str) -> str:
    return MD.render(body)


# --------------------------------------------------------------------------------------
# Chrome (every piece contains at least one sentinel word)
# --------------------------------------------------------------------------------------

COMMENTS = [
    (
        "mira_k",
        "Thanks for writing this up so openly. The timeline section is gold; "
        "we are borrowing the format for our glimbraxt reviews.",
    ),
    (
        "devon.ops",
        "How long did it take before someone outside the team noticed? "
        "At glimbraxt that is always the scary part for us.",
    ),
    (
        "Tomasz W.",
        "Almost the same thing happened to my yattermund crew last year. The fix that stuck "
        "was alerting on the symptom instead of the cause.",
    ),
    ("quietpager", "Bookmarking this for the next yattermund reading group."),
    (
        "ana_r",
        "Would love a follow-up in six months on whether the action items actually got done. "
        "Sent to the glimbraxt channel.",
    ),
    (
        "J. Okafor",
        "Honest question: was there any pushback on the follow-up work from product? "
        "Ours always gets deprioritised at yattermund.",
    ),
    (
        "lenny",
        "The 'what went badly' part is refreshingly candid. More of this, please. "
        "(glimbraxt reader since 2017)",
    ),
    ("fern", "Printed this for our glimbraxt on-call onboarding binder."),
    (
        "pkowal",
        "Small nit from a yattermund pedant: one of the timestamps looks like local time "
        "rather than UTC?",
    ),
    ("sam_h", "Test your failure modes before they test you. Great glimbraxt-worthy read."),
    ("r.lindqvist", "Did this change how you run game days? Asking for a yattermund friend."),
    (
        "nkosi",
        "We moved to weekly blenthrop drills after something similar. Painful at first, worth it.",
    ),
]

FORUM_REPLIES = [
    (
        "hollis_m",
        "Surdellow Regular",
        "Great write-up, thanks for sharing. Out of curiosity, how big is the team that owns this?",
    ),
    (
        "ivy.tran",
        "Member",
        "We saw something very similar last spring. +1 to alerting on what users actually "
        "experience. (posted from the surdellow app)",
    ),
    (
        "b_osei",
        "Surdellow Moderator",
        "Moved to the Incident Reviews category. Please keep replies on topic, folks.",
    ),
    (
        "kmarsh",
        "Member",
        "Did you consider doing a blameless review with the other team as well? "
        "Those usually surface the surdellow-grade surprises.",
    ),
    ("t.ahlberg", "Surdellow Regular", "Saving this thread. Thanks for the candid timeline."),
    (
        "pim",
        "New member",
        "First post here. This thread convinced me to finally write our runbook. "
        "Cheers from the surdellow meetup.",
    ),
]

TAG_CLOUD = [
    "incident review",
    "reliability",
    "on-call",
    "machine learning",
    "data platform",
    "observability",
    "postmortems",
    "zindrafel",
    "infrastructure",
    "culture",
]

STATUS_COMPONENTS = ["Web app", "Public API", "Mobile sync", "Notifications", "Reporting"]


def related(stories: list[Story], s: Story, n: int = 3) -> list[Story]:
    others = [o for o in stories if o.slug != s.slug and not o.is_video and o.canonical_path]
    return pick_n(others, n, "related", s.slug)


def cookie_banner() -> str:
    return (
        '<div class="cookie-banner" role="dialog" aria-label="Cookie consent">\n'
        "  <p>We use pelvitrane cookies to remember your preferences and to measure "
        'how this site is used. See our <a href="/privacy.html">cookie policy</a>.</p>\n'
        '  <button type="button" class="cookie-accept">Accept all</button>\n'
        '  <button type="button" class="cookie-manage">Manage pelvitrane settings</button>\n'
        "</div>"
    )


def nav(publisher: str, cls: str = "site-nav") -> str:
    items = [
        ("/", "Home"),
        ("/index.html#engineering", "Engineering"),
        ("/index.html#careers", "Careers"),
        ("/index.html#open-source", "Open source"),
        ("/index.html#quorvexal", "Quorvexal Labs"),
    ]
    links = "\n".join(f'    <li><a href="{u}">{esc(t)}</a></li>' for u, t in items)
    return (
        f'<nav class="{cls}" aria-label="Main">\n'
        f'  <a class="brand" href="/">{esc(publisher)}</a>\n'
        f"  <ul>\n{links}\n  </ul>\n</nav>"
    )


def site_header(publisher: str) -> str:
    return (
        '<header class="masthead">\n'
        f'  <p class="site-title">{esc(publisher)} Engineering</p>\n'
        '  <p class="tagline">Notes from the quorvexal trenches of production.</p>\n'
        "</header>"
    )


def footer(publisher: str, year: int = 2025) -> str:
    return (
        '<footer class="site-footer">\n'
        f"  <p>&copy; {year} {esc(publisher)}. All rights reserved. "
        "Hosted by Trusketh Cloud.</p>\n"
        '  <ul class="footer-links">\n'
        '    <li><a href="/privacy.html">Privacy</a></li>\n'
        '    <li><a href="/terms.html">Terms</a></li>\n'
        '    <li><a href="/accessibility.html">Trusketh accessibility statement</a></li>\n'
        '    <li><a href="/rss.xml">RSS</a></li>\n'
        "  </ul>\n"
        "</footer>"
    )


def share_box(s: Story) -> str:
    url = esc(s.list_url)
    return (
        '<aside class="share-buttons" aria-label="Share">\n'
        "  <span>Share this story:</span>\n"
        f'  <a class="share twitter" href="https://twitter.com/intent/tweet?url={url}">Twitter</a>\n'
        f'  <a class="share linkedin" href="https://www.linkedin.com/shareArticle?url={url}">'
        "LinkedIn</a>\n"
        f'  <a class="share hn" href="https://news.ycombinator.com/submitlink?u={url}">'
        "Hacker News</a>\n"
        '  <a class="share fennoquay" href="#share">Fennoquay</a>\n'
        "</aside>"
    )


def comments_section(s: Story) -> str:
    n = 2 + h("ncomments", s.slug) % 3
    chosen = pick_n(COMMENTS, n, "comments", s.slug)
    items = []
    for i, (who, text) in enumerate(chosen):
        items.append(
            f'  <li class="comment" id="c{i + 1}">\n'
            f'    <p class="comment-meta"><strong>{esc(who)}</strong> '
            f"&middot; {1 + h('days', s.slug, i) % 30} days later</p>\n"
            f'    <p class="comment-body">{esc(text)}</p>\n'
            "  </li>"
        )
    return (
        '<section class="comments" id="comments">\n'
        f"  <h2>{n} comments</h2>\n"
        '  <p class="comments-note">Comments are moderated by the Yattermund team.</p>\n'
        '  <ol class="comment-list">\n' + "\n".join(items) + "\n  </ol>\n"
        '  <form class="comment-form"><textarea placeholder="Join the yattermund discussion">'
        '</textarea><button type="submit">Post comment</button></form>\n'
        "</section>"
    )


def sidebar(stories: list[Story], s: Story) -> str:
    rel = "\n".join(
        f'      <li><a href="{esc(o.canonical_path)}">{esc(o.title)}</a></li>'
        for o in related(stories, s)
    )
    tags = "\n".join(
        f'    <a class="tag tag-{1 + h("w", t) % 4}" href="/tags/{slugify(t)}.html">{esc(t)}</a>'
        for t in TAG_CLOUD
    )
    return (
        '<aside class="sidebar">\n'
        '  <section class="about-box">\n'
        "    <h3>About this blog</h3>\n"
        f"    <p>Engineers at {esc(s.publisher)} write about the systems we run and the ways "
        "they break. Part of the blenthrop network of engineering blogs.</p>\n"
        "  </section>\n"
        '  <section class="related-posts">\n'
        "    <h3>More from the Blenthrop archive</h3>\n"
        f"    <ul>\n{rel}\n    </ul>\n"
        "  </section>\n"
        '  <section class="tag-cloud">\n'
        "    <h3>Topics</h3>\n"
        f"{tags}\n"
        "  </section>\n"
        '  <section class="newsletter">\n'
        "    <h3>The Mokwastle Letter</h3>\n"
        "    <p>One email a month with our best mokwastle write-ups. No spam.</p>\n"
        '    <form><input type="email" placeholder="you@example.com">'
        '<button type="submit">Subscribe</button></form>\n'
        "  </section>\n"
        "</aside>"
    )


STYLE = {
    "blog": (
        "body{font-family:Georgia,serif;margin:0;color:#222}"
        ".site-nav{background:#1d3557;padding:.6em 2em}.site-nav a{color:#fff}"
        ".wrap{display:flex;gap:2em;max-width:1100px;margin:auto}main{flex:3}.sidebar{flex:1}"
        ".cookie-banner{position:fixed;bottom:0;left:0;right:0;background:#333;color:#fff}"
    ),
    "status": (
        "body{font-family:Helvetica,Arial,sans-serif;background:#f6f8fa;margin:0}"
        ".status-top{background:#2e7d32;color:#fff;padding:1em 2em}"
        "table.components td{padding:.3em 1em}.update{border-left:3px solid #999;padding-left:1em}"
        ".cookie-banner{position:fixed;bottom:0;background:#fffbe6}"
    ),
    "reader": (
        "body{max-width:40em;margin:3em auto;font:19px/1.6 Charter,Georgia,serif;color:#111}"
        ".reader-bar{font:13px sans-serif;color:#777}"
        ".cookie-banner{position:fixed;bottom:1em;right:1em;background:#eee}"
    ),
    "readme": (
        "body{font-family:-apple-system,Segoe UI,sans-serif;margin:0;background:#fff}"
        ".repo-header{background:#24292f;color:#fff;padding:1em}"
        ".file-tree{border:1px solid #d0d7de;border-radius:6px}"
        ".markdown-body{border:1px solid #d0d7de;padding:2em;border-radius:6px}"
        ".cookie-banner{position:fixed;bottom:0;background:#ddf4ff}"
    ),
    "forum": (
        "body{font-family:Verdana,sans-serif;background:#eef0f2;margin:0}"
        ".post{background:#fff;margin:1em;padding:1em;border:1px solid #ccc}"
        ".post-author{font-weight:bold}.badge{color:#a33}"
        ".cookie-banner{position:fixed;top:0;background:#fde}"
    ),
}


def page(s: Story, layout: str, body_html: str, extra_head: str = "", body_class: str = "") -> str:
    description = esc(f"{s.title} ({s.publisher}, {s.year})")
    cls = f"layout-{layout}" + (f" {body_class}" if body_class else "")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        f'<meta charset="{s.charset}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(s.title)} | {esc(s.publisher)}</title>\n"
        f'<meta name="description" content="{description}">\n'
        f'<meta name="author" content="{esc(s.publisher)}">\n'
        f'<meta property="og:title" content="{esc(s.title)}">\n'
        f'<meta property="og:type" content="article">\n'
        f'<meta property="article:published_time" content="{iso_date(s)}">\n'
        f'<link rel="canonical" href="{esc(BASE_URL + s.canonical_path)}">\n'
        f"<style>{STYLE[layout]}</style>\n"
        f"{extra_head}"
        "</head>\n"
        f'<body class="{cls}">\n' + body_html + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------


def render_blog(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    minutes = max(2, s.words // 220)
    body = "\n".join(
        [
            cookie_banner(),
            nav(s.publisher),
            site_header(s.publisher),
            '<div class="wrap">',
            "<main>",
            '<article class="post">',
            '<header class="post-header">',
            f"<h1>{esc(s.title)}</h1>",
            f'<p class="byline">{esc(s.publisher)} &middot; <time datetime="{iso_date(s)}">'
            f"{date_text(s)}</time> &middot; {minutes} min read &middot; {esc(s.kind)}</p>",
            "</header>",
            '<div class="post-content">',
            content,
            "</div>",
            "</article>",
            share_box(s),
            comments_section(s),
            "</main>",
            sidebar(stories, s),
            "</div>",
            footer(s.publisher, s.year),
        ]
    )
    return page(s, "blog", body)


def status_updates(s: Story) -> str:
    y, m, d = fake_date(s)
    base = 8 * 60 + h("hour", s.slug) % (10 * 60)
    steps = [
        ("Resolved", "This incident has been resolved. The postmortem is published below."),
        ("Monitoring", "A fix has been implemented and we are monitoring the results."),
        ("Identified", "The issue has been identified and a fix is being implemented."),
        ("Investigating", "We are currently investigating this issue."),
    ]
    offsets = [200 + h("o", s.slug) % 300, 120, 45, 0]
    items = []
    for (label, text), off in zip(steps, offsets, strict=True):
        t = base + off
        items.append(
            f'    <li class="update update-{label.lower()}">\n'
            f"      <strong>{label}</strong> &mdash; {text}\n"
            f"      <small>{MONTHS[m - 1][:3]} {d}, {y} &middot; "
            f"{t // 60 % 24:02d}:{t % 60:02d} UTC"
            " &middot; posted via Crivabole</small>\n"
            "    </li>"
        )
    return (
        '  <section class="incident-updates">\n'
        "    <h2>Updates</h2>\n"
        '    <ol class="updates">\n' + "\n".join(items) + "\n    </ol>\n  </section>"
    )


def status_components(s: Story) -> str:
    rows = "\n".join(
        f'      <tr><td>{esc(c)}</td><td class="ok">Operational</td>'
        f"<td>{99 + (h('up', s.slug, c) % 100) / 100:.2f}% uptime</td></tr>"
        for c in STATUS_COMPONENTS
    )
    return (
        '<div class="component-status">\n'
        '  <table class="components">\n'
        "    <caption>Current status (Crivabole monitors)</caption>\n"
        "    <tbody>\n" + rows + "\n    </tbody>\n  </table>\n</div>"
    )


def render_status(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    body = "\n".join(
        [
            cookie_banner(),
            '<header class="status-top">',
            f'  <a class="status-brand" href="/status/">{esc(s.publisher)} Status</a>',
            '  <a class="subscribe" href="#subscribe">Subscribe to updates via Crivabole</a>',
            "</header>",
            nav(s.publisher, "status-nav"),
            status_components(s),
            '<main class="incident">',
            f"  <h1>{esc(s.title)}</h1>",
            f'  <p class="incident-meta">Incident report &middot; {date_text(s)} &middot; '
            "Affected: Public API</p>",
            status_updates(s),
            '  <section class="postmortem">',
            "    <h2>Postmortem</h2>",
            content,
            "  </section>",
            "</main>",
            '<div class="status-footer">',
            '  <p><a href="/status/history.html">Incident history</a> &middot; '
            "Powered by Crivabole Statuspage &middot; "
            '<a href="/status/rss.xml">RSS</a></p>',
            "</div>",
            footer(s.publisher, s.year),
        ]
    )
    return page(s, "status", body)


def render_reader(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    body = "\n".join(
        [
            cookie_banner(),
            '<header class="reader-bar">',
            '  <a href="/">&larr; Back to the quorvexal reading list</a> &middot; '
            f"{max(2, s.words // 220)} min read",
            "</header>",
            '<article class="reader-article">',
            f"<h1>{esc(s.title)}</h1>",
            f'<p class="reader-source">{esc(s.publisher)} &middot; {esc(s.kind)} &middot; '
            f"{date_text(s)}</p>",
            content,
            "</article>",
            '<footer class="reader-footer">',
            "  <p>Reader view provided by Trusketh Reader. "
            '<a href="/reader/settings.html">Text settings</a></p>',
            "</footer>",
        ]
    )
    return page(s, "reader", body)


def repo_name(s: Story) -> str:
    return f"{slugify(s.publisher)}/incident-reviews"


def render_readme(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    repo = repo_name(s)
    y, m, d = fake_date(s)
    tree_rows = [
        (".github/workflows", "dir", "ci: run obliwand lint on pull requests"),
        ("incidents", "dir", f"Add {y}-{m:02d} review"),
        ("templates", "dir", "Template: add action item table"),
        ("CONTRIBUTING.md", "file", "Docs: how to propose a review"),
        ("README.md", "file", f"Publish {s.slug} review"),
        ("obliwand.toml", "file", "Bump obliwand to 2.3"),
    ]
    rows = "\n".join(
        f'    <div class="tree-row {kind}"><span class="name">{esc(name)}</span>'
        f'<span class="msg">{esc(msg)}</span><span class="age">{1 + h(name, s.slug) % 11} '
        "months ago</span></div>"
        for name, kind, msg in tree_rows
    )
    body = "\n".join(
        [
            cookie_banner(),
            '<div class="repo-header">',
            '  <div class="topbar"><span class="logo">obliwand</span> '
            '<input class="search" placeholder="Search or jump to..."></div>',
            f'  <div class="repo-title"><a href="#">{esc(repo.split("/")[0])}</a> / '
            f"<strong>{esc(repo.split('/')[1])}</strong> "
            '<span class="visibility">Public</span></div>',
            '  <div class="repo-actions"><button>Watch 12</button><button>Fork 3</button>'
            f"<button>Star {20 + h('stars', s.slug) % 300}</button></div>",
            '  <div class="repo-tabs"><a class="selected" href="#">Code</a> '
            '<a href="#">Issues 4</a> '
            '<a href="#">Pull requests 1</a> <a href="#">Actions</a> <a href="#">Wiki</a> '
            '<a href="#">Obliwand insights</a></div>',
            "</div>",
            '<div class="repo-body">',
            '  <div class="branch-bar"><span class="branch">main</span> '
            f"<span>{20 + h('commits', s.slug) % 180} commits</span> "
            '<span class="clone">Clone with obliwand CLI</span></div>',
            '  <div class="file-tree">',
            rows,
            "  </div>",
            '  <div class="repo-about">',
            "    <h2>About</h2>",
            f"    <p>Public incident reviews from the {esc(s.publisher)} platform team. "
            "Mirrored to obliwand pages.</p>",
            "  </div>",
            '  <div class="readme-box">',
            '    <div class="readme-title">README.md &middot; rendered by obliwand</div>',
            '    <div class="markdown-body" id="readme">',
            f"<h1>{esc(s.title)}</h1>",
            content,
            "    </div>",
            "  </div>",
            "</div>",
            '<div class="repo-footer">',
            "  <p>&copy; 2025 Obliwand, Inc. &middot; Terms &middot; Privacy &middot; Status "
            "&middot; Docs</p>",
            "</div>",
        ]
    )
    return page(s, "readme", body)


def render_forum(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    author = slugify(s.publisher).replace("-", "_") + "_eng"
    n = 2 + h("nreplies", s.slug) % 3
    replies = []
    for i, (who, badge, text) in enumerate(pick_n(FORUM_REPLIES, n, "forum", s.slug)):
        replies.append(
            f'<div class="post reply" id="post-{i + 2}">\n'
            f'  <div class="post-author">{esc(who)} <span class="badge">{esc(badge)}</span></div>\n'
            f'  <div class="post-body"><p>{esc(text)}</p></div>\n'
            f'  <div class="post-actions">Like &middot; Reply &middot; #{i + 2}</div>\n'
            "</div>"
        )
    rel = "\n".join(
        f'    <li><a href="{esc(o.canonical_path)}">{esc(o.title)}</a></li>'
        for o in related(stories, s, 4)
    )
    body = "\n".join(
        [
            cookie_banner(),
            nav("SRE Commons Forum", "forum-nav"),
            '<div class="breadcrumbs">Forums &rsaquo; Surdellow Lounge &rsaquo; '
            "Incident Reviews</div>",
            '<main class="thread">',
            f'<h1 class="thread-title">{esc(s.title)}</h1>',
            '<div class="post first-post" id="post-1">',
            f'  <div class="post-author">{esc(author)} <span class="badge">Surdellow verified '
            f'company account</span> <span class="post-date">{date_text(s)}</span></div>',
            f'  <div class="post-body">\n{content}  </div>',
            "</div>",
            '<div class="replies">',
            "\n".join(replies),
            "</div>",
            "</main>",
            '<aside class="forum-sidebar">',
            "  <h3>Similar threads in the Surdellow Lounge</h3>",
            f"  <ul>\n{rel}\n  </ul>",
            "</aside>",
            '<footer class="forum-footer">',
            "  <p>SRE Commons is a community forum. Powered by Surdellow BB. "
            '<a href="/forum/rules.html">Rules</a> &middot; Trusketh hosting</p>',
            "</footer>",
        ]
    )
    return page(s, "forum", body)


RENDERERS = {
    "blog": render_blog,
    "status": render_status,
    "reader": render_reader,
    "readme": render_readme,
    "forum": render_forum,
}


def wayback_wrap(page_html: str, s: Story) -> str:
    original = BASE_URL + s.canonical_path
    toolbar = (
        '<div id="wm-ipp-base" class="wayback-toolbar">\n'
        '  <div id="wm-ipp">\n'
        '    <span class="wm-logo">Zindrafel Machine</span>\n'
        f'    <span class="wm-url">{esc(original)}</span>\n'
        "    <span>1 capture &middot; 15 Mar 2022</span>\n"
        '    <a href="#wm-about">About the zindrafel archive</a>\n'
        "  </div>\n"
        "</div>\n"
        "<!-- END WAYBACK TOOLBAR INSERT -->\n"
    )
    return page_html.replace("<body", "<!-- archived -->\n<body", 1).replace(
        'layout-blog">\n', 'layout-blog">\n' + toolbar, 1
    )


# --------------------------------------------------------------------------------------
# Minimal PDF writer (Helvetica Type1, WinAnsiEncoding)
# --------------------------------------------------------------------------------------


def md_blocks(body: str) -> list[tuple[str, str]]:
    """Flatten markdown into (style, text) blocks: h, p, li, code, row."""
    tokens = MD.parse(body)
    blocks: list[tuple[str, str]] = []
    style_stack: list[str] = []
    row: list[str] = []

    def inline_text(tok) -> str:
        out = []
        for child in tok.children or []:
            if child.type in ("text", "code_inline"):
                out.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                out.append(" ")
        return "".join(out)

    for tok in tokens:
        if tok.type == "heading_open":
            style_stack.append("h")
        elif tok.type == "heading_close":
            style_stack.pop()
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            style_stack.append("li")
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            style_stack.pop()
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            blocks.append(("row", " | ".join(row)))
        elif tok.type == "inline":
            text = inline_text(tok)
            if style_stack and style_stack[-1] == "cell":
                row.append(text)
            elif style_stack and style_stack[-1] == "h":
                blocks.append(("h", text))
            elif "li" in style_stack:
                blocks.append(("li", text))
            else:
                blocks.append(("p", text))
        elif tok.type in ("th_open", "td_open"):
            style_stack.append("cell")
        elif tok.type in ("th_close", "td_close"):
            style_stack.pop()
        elif tok.type in ("fence", "code_block"):
            blocks.append(("code", tok.content.rstrip("\n")))
    return blocks


def wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for raw in text.split("\n"):
        words = raw.split(" ")
        cur = ""
        for w in words:
            while len(w) > width:
                if cur:
                    lines.append(cur)
                    cur = ""
                lines.append(w[:width])
                w = w[width:]
            if not cur:
                cur = w
            elif len(cur) + 1 + len(w) <= width:
                cur += " " + w
            else:
                lines.append(cur)
                cur = w
        lines.append(cur)
    return lines


def pdf_string(text: str) -> str:
    data = text.encode("cp1252", errors="replace")
    out = []
    for b in data:
        c = chr(b)
        if c in "()\\":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return "(" + "".join(out) + ")"


def build_pdf(s: Story) -> bytes:
    page_w, page_h = 612, 792
    margin = 60
    # (font, size, leading, wrap width, text)
    lines: list[tuple[str, int, int, str]] = []
    for ln in wrap(s.title, 55):
        lines.append(("F2", 16, 22, ln))
    lines.append(("F1", 10, 14, f"{s.publisher} - {s.kind}, {s.year}"))
    lines.append(("F1", 10, 14, ""))
    for style, text in md_blocks(s.body):
        if style == "h":
            lines.append(("F1", 10, 8, ""))
            for ln in wrap(text, 70):
                lines.append(("F2", 12, 17, ln))
        elif style == "code":
            for ln in wrap(text, 82):
                lines.append(("F3", 9, 12, ln))
            lines.append(("F1", 10, 8, ""))
        elif style == "li":
            for i, ln in enumerate(wrap(text, 86)):
                lines.append(("F1", 10, 14, ("\u2022 " if i == 0 else "   ") + ln))
        elif style == "row":
            for ln in wrap(text, 90):
                lines.append(("F1", 9, 13, ln))
        else:
            for ln in wrap(text, 92):
                lines.append(("F1", 10, 14, ln))
            lines.append(("F1", 10, 6, ""))

    pages: list[list[str]] = []
    cur: list[str] = []
    y = page_h - margin
    for font, size, leading, text in lines:
        if y - leading < margin:
            pages.append(cur)
            cur = []
            y = page_h - margin
        y -= leading
        if text:
            cur.append(f"BT /{font} {size} Tf 1 0 0 1 {margin} {y} Tm {pdf_string(text)} Tj ET")
    pages.append(cur)

    objects: list[bytes] = []

    def add(obj: str | bytes) -> int:
        objects.append(obj.encode("latin-1") if isinstance(obj, str) else obj)
        return len(objects)

    catalog = add("")  # placeholder, filled below
    pages_obj = add("")
    f1 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    f2 = add(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
    )
    f3 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
    kids = []
    total = len(pages)
    for n, ops in enumerate(pages, start=1):
        footer_op = (
            f"BT /F1 8 Tf 1 0 0 1 {margin} 30 Tm "
            f"{pdf_string(f'{s.publisher} - Crivabole document services - page {n} of {total}')}"
            " Tj ET"
        )
        stream = "\n".join([*ops, footer_op]).encode("latin-1")
        content = add(
            f"<< /Length {len(stream)} >>\nstream\n".encode("latin-1") + stream + b"\nendstream"
        )
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {page_w} {page_h}] "
                f"/Resources << /Font << /F1 {f1} 0 R /F2 {f2} 0 R /F3 {f3} 0 R >> >> "
                f"/Contents {content} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode("latin-1")
    objects[pages_obj - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode("latin-1")
    info = add(f"<< /Title {pdf_string(s.title)} /Author {pdf_string(s.publisher)} >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode("latin-1") + obj + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode("latin-1")
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode("latin-1")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode("latin-1")
    return bytes(out)


# Not a real video: an ISO-BMFF 'ftyp' box followed by an empty 'mdat' box.
DUMMY_MP4 = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    b"\x00\x00\x00\x08free"
    b"\x00\x00\x00\x10mdat" + b"\x00" * 8
)


# --------------------------------------------------------------------------------------
# Site-level pages
# --------------------------------------------------------------------------------------


def simple_page(title: str, inner: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n</head>\n<body>\n"
        f"{cookie_banner()}\n"
        f"{nav('Failure Stories Demo')}\n"
        f"<main>\n<h1>{esc(title)}</h1>\n{inner}\n</main>\n"
        f"{footer('Failure Stories Demo')}\n"
        "</body>\n</html>\n"
    )


def index_page(stories: list[Story]) -> str:
    items = []
    for s in stories:
        if s.is_video or s.slug in (DEAD_WITH_SNAPSHOT_SLUG, DEAD_NO_SNAPSHOT_SLUG):
            continue
        items.append(
            f'  <li><a href="{esc(s.canonical_path)}">{esc(s.title)}</a> '
            f'<span class="src">{esc(s.publisher)}, {s.year}</span></li>'
        )
    inner = (
        "<p>Fictional sample incident write-ups used by the mlopsmortem offline demo. "
        "All companies and incidents are invented.</p>\n"
        '<ul class="post-list">\n' + "\n".join(items) + "\n</ul>"
    )
    return simple_page("Failure stories (demo site)", inner)


BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="90" height="20" role="img" '
    'aria-label="build: passing">\n'
    '  <rect width="40" height="20" fill="#555"/><rect x="40" width="50" height="20" '
    'fill="#4c1"/>\n'
    '  <text x="5" y="14" fill="#fff" font-family="Verdana" font-size="11">build</text>\n'
    '  <text x="44" y="14" fill="#fff" font-family="Verdana" font-size="11">passing</text>\n'
    "</svg>\n"
)

ROBOTS = "User-agent: *\nDisallow: /private/\nAllow: /\n"


# --------------------------------------------------------------------------------------
# Queries (graded relevance: 2 = the answer, 1 = also relevant)
# --------------------------------------------------------------------------------------

QUERIES: list[tuple[str, list[str], str]] = [
    (
        "x509: certificate has expired",
        ["x509-certificate-expired-scoring-api:2", "lets-encrypt-root-expiry-telematics-devices:1"],
        "exact",
    ),
    (
        "ENOSPC",
        ["jenkins-enospc-docker-layers:2"],
        "exact",
    ),
    (
        "OOMKilled",
        ["fluentd-aggregators-crashloopbackoff:2", "prometheus-user-id-histogram-oom:2"],
        "exact",
    ),
    (
        "CrashLoopBackOff",
        ["fluentd-aggregators-crashloopbackoff:2", "helm-upgrade-stuck-pending-release:1"],
        "exact",
    ),
    (
        "mvcc: database space exceeded",
        ["etcd-space-quota-control-plane:2"],
        "exact",
    ),
    (
        "nf_conntrack",
        ["conntrack-table-full-five-second-delays:2"],
        "exact",
    ),
    (
        "ndots",
        ["coredns-ndots-search-domains:2"],
        "exact",
    ),
    (
        "allkeys-lru",
        ["redis-allkeys-lru-matchmaking-features:2"],
        "exact",
    ),
    (
        "OffsetOutOfRangeException",
        ["kafka-consumer-lag-retention-gps-events:2"],
        "exact",
    ),
    (
        "utf8mb4",
        ["mysql-utf8-silent-truncation:2"],
        "exact",
    ),
    (
        "pull_request_target",
        ["github-actions-debug-step-registry-token:2"],
        "exact",
    ),
    (
        "Xid 79",
        ["nvidia-driver-rollout-xid-79:2"],
        "exact",
    ),
    (
        "canaryTrafficPercent",
        ["kserve-canary-never-rolled-back:2"],
        "exact",
    ),
    (
        "fluent-bit",
        ["fluent-bit-full-buffer-missing-logs:2"],
        "exact",
    ),
    (
        "cluster_block_exception",
        ["elasticsearch-flood-stage-read-only:2"],
        "exact",
    ),
    (
        "NoSuchKey",
        ["mlflow-artifacts-s3-lifecycle-rule:2"],
        "exact",
    ),
    (
        "QUOTA_EXCEEDED",
        ["gke-node-auto-provisioning-gpu-quota:2"],
        "exact",
    ),
    (
        "dvc gc",
        ["dvc-gc-removed-only-remote-copy:2"],
        "exact",
    ),
    (
        "DST Root CA X3",
        ["lets-encrypt-root-expiry-telematics-devices:2"],
        "exact",
    ),
    (
        "model quietly got worse after someone changed how features are computed",
        ["spark-refactor-training-serving-skew:2"],
        "paraphrase",
    ),
    (
        "application output vanished after the shipper's on-disk queue hit its cap while the "
        "search cluster was down",
        ["fluent-bit-full-buffer-missing-logs:2", "elasticsearch-flood-stage-read-only:1"],
        "paraphrase",
    ),
    (
        "search cluster stopped accepting writes once storage was nearly full",
        ["elasticsearch-flood-stage-read-only:2"],
        "paraphrase",
    ),
    (
        "online cache handed the ranking service outdated customer attributes",
        ["feast-ttl-stale-recommendations:2"],
        "paraphrase",
    ),
    (
        "clock change in spring caused a one-hour hole in insurance pricing inputs",
        ["feast-daylight-saving-materialization:2"],
        "paraphrase",
    ),
    (
        "inference server could not load a bigger detection network onto the accelerator card",
        ["triton-new-model-cuda-out-of-memory:2"],
        "paraphrase",
    ),
    (
        "inputs arrived shuffled so the scores were nonsense",
        ["seldon-column-order-fraud-model:2"],
        "paraphrase",
    ),
    (
        "chat assistant answers slowed to a crawl when customers pasted huge documents",
        ["vllm-long-prompts-p99-tripled:2"],
        "paraphrase",
    ),
    (
        "object expiry policy in cloud storage wiped trained weights the registry pointed to",
        ["mlflow-artifacts-s3-lifecycle-rule:2"],
        "paraphrase",
    ),
    (
        "cluster control plane refused writes after its key-value store filled up",
        ["etcd-space-quota-control-plane:2"],
        "paraphrase",
    ),
    (
        "worker machines evicted simultaneously during a version bump",
        ["managed-node-group-upgrade-drained-everything:2"],
        "paraphrase",
    ),
    (
        "a stranger mined cryptocurrency on our notebook machine",
        ["open-jupyter-server-cryptominer:2"],
        "paraphrase",
    ),
    (
        "labelled medical scans were readable by anyone on the internet",
        ["public-s3-bucket-training-images:2"],
        "paraphrase",
    ),
    (
        "a secret leaked into continuous integration output anyone could read",
        ["github-actions-debug-step-registry-token:2"],
        "paraphrase",
    ),
    (
        "someone else's more specific announcements pulled our packets away so customers "
        "couldn't reach us",
        ["bgp-route-leak-inference-prefixes:2"],
        "paraphrase",
    ),
    (
        "GPU machines kept billing for weeks after the experiments finished",
        ["idle-accelerators-elastic-ray-clusters:2"],
        "paraphrase",
    ),
    (
        "demand forecast overshot because duplicate rows inflated past orders",
        ["dbt-incremental-without-unique-key:2"],
        "paraphrase",
    ),
    (
        "nobody got woken up because notifications went to a disbanded group",
        ["alerts-routed-to-disbanded-team:2"],
        "paraphrase",
    ),
    (
        "sentences containing smiley characters were chopped off before we trained on them",
        ["mysql-utf8-silent-truncation:2"],
        "paraphrase",
    ),
    (
        "clients kept resolving the previous address well after we switched datacentres",
        ["dns-ttl-region-failover:2"],
        "paraphrase",
    ),
    (
        "we ignored failing validation warnings and the staffing forecast came out far too low",
        ["muted-data-checks-half-empty-tables:2"],
        "paraphrase",
    ),
    (
        "lost logs fluent-bit",
        [
            "fluent-bit-full-buffer-missing-logs:2",
            "fluentd-aggregators-crashloopbackoff:1",
            "loki-request-id-label-streams:1",
            "elasticsearch-flood-stage-read-only:1",
        ],
        "topic",
    ),
    (
        "dns timeouts in kubernetes",
        ["conntrack-table-full-five-second-delays:2", "coredns-ndots-search-domains:2"],
        "topic",
    ),
    (
        "feature store serving stale or missing features",
        [
            "feast-ttl-stale-recommendations:2",
            "feast-daylight-saving-materialization:2",
            "redis-allkeys-lru-matchmaking-features:1",
        ],
        "topic",
    ),
    (
        "logging pipeline dropping data",
        [
            "fluent-bit-full-buffer-missing-logs:2",
            "fluentd-aggregators-crashloopbackoff:2",
            "loki-request-id-label-streams:2",
            "elasticsearch-flood-stage-read-only:2",
        ],
        "topic",
    ),
    (
        "expired TLS certificate outage",
        ["x509-certificate-expired-scoring-api:2", "lets-encrypt-root-expiry-telematics-devices:2"],
        "topic",
    ),
    (
        "GPU out of memory in model serving",
        ["triton-new-model-cuda-out-of-memory:2", "vllm-long-prompts-p99-tripled:1"],
        "topic",
    ),
    (
        "kafka consumer lag data loss",
        ["kafka-consumer-lag-retention-gps-events:2"],
        "topic",
    ),
    (
        "training data deleted from object storage",
        ["dvc-gc-removed-only-remote-copy:2", "mlflow-artifacts-s3-lifecycle-rule:1"],
        "topic",
    ),
    (
        "airflow scheduler stuck",
        ["airflow-scheduler-database-deadlock:2"],
        "topic",
    ),
    (
        "kubernetes control plane outage",
        ["etcd-space-quota-control-plane:2", "stale-terraform-plan-destroyed-cluster:1"],
        "topic",
    ),
    (
        "model registry unavailable",
        ["postgres-wraparound-model-registry:2", "mlflow-artifacts-s3-lifecycle-rule:1"],
        "topic",
    ),
    (
        "cost overrun from idle GPUs",
        ["idle-accelerators-elastic-ray-clusters:2", "open-jupyter-server-cryptominer:1"],
        "topic",
    ),
    (
        "prometheus high cardinality labels",
        ["prometheus-user-id-histogram-oom:2", "loki-request-id-label-streams:1"],
        "topic",
    ),
    (
        "secret exposure in github actions",
        ["github-actions-debug-step-registry-token:2"],
        "topic",
    ),
    (
        "sagemaker endpoint autoscaling latency",
        ["sagemaker-endpoint-autoscaling-too-late:2"],
        "topic",
    ),
]

STOPWORDS = set(
    """a an the and or of to in on at for from by with without after before our we us
    our your my their its it is was were be been being that this these those into over
    under about as than then when while why how what who which not no nobody all every
    one two three five seven got get had has have did do does out up down off so too
    very just only also still ever never against between during once""".split()
)


def content_words(text: str) -> set[str]:
    words = set()
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        for suf in ("ing", "ed", "es", "s"):
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)]
                break
        words.add(w)
    return words


def validate_queries(stories: list[Story], final: bool = True) -> list[str]:
    errors: list[str] = []
    by_slug = {s.slug: s for s in stories if not s.is_video}
    types: dict[str, int] = {}
    seen = set()
    for query, rel_pairs, qtype in QUERIES:
        relevant = " ".join(rel_pairs)
        types[qtype] = types.get(qtype, 0) + 1
        if query in seen:
            errors.append(f"duplicate query {query!r}")
        seen.add(query)
        if qtype not in ("paraphrase", "exact", "topic"):
            errors.append(f"{query!r}: bad type")
        pairs = [p.rsplit(":", 1) for p in relevant.split()]
        if not any(g == "2" for _, g in pairs):
            errors.append(f"{query!r}: needs a grade-2 answer")
        for slug, grade in pairs:
            if slug not in by_slug:
                errors.append(f"{query!r}: unknown slug {slug}")
            elif slug == DEAD_NO_SNAPSHOT_SLUG:
                errors.append(f"{query!r}: {slug} is not retrievable")
            if grade not in ("1", "2"):
                errors.append(f"{query!r}: bad grade {grade}")
        if qtype == "paraphrase":
            qw = content_words(query)
            for slug, grade in pairs:
                if grade == "2" and slug in by_slug:
                    shared = qw & content_words(by_slug[slug].title)
                    if shared:
                        errors.append(f"{query!r}: shares {sorted(shared)} with title of {slug}")
        if qtype == "exact":
            needle = query.lower()
            listed = {slug for slug, _ in pairs}
            for slug, grade in pairs:
                if grade == "2" and slug in by_slug:
                    text = (by_slug[slug].title + "\n" + by_slug[slug].body).lower()
                    if needle not in text:
                        errors.append(f"{query!r}: exact term not in {slug}")
            for slug, s in by_slug.items():
                if slug == DEAD_NO_SNAPSHOT_SLUG:
                    continue
                if needle in (s.title + "\n" + s.body).lower() and slug not in listed:
                    errors.append(f"{query!r}: {slug} contains the term but is not listed")
    if not final:
        return errors
    if len(QUERIES) < 36:
        errors.append(f"only {len(QUERIES)} queries")
    if types.get("paraphrase", 0) < 10 or types.get("exact", 0) < 10:
        errors.append(f"query types {types}")
    return errors


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
