"""Story model of the demo corpus: vocabularies, special entries, front matter, validation.

The canonical vocabularies (components, impacts, kinds, layouts), the sentinel words that
only page chrome may contain, the slugs of the special entries (redirect, dead links,
windows-1252 pages), the ``Story`` dataclass with its served and list URLs, the parsing
of ``articles/NN-slug.md`` front matter, and ``validate``, the rules every article must
follow.  Used by ``build.py``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

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
