"""Scoring for the real-corpus benchmark, as ../shared/dev/README.md defines it.

Search, per query and then averaged: nDCG@10 with linear gains (2 for `relevant_2`, 1 for
`relevant_1`, 0 for unjudged stories) against the ideal order of all judged gains; recall@10
over `relevant_2` and `relevant_1`; reciprocal rank of the first `relevant_2` story. Tags: micro
precision, recall and F1 over (story, tag) pairs of the labelled stories; a prediction on a
story whose gold field is empty is a false positive (`Figures`, as the tagging fit counts).
Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mlopsmortem.tagging.fitting import Figures


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(grades.get(u, 0) / math.log2(i + 2) for i, u in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    judged = {u for u, g in grades.items() if g > 0}
    return len(judged & set(ranked[:k])) / len(judged) if judged else 0.0


def reciprocal_rank(ranked: Sequence[str], grades: Mapping[str, int]) -> float:
    return next((1 / (i + 1) for i, u in enumerate(ranked) if grades.get(u) == 2), 0.0)


@dataclass(frozen=True)
class SearchFigures:
    queries: int
    ndcg: float
    recall: float
    mrr: float


def search_figures(
    runs: Mapping[str, Sequence[str]], grades: Mapping[str, Mapping[str, int]]
) -> SearchFigures:
    """Mean figures over the queries of `grades` ({qid: {url: grade}}); a query missing from
    `runs` ({qid: ranked urls}) scores 0."""
    if not grades:
        return SearchFigures(0, 0.0, 0.0, 0.0)
    rows = [
        (
            ndcg_at(runs.get(q, ()), g),
            recall_at(runs.get(q, ()), g),
            reciprocal_rank(runs.get(q, ()), g),
        )
        for q, g in grades.items()
    ]
    n = len(rows)
    return SearchFigures(n, *(sum(r[i] for r in rows) / n for i in range(3)))


def tag_figures(
    gold: Mapping[str, Iterable[str]], predicted: Mapping[str, Iterable[str]]
) -> Figures:
    """Micro figures over the stories of `gold` ({story: tags}); predictions for stories
    outside `gold` are not counted."""
    tp = fp = fn = 0
    for story, tags in gold.items():
        g, p = set(tags), set(predicted.get(story, ()))
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    return Figures(tp, fp, fn)
