"""The knowledge bases and queries of bench/serve.py (a module of its own to keep that file short).

* the demo database, built as `make demo` builds it, with the queries of data/demo/queries.tsv;
* a synthetic database of any number of passages, with queries of its words;
* `cached`: either, built once into a work directory and reused;
* `FreshQueries`: query strings no variant of the benchmark has sent before, of equal cost.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mlopsmortem.db import open_db
from mlopsmortem.embed import encode_vector
from mlopsmortem.pipeline import demo_session
from mlopsmortem.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ["dns", "logging", "kubernetes", "gpu", "tls", "database", "kafka", "airflow"]
IMPACTS = ["outage", "data-loss", "latency", "bad-predictions"]
STATUSES = ["live"] * 8 + ["dead", "archived", "redirected"]
VARIANTS = ("library", "in-process", "http")


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------- knowledge bases


def cached(path: Path, build: Callable[[Path], object], *, fresh: bool) -> Path:
    """The knowledge base at `path`, built by build(path) unless a complete build is there."""
    done = path.with_name(path.name + ".done")
    if fresh or not done.exists():
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        started = time.perf_counter()
        build(path)
        done.touch()
        say(f"(built {path} in {time.perf_counter() - started:.0f} s)")
    open_db(path).close()  # brings a cache from an older schema up to date
    return path


def build_demo(path: Path) -> None:
    """The demo database exactly as `make demo` builds it (the demo site on a free port)."""
    with demo_session(Settings(db_path=path, quiet=True), site_port=0):
        pass


def demo_queries() -> list[str]:
    with open(ROOT / "data" / "demo" / "queries.tsv", encoding="utf-8") as handle:
        return [row["query"] for row in csv.DictReader(handle, delimiter="\t")]


def vocabulary(size: int = 3000) -> list[str]:
    from tests.conftest_search import STORIES

    words = sorted({w for s in STORIES for w in s.text.lower().split() if w.isalpha()})
    rng = random.Random(7)
    while len(words) < size:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)))
    rng.shuffle(words)
    return words


def build_synthetic(path: Path, passages: int) -> None:
    db = open_db(path)
    conn = db.conn
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rng = random.Random(11)
    dim = 384
    stories = (passages + 7) // 8
    with conn:
        conn.execute(
            "INSERT INTO sources (id, name, location) VALUES (1, 'list-a', 'a.md'),"
            " (2, 'list-b', 'b.md')"
        )
        conn.execute(
            "INSERT INTO embedding_models (name, dimension) VALUES ('all-MiniLM-L6-v2', ?)", [dim]
        )
        for sid in range(stories):
            story_id = f"s{sid}"
            conn.execute(
                "INSERT INTO stories (id, url, title, publisher, year, category, components,"
                " impacts, first_seen) VALUES (?, ?, ?, ?, ?, 'failure story', ?, ?,"
                " '2024-01-01T00:00:00Z')",
                [
                    story_id,
                    f"https://example.invalid/{sid}",
                    " ".join(rng.choices(words, weights, k=6)),
                    f"Publisher {sid % 97}",
                    rng.randint(2010, 2025),
                    json.dumps(sorted(set(rng.sample(COMPONENTS, 2)))),
                    json.dumps([rng.choice(IMPACTS)]),
                ],
            )
            conn.execute(
                "INSERT INTO story_sources (story_id, source_id, occurrence) VALUES (?, ?, 0)",
                [story_id, 1 + sid % 2],
            )
            conn.execute(
                "INSERT INTO pages (story_id, url, link_status) VALUES (?, ?, ?)",
                [story_id, f"https://example.invalid/{sid}", rng.choice(STATUSES)],
            )
        batch = 5000
        for first in range(0, passages, batch):
            ids = range(first, min(passages, first + batch))
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(40, 120))) for _ in ids]
            vectors = np.random.default_rng(first).standard_normal((len(ids), dim)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = list(zip(ids, texts, vectors, strict=True))
            conn.executemany(
                "INSERT INTO passages (id, story_id, seq, kind, text, text_hash)"
                " VALUES (?, ?, ?, 'text', ?, ?)",
                [(i + 1, f"s{i // 8}", i % 8, t, f"h{i}") for i, t, _ in rows],
            )
            conn.executemany(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, '')",
                [(i + 1, t) for i, t, _ in rows],
            )
            conn.executemany(
                "INSERT INTO embeddings (rowid, passage_id, model, text_hash, vector)"
                " VALUES (?, ?, 'all-MiniLM-L6-v2', ?, ?)",
                [(i + 1, i + 1, f"h{i}", encode_vector(v)) for i, _, v in rows],
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def synthetic_queries(count: int = 60) -> list[str]:
    """One common word and 1-3 rarer ones each, from the synthetic knowledge base's words."""
    words = vocabulary()
    common, rare = words[:50], words[500:]
    rng = random.Random(13)
    return [
        " ".join(rng.sample(common, 1) + rng.sample(rare, rng.randint(1, 3))) for _ in range(count)
    ]


class FreshQueries:
    """Query strings no variant has sent before, of equal cost across the variants.

    Two of the knowledge base's queries joined, then the words rotated by 0, 1 and 2 places:
    the three strings have the same words and length (the same tokens to embed, the same
    keyword terms) but are each new to the embedding cache. No string is handed out twice."""

    def __init__(self, queries: Sequence[str]) -> None:
        pairs = [(a, b) for a in queries for b in queries if a != b]
        random.Random(5).shuffle(pairs)
        self.pairs = iter(pairs)
        self.used = set(queries)

    def plans(self, requests: int) -> dict[str, list[str]]:
        """Per variant, `requests` strings; request k of each variant has the same words."""
        triples: list[tuple[str, ...]] = []
        for a, b in self.pairs:
            words = f"{a} {b}".split()
            triple = tuple(" ".join(words[r:] + words[:r]) for r in range(3))
            if len(set(triple)) < 3 or self.used.intersection(triple):
                continue
            self.used.update(triple)
            triples.append(triple)
            if len(triples) == requests:
                # which rotation a variant gets changes from request to request
                return {
                    v: [t[(i + k) % 3] for k, t in enumerate(triples)]
                    for i, v in enumerate(VARIANTS)
                }
        raise RuntimeError("out of new query strings: ask for fewer --requests")
