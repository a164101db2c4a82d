"""Calibration fitting: what the methods see in labelled stories before any threshold
(`analyse_stories`), and `calibrate`, which fits `component_min_mentions` and the semantic
thresholds on gold tags with leave-one-story-out figures beside the in-sample ones."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.passages.embed import model_key
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import Calibration, descriptions_digest
from mlopsmortem.tagging.inputs import live_story_ids, load_inputs
from mlopsmortem.tagging.listtags import list_tags
from mlopsmortem.tagging.logistic import fit_logistic
from mlopsmortem.tagging.rules import Mentions, find_story_mentions
from mlopsmortem.tagging.semantic import SemanticRun, SemanticScores, semantic_decisions
from mlopsmortem.tagging.tags import Tag, TaggingError
from mlopsmortem.tagging.taxonomy import Taxonomy, load_taxonomy

# Threshold grids (score units: log-odds, or z for the z-only comparison). Wide enough that the
# extremes mean "always" and "never".
TOP_GRID = tuple(round(-6.0 + 0.05 * i, 2) for i in range(241))  # -6.0 .. 6.0
OTHER_GRID = TOP_GRID
#: L2 penalty of the score's logistic fit (scikit-learn's default C = 1).
SCORE_L2 = 1.0
MIN_MENTIONS_CHOICES = (1, 2, 3, 4, 5)
#: `component_min_mentions` is the count with the best F1 among those reaching this precision,
#: not simply the smallest such count: a count near the target would flip from fold to fold.
COMPONENT_PRECISION_TARGET = 0.9


@dataclass(frozen=True)
class StoryAnalysis:
    """What the methods see in one story, before any threshold: for calibration and the bench."""

    story_id: str
    list_tags: tuple[Tag, ...]
    mentions: Mentions
    scores: SemanticScores | None

    def components(self, min_mentions: int) -> set[str]:
        """Canonical components from the list and the rule with this mention count."""
        found = {t.tag for t in self.list_tags if t.kind == "component" and not t.free}
        return found | self.mentions.components(min_mentions)

    def base_impacts(self) -> set[str]:
        """Impacts from the list, titles, statements and impact sections: what the semantic
        step adds to."""
        found = {t.tag for t in self.list_tags if t.kind == "impact" and not t.free}
        return found | self.mentions.impacts()


def analyse_stories(
    db: sqlite_utils.Database,
    settings: Settings,
    impacts: Sequence[str],
    story_ids: Iterable[str] | None = None,
) -> dict[str, StoryAnalysis]:
    """List tags, mentions and semantic scores (over `impacts`) of live stories."""
    taxonomy = load_taxonomy(settings.taxonomy_file)
    model = model_key(settings.model_name)
    ids = live_story_ids(db, story_ids)
    inputs = load_inputs(db, ids, model, with_text=True)
    scored = SemanticRun(taxonomy, tuple(impacts), settings).story_scores(db, inputs, model)
    result = {}
    for sid, story in inputs.items():
        scores = scored[sid][0] if sid in scored else None
        result[sid] = StoryAnalysis(
            sid, tuple(list_tags(taxonomy, story)), find_story_mentions(taxonomy, story), scores
        )
    return result


@dataclass(frozen=True)
class Figures:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def score_sets(predicted: Mapping[str, set[str]], gold: Mapping[str, set[str]]) -> Figures:
    tp = fp = fn = 0
    for sid, wanted in gold.items():
        got = predicted.get(sid, set())
        tp += len(got & wanted)
        fp += len(got - wanted)
        fn += len(wanted - got)
    return Figures(tp, fp, fn)


@dataclass(frozen=True)
class _ImpactMatrix:
    """Semantic z-scores, ranks, gold and base impacts as (story x impact) arrays."""

    raw: np.ndarray  # NaN where a story has no scores
    gold: np.ndarray
    base: np.ndarray
    extra_gold: np.ndarray  # per story: gold impacts outside the semantic set
    extra_base_hits: np.ndarray  # per story: base impacts outside the semantic set that are gold
    extra_base_misses: np.ndarray  # ... that are not gold
    mentions: np.ndarray  # log(1 + the impact's alias mentions in the story's text)
    impacts: tuple[str, ...]  # the columns
    base_sets: tuple[frozenset[str], ...]  # per story: every base impact, semantic or not


def _impact_matrix(
    analyses: Mapping[str, StoryAnalysis],
    gold: Mapping[str, set[str]],
    order: Sequence[str],
    impacts: Sequence[str],
) -> _ImpactMatrix:
    raw = np.full((len(order), len(impacts)), np.nan)
    y = np.zeros(raw.shape, dtype=bool)
    base = np.zeros(raw.shape, dtype=bool)
    extra_gold = np.zeros(len(order), dtype=np.int64)
    hits = np.zeros(len(order), dtype=np.int64)
    misses = np.zeros(len(order), dtype=np.int64)
    mentions = np.zeros(raw.shape)
    base_sets: list[frozenset[str]] = []
    index = {impact: j for j, impact in enumerate(impacts)}
    for a, sid in enumerate(order):
        analysis = analyses[sid]
        mentions[a] = [np.log1p(analysis.mentions.count(("impact", i))) for i in impacts]
        if analysis.scores is not None:
            by_impact = dict(zip(analysis.scores.impacts, analysis.scores.raw, strict=True))
            raw[a] = [by_impact.get(impact, np.nan) for impact in impacts]
        for impact in gold[sid]:
            if impact in index:
                y[a, index[impact]] = True
            else:
                extra_gold[a] += 1
        base_sets.append(frozenset(analysis.base_impacts()))
        for impact in base_sets[-1]:
            if impact in index:
                base[a, index[impact]] = True
            elif impact in gold[sid]:
                hits[a] += 1
            else:
                misses[a] += 1
    return _ImpactMatrix(
        raw,
        y,
        base,
        extra_gold,
        hits,
        misses,
        mentions,
        tuple(impacts),
        tuple(base_sets),
    )


def _zscores(raw: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-impact mean and std over the scored stories among `rows`, and z for every story."""
    fitted = raw[rows]
    fitted = fitted[~np.isnan(fitted).any(axis=1)]
    mean = fitted.mean(axis=0)
    std = fitted.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std, (raw - mean) / std


def _fit_score(z: np.ndarray, m: _ImpactMatrix, rows: np.ndarray) -> tuple[float, float, float]:
    """(z weight, mention weight, intercept) of a logistic fit of the gold impacts on `rows`'
    scored cells; the score is its log-odds."""
    cells = ~np.isnan(z[rows])
    x = np.stack([z[rows][cells], m.mentions[rows][cells]], axis=1)
    weights, intercept = fit_logistic(x, m.gold[rows][cells], l2=SCORE_L2)
    return float(weights[0]), float(weights[1]), intercept


def _apply_score(z: np.ndarray, m: _ImpactMatrix, params: tuple[float, float, float]) -> np.ndarray:
    return params[0] * z + params[1] * m.mentions + params[2]


def _ranks(z: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(z), -np.inf, z)
    return (-filled).argsort(axis=1, kind="stable").argsort(axis=1, kind="stable")


def _predict(
    score: np.ndarray,
    m: _ImpactMatrix,
    rows: np.ndarray,
    top: float,
    other: float,
    exclusive: Mapping[str, Collection[str]],
    fallback: bool = False,
) -> np.ndarray:
    """base | semantic for `rows` (`score` holds those rows only), decided by
    `semantic_decisions` itself, as at tag time: ranks, ties and exclusive impacts alike."""
    predicted = m.base[rows].copy()
    column = {impact: j for j, impact in enumerate(m.impacts)}
    for r, a in enumerate(rows):
        values = {
            impact: float(score[r, j])
            for j, impact in enumerate(m.impacts)
            if not np.isnan(score[r, j])
        }
        chosen = semantic_decisions(
            values, top, other, tagged=m.base_sets[a], exclusive=exclusive, fallback=fallback
        )
        for impact in chosen:
            predicted[r, column[impact]] = True
    return predicted


def _fit_thresholds(
    z: np.ndarray, m: _ImpactMatrix, rows: np.ndarray
) -> tuple[float, float, float]:
    """(top, other, F1) maximising the overall impact F1 of base | semantic on `rows`. Among
    equally good pairs, the one nearest their centre (the middle of the plateau). Exclusive
    impacts are ignored here (they only remove the weaker of two tags); figures apply them."""
    zr, y, base = z[rows], m.gold[rows], m.base[rows]
    ranks = _ranks(zr)
    open_cells = ~base & ~np.isnan(zr)
    tp_base = (base & y).sum() + m.extra_base_hits[rows].sum()
    n_base = base.sum() + m.extra_base_hits[rows].sum() + m.extra_base_misses[rows].sum()
    n_gold = y.sum() + m.extra_gold[rows].sum()

    def counts(cells: np.ndarray, grid: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        values, truth = zr[cells], y[cells]
        thresholds = np.asarray(grid)[:, None]
        chosen = values[None, :] >= thresholds
        return (chosen & truth[None, :]).sum(axis=1), chosen.sum(axis=1)

    tp0, n0 = counts(open_cells & (ranks == 0), TOP_GRID)
    tp1, n1 = counts(open_cells & (ranks > 0), OTHER_GRID)
    tp = tp_base + tp0[:, None] + tp1[None, :]
    f1 = 2 * tp / (n_base + n0[:, None] + n1[None, :] + n_gold)
    best = f1.max()
    ties = np.argwhere(np.isclose(f1, best))
    centre = ties.mean(axis=0)
    i, j = ties[np.argmin(((ties - centre) ** 2).sum(axis=1))]
    return TOP_GRID[i], OTHER_GRID[j], float(best)


def _fit_per_impact(z: np.ndarray, m: _ImpactMatrix, rows: np.ndarray) -> np.ndarray:
    """The rejected alternative: one threshold per impact (no rank rule), coordinate ascent on
    the overall F1 from a common start."""
    zr, y, base = z[rows], m.gold[rows], m.base[rows]
    n_gold = y.sum() + m.extra_gold[rows].sum()
    fixed_tp = (base & y).sum() + m.extra_base_hits[rows].sum()
    fixed_n = base.sum() + m.extra_base_hits[rows].sum() + m.extra_base_misses[rows].sum()
    grid = np.asarray(OTHER_GRID)
    thresholds = np.full(zr.shape[1], 1.5)
    with np.errstate(invalid="ignore"):
        for _ in range(2):
            for j in range(zr.shape[1]):
                others = [k for k in range(zr.shape[1]) if k != j]
                chosen = (zr[:, others] >= thresholds[others]) & ~base[:, others]
                tp_rest = fixed_tp + (chosen & y[:, others]).sum()
                n_rest = fixed_n + chosen.sum()
                cells = ~base[:, j] & ~np.isnan(zr[:, j])
                pick = zr[cells, j][None, :] >= grid[:, None]
                tp = tp_rest + (pick & y[cells, j][None, :]).sum(axis=1)
                n = n_rest + pick.sum(axis=1)
                thresholds[j] = grid[int(np.argmax(2 * tp / (n + n_gold)))]
    return thresholds


def _figures(pred: np.ndarray, m: _ImpactMatrix, rows: np.ndarray | None = None) -> Figures:
    rows = np.arange(len(pred)) if rows is None else rows
    p, y = pred[rows], m.gold[rows]
    tp = int((p & y).sum() + m.extra_base_hits[rows].sum())
    fp = int((p & ~y).sum() + m.extra_base_misses[rows].sum())
    fn = int((~p & y).sum() + m.extra_gold[rows].sum() - m.extra_base_hits[rows].sum())
    return Figures(tp, fp, fn)


@dataclass(frozen=True)
class CalibrationResult:
    calibration: Calibration
    report: Mapping[str, Any]


def calibrate(
    taxonomy: Taxonomy,
    analyses: Mapping[str, StoryAnalysis],
    gold_components: Mapping[str, set[str]],
    gold_impacts: Mapping[str, set[str]],
    *,
    model: str,
    component_vocabulary: Iterable[str],
    corpus: str,
    held_out: bool = True,
) -> CalibrationResult:
    """Fit `component_min_mentions` and the semantic thresholds on labelled stories.

    Components: for each minimum count, precision and recall of list | rule against the gold
    components, counting only predictions inside `component_vocabulary` (the gold labels say
    nothing about other components); the best F1 among the counts that reach
    COMPONENT_PRECISION_TARGET wins. Impacts: per-impact z statistics from the scored stories
    (no labels); a logistic fit of the gold impacts on z and log(1 + the impact's alias
    mentions in the text), whose log-odds is the score; then the (top, other) pair maximising
    the overall impact F1 of base | semantic; the fallback (a story left without any impact gets
    its best-scored one) is kept when it does not lower that F1. Held-out figures come from
    leave-one-story-out: statistics, count, score weights and thresholds refitted without the
    story, then applied to it. Two variants are fitted the same way, for comparison only:
    thresholds on z alone (the score without mentions) and one z threshold per impact. Without
    `held_out` the leave-one-story-out refits are skipped and the report's held-out figures
    count nothing (for a caller that holds stories out itself, as `crossval.cross_validate` does).
    """
    order = sorted(gold_impacts)
    vocabulary = set(component_vocabulary)
    rows_all = np.arange(len(order))

    def component_figures(n: int, sids: Iterable[str]) -> Figures:
        predicted = {sid: analyses[sid].components(n) & vocabulary for sid in sids}
        return score_sets(predicted, {sid: gold_components[sid] for sid in sids})

    def choose_n(sids: Sequence[str]) -> int:
        figures = {n: component_figures(n, sids) for n in MIN_MENTIONS_CHOICES}
        good = [n for n, f in figures.items() if f.precision >= COMPONENT_PRECISION_TARGET]
        return max(good or MIN_MENTIONS_CHOICES, key=lambda n: (figures[n].f1, -n))

    min_mentions = choose_n(order)
    component_table = {str(n): component_figures(n, order).to_dict() for n in MIN_MENTIONS_CHOICES}
    held_tp = held_fp = held_fn = 0
    for sid in order if held_out else ():
        n = choose_n([s for s in order if s != sid])
        f = component_figures(n, [sid])
        held_tp, held_fp, held_fn = held_tp + f.tp, held_fp + f.fp, held_fn + f.fn

    # The semantic set is whatever the analyses scored (and centred over): the caller picks it,
    # normally the impacts with at least one positive example in the corpus.
    scored = [sid for sid in order if analyses[sid].scores is not None]
    if not scored:
        raise TaggingError("calibration needs stories with embedded text passages")
    first = analyses[scored[0]].scores
    impacts = list(first.impacts) if first is not None else []
    m = _impact_matrix(analyses, gold_impacts, order, impacts)
    exclusive = taxonomy.exclusive_impacts
    mean, std, z = _zscores(m.raw, rows_all)
    params = _fit_score(z, m, rows_all)
    score = _apply_score(z, m, params)
    top, other, _ = _fit_thresholds(score, m, rows_all)
    no_fallback = _predict(score, m, rows_all, top, other, exclusive)
    with_fallback = _predict(score, m, rows_all, top, other, exclusive, fallback=True)
    fallback = _figures(with_fallback, m).f1 >= _figures(no_fallback, m).f1
    in_pred = with_fallback if fallback else no_fallback
    z_top, z_other, _ = _fit_thresholds(z, m, rows_all)
    in_z = _predict(z, m, rows_all, z_top, z_other, exclusive)
    per_impact = _fit_per_impact(z, m, rows_all)
    with np.errstate(invalid="ignore"):
        in_pi = m.base | ((z >= per_impact) & ~np.isnan(z))

    held = np.zeros_like(m.gold)
    held_z = np.zeros_like(m.gold)
    held_pi = np.zeros_like(m.gold)
    for a in rows_all if held_out else ():
        train = rows_all[rows_all != a]
        one = slice(a, a + 1)
        _, _, z_fold = _zscores(m.raw, train)
        score_fold = _apply_score(z_fold, m, _fit_score(z_fold, m, train))
        t_top, t_other, _ = _fit_thresholds(score_fold, m, train)
        held[a] = _predict(score_fold[one], m, rows_all[one], t_top, t_other, exclusive, fallback)[
            0
        ]
        t_top, t_other, _ = _fit_thresholds(z_fold, m, train)
        held_z[a] = _predict(z_fold[one], m, rows_all[one], t_top, t_other, exclusive)[0]
        t_pi = _fit_per_impact(z_fold, m, train)
        with np.errstate(invalid="ignore"):
            held_pi[a] = m.base[a] | ((z_fold[a] >= t_pi) & ~np.isnan(z_fold[a]))

    base_only = _figures(m.base, m)
    semantic_only_in = Figures(
        int((in_pred & ~m.base & m.gold).sum()), int((in_pred & ~m.base & ~m.gold).sum()), 0
    )
    semantic_only_held = Figures(
        int((held & ~m.base & m.gold).sum()), int((held & ~m.base & ~m.gold).sum()), 0
    )
    report = {
        "corpus": corpus,
        "stories": len(order),
        "stories_with_scores": len(scored),
        "calibrated_at": utcnow(),
        "cross_validation": "leave-one-story-out (statistics, counts and thresholds refitted "
        "without the held-out story)",
        "components": {
            "rule": "component_min_mentions = the count with the best list|rule F1 among those "
            f"with precision >= {COMPONENT_PRECISION_TARGET} (predictions outside the gold "
            "vocabulary ignored)",
            "by_min_mentions": component_table,
            "held_out": Figures(held_tp, held_fp, held_fn).to_dict(),
        },
        "impacts": {
            "semantic_impacts": impacts,
            "not_semantic": [i.id for i in taxonomy.impacts if i.id not in impacts],
            "list_and_title_only": base_only.to_dict(),
            "global": {
                "score": {"z": params[0], "mentions": params[1], "intercept": params[2]},
                "thresholds": {"top": top, "other": other},
                "fallback": fallback,
                "fallback_in_sample": {
                    "with": _figures(with_fallback, m).to_dict(),
                    "without": _figures(no_fallback, m).to_dict(),
                },
                "in_sample": _figures(in_pred, m).to_dict(),
                "held_out": _figures(held, m).to_dict(),
                "semantic_additions_in_sample": {
                    "correct": semantic_only_in.tp,
                    "wrong": semantic_only_in.fp,
                },
                "semantic_additions_held_out": {
                    "correct": semantic_only_held.tp,
                    "wrong": semantic_only_held.fp,
                },
            },
            "z_only_alternative": {
                "thresholds": {"top": z_top, "other": z_other},
                "in_sample": _figures(in_z, m).to_dict(),
                "held_out": _figures(held_z, m).to_dict(),
            },
            "per_impact_alternative": {
                "thresholds": {i: float(t) for i, t in zip(impacts, per_impact, strict=True)},
                "in_sample": _figures(in_pi, m).to_dict(),
                "held_out": _figures(held_pi, m).to_dict(),
            },
            "chosen": "global",
        },
    }
    calibration = Calibration(
        model=model,
        impacts=tuple(impacts),
        mean=MappingProxyType({i: round(float(v), 6) for i, v in zip(impacts, mean, strict=True)}),
        std=MappingProxyType({i: round(float(v), 6) for i, v in zip(impacts, std, strict=True)}),
        top=top,
        other=other,
        component_min_mentions=min_mentions,
        descriptions_digest=descriptions_digest(taxonomy),
        derivation=MappingProxyType(report),
        z_weight=round(params[0], 6),
        mention_weight=round(params[1], 6),
        intercept=round(params[2], 6),
        fallback=fallback,
    )
    return CalibrationResult(calibration, report)
