"""The real-corpus benchmark's scorer on a tiny hand-made case whose figures are known, and
against the development set's own reference scorer when ../shared is present."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re

import pytest

from bench.real_scoring import (
    ndcg_at,
    recall_at,
    reciprocal_rank,
    search_figures,
    tag_figures,
)
from tests.conftest import REPO_ROOT

DEV = REPO_ROOT.parent / "shared" / "dev"
GRADES = {"a": 2, "b": 1, "c": 1}


def test_search_figures_by_hand() -> None:
    ranked = ["x", "a", "c"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(ranked, GRADES) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b", "c"], GRADES) == pytest.approx(1.0)
    assert recall_at(ranked, GRADES) == pytest.approx(2 / 3)
    assert reciprocal_rank(ranked, GRADES) == 0.5
    assert reciprocal_rank(["b", "c"], GRADES) == 0.0  # only a grade-2 story counts
    assert ndcg_at(["y"] * 10 + ["a"], GRADES) == 0.0  # past the tenth rank
    figures = search_figures({"q1": ranked}, {"q1": GRADES, "q2": {"z": 2}})
    assert figures.queries == 2
    assert figures.ndcg == pytest.approx(dcg / idcg / 2)  # q2 returned nothing: 0
    assert figures.recall == pytest.approx(1 / 3)
    assert figures.mrr == pytest.approx(0.25)


def test_tag_figures_by_hand() -> None:
    gold = {"s1": {"A", "B"}, "s2": set()}
    predicted = {"s1": {"A", "C"}, "s2": {"D"}, "s3": {"E"}}  # s3 is not labelled: ignored
    figures = tag_figures(gold, predicted)
    assert (figures.tp, figures.fp, figures.fn) == (1, 2, 1)
    assert figures.precision == pytest.approx(1 / 3)
    assert figures.recall == pytest.approx(1 / 2)
    assert figures.f1 == pytest.approx(0.4)
    assert tag_figures({"s": set()}, {}).f1 == 0.0


@pytest.mark.skipif(not (DEV / "score.py").is_file(), reason="../shared/dev not present")
def test_agrees_with_the_reference_scorer(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("dev_score", DEV / "score.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    qrels = reference.load_qrels()
    # a run that returns each query's judged stories in reverse alphabetical order, plus noise
    runs = {q: ["noise", *sorted(g, reverse=True)] for q, (_, g) in list(qrels.items())[::2]}
    run_file = tmp_path / "run.tsv"
    run_file.write_text("".join(f"{q}\t{u}\n" for q, urls in runs.items() for u in urls))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        reference.search(str(run_file))
    line = next(x for x in printed.getvalue().splitlines() if x.startswith("all"))
    expected = [float(v) for v in re.findall(r"=(\d\.\d{3})", line)]
    ours = search_figures(runs, {q: g for q, (_, g) in qrels.items()})
    assert [round(ours.ndcg, 3), round(ours.recall, 3), round(ours.mrr, 3)] == expected
