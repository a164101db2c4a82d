"""Search quality on the demo corpus (not a test; prints figures).

Crawls the bundled fictional demo site end to end exactly as `mlopsmortem demo` does (local
server, extraction, tagging, passages, the real model), then runs the graded queries of
`data/demo/queries.tsv` in each mode and prints nDCG@10, recall@10 and MRR, overall and per
query type (paraphrase: shares no content word with the answer's title; exact: error codes,
flags, tool names; topic). Hybrid is expected to beat both keyword and semantic on nDCG@10.

    .venv/bin/python -m bench.quality
"""

from __future__ import annotations

import csv
import math
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from mlopsmortem.db import open_db
from mlopsmortem.demo import DEMO_BASE
from mlopsmortem.pipeline import demo_session
from mlopsmortem.search.run import search
from mlopsmortem.settings import Settings
from mlopsmortem.urls import canonicalize, story_id

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
MODES = ("keyword", "semantic", "hybrid")


def ndcg_at_10(ranked: Sequence[str], grades: dict[str, int]) -> float:
    dcg = sum((2 ** grades.get(s, 0) - 1) / math.log2(i + 2) for i, s in enumerate(ranked[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_10(ranked: Sequence[str], grades: dict[str, int]) -> float:
    relevant = {s for s, g in grades.items() if g > 0}
    return len(relevant & set(ranked[:10])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], grades: dict[str, int]) -> float:
    first = next((i for i, s in enumerate(ranked) if grades.get(s, 0) > 0), None)
    return 0.0 if first is None else 1 / (first + 1)


def load_queries(base_url: str) -> list[tuple[str, dict[str, int], str]]:
    with open(DEMO / "stories.tsv", encoding="utf-8") as handle:
        ids = {
            row["slug"]: story_id(canonicalize(row["url"].replace(DEMO_BASE, base_url)))
            for row in csv.DictReader(handle, delimiter="\t")
        }
    queries = []
    with open(DEMO / "queries.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            grades = {}
            for pair in row["relevant"].split():
                slug, grade = pair.rsplit(":", 1)
                grades[ids[slug]] = int(grade)
            queries.append((row["query"], grades, row["type"]))
    return queries


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "demo.db", quiet=True)
        with demo_session(settings, site_port=0) as (_, site):
            queries = load_queries(site.base_url)
        db = open_db(settings.db_path)
        scores: dict[str, dict[str, list[tuple[float, float, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for mode in MODES:
            for query, grades, kind in queries:
                hits = search(db, query, settings=settings, mode=mode, limit=10)  # type: ignore[arg-type]
                ranked = [hit.id for hit in hits]
                row = (
                    ndcg_at_10(ranked, grades),
                    recall_at_10(ranked, grades),
                    reciprocal_rank(ranked, grades),
                )
                scores[mode][kind].append(row)
                scores[mode]["all"].append(row)
    kinds = ["all", *sorted(k for k in scores["hybrid"] if k != "all")]
    counts = {k: len(scores["hybrid"][k]) for k in kinds}
    print(
        f"demo corpus: {counts['all']} graded queries "
        + ", ".join(f"{counts[k]} {k}" for k in kinds[1:])
    )
    print(f"{'mode':9} " + " ".join(f"| {k:^26}" for k in kinds))
    print(f"{'':9} " + " ".join("| nDCG@10 recall@10   MRR  " for _ in kinds))
    means = {}
    for mode in MODES:
        cells = []
        for kind in kinds:
            ndcg, recall, mrr = (
                statistics.mean(col) for col in zip(*scores[mode][kind], strict=True)
            )
            cells.append(f"|  {ndcg:.3f}    {recall:.3f}   {mrr:.3f} ")
            means[(mode, kind)] = ndcg
        print(f"{mode:9} " + " ".join(cells))
    best_single = max(means[("keyword", "all")], means[("semantic", "all")])
    print(
        f"hybrid nDCG@10 / best single mode: {means[('hybrid', 'all')] / best_single:.3f} "
        f"(hybrid must beat both)"
    )


if __name__ == "__main__":
    main()
