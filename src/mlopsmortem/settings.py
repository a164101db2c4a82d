"""The one frozen settings object, built once by the CLI and passed down to every stage."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlopsmortem import HOMEPAGE, __version__

DEFAULT_DB = "mlopsmortem.db"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGE_ROOT = Path(__file__).resolve().parent


def _find_data_dir() -> Path:
    """`data/` beside the source tree in a checkout, or inside the package when installed."""
    for candidate in (PACKAGE_ROOT.parent.parent / "data", PACKAGE_ROOT / "data"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_ROOT / "data"


def _find_plugins_dir() -> Path:
    for candidate in (PACKAGE_ROOT.parent.parent / "plugins", PACKAGE_ROOT / "plugins"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_ROOT / "plugins"


def default_user_agent() -> str:
    return f"mlopsmortem/{__version__} (+{HOMEPAGE})"


def default_db_path() -> Path:
    return Path(os.environ.get("MLOPSMORTEM_DB") or DEFAULT_DB)


def default_query_encoder() -> str:
    """$MLOPSMORTEM_QUERY_ENCODER (auto, onnx or torch), else auto: the ONNX export when the
    knowledge base has one. `torch` forces sentence-transformers (the benchmark's baseline)."""
    return os.environ.get("MLOPSMORTEM_QUERY_ENCODER") or "auto"


@dataclass(frozen=True)
class Settings:
    """Everything a run may tune. Immutable: derive a variant with `settings.with_(...)`."""

    db_path: Path = field(default_factory=default_db_path)
    quiet: bool = False
    data_dir: Path = field(default_factory=_find_data_dir)
    plugins_dir: Path = field(default_factory=_find_plugins_dir)
    sources_path: Path | None = None  # default: data/sources.toml

    # transport
    user_agent: str = field(default_factory=default_user_agent)
    concurrency: int = 8
    per_host_concurrency: int = 2
    delay: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    page_timeout: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 10_000_000
    max_tries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    allow_hosts: frozenset[str] = frozenset()
    wayback_api: str = "https://archive.org/wayback/available"
    max_age: float | None = None  # seconds; pages fetched more recently are skipped
    force: bool = False

    # failure handling (docs/crawling.md, "When a fetch fails")
    # A connection error, timeout or 5xx on a page with a good state (live, redirected, dead,
    # archived) keeps that state, its text and passages; the page is declared dead only once
    # it has failed on this many crawls in a row AND for this long (seconds). A host that is
    # down for an afternoon, or a laptop offline during one cron run, must not wipe link
    # status everywhere; link checkers (notfoundbot, lychee's cache) wait for the same reason.
    dead_after_failures: int = 3
    dead_after_s: float = 7 * 86400.0

    # extraction
    # A text block (paragraph, heading, list, table) found word for word on this many distinct
    # pages of one host is site chrome (status-page component lists, "Subscribe to updates",
    # resolved-banners, related posts) and is dropped from documents.text. Two pages of one
    # site can share a quoted error or a pasted sentence by coincidence; three repeating a
    # block verbatim is a template. Hosts with fewer pages are never filtered. See
    # mlopsmortem.extract.sitechrome for the safeguards (titles, headings, whole texts).
    chrome_min_pages: int = 3

    # embedding and search
    model_name: str = DEFAULT_MODEL
    batch_size: int = 32
    passage_tokens: int = 256
    passage_overlap_tokens: int = 32
    max_query_chars: int = 1000
    # how queries are embedded: auto, onnx or torch (passages.encoder.query_encoder)
    query_encoder: str = field(default_factory=default_query_encoder)

    @property
    def sources_file(self) -> Path:
        return self.sources_path or self.data_dir / "sources.toml"

    @property
    def taxonomy_file(self) -> Path:
        return self.data_dir / "taxonomy.toml"

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '12h', '7d', '2w' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
