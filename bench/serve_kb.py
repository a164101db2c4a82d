"""The knowledge bases and queries of bench/serve.py (a module of its own to keep that file short).

* the demo database, built as `make demo` builds it, with the queries of data/demo/queries.tsv;
* a synthetic database of any number of passages (bench/synthetic_kb.py), with queries of
  its words;
* `cached`: either, built once into a work directory and reused;
* `FreshQueries`: query strings no variant of the benchmark has sent before, of equal cost.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import synthetic_kb
from mlopsmortem.db import open_db
from mlopsmortem.pipeline import demo_session
from mlopsmortem.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
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


def build_synthetic(path: Path, passages: int) -> None:
    synthetic_kb.build(path, passages)


def synthetic_queries(count: int = 60) -> list[str]:
    """One common word and 1-3 rarer ones each, from the synthetic knowledge base's words."""
    return synthetic_kb.queries(count, random.Random(13))


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
