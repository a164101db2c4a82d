"""Cross-validated tagging figures on labelled stories of one knowledge base.

`cross_validate` splits the labelled stories into k folds by story, fits a calibration
(`calibrate`) on the other folds, tags the held-out fold with it (`tag_batch`, the code
`tag_stories` runs) and keeps those tags: every labelled story is tagged once by a calibration
that never saw its labels. It also tags every story with the calibration fitted on all labels
(in-sample for the fitted stories, held out for stories whose labels were not fitted on).
`score_tags` scores tags per kind and per method the way the dev set's scorer does: micro
precision, recall and F1 over (story, tag) pairs; a prediction on a story whose gold field is
empty is a false positive, a story without predictions contributes false negatives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlite_utils

from mlopsmortem.passages.embed import model_key
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import Calibration
from mlopsmortem.tagging.fitting import Figures, StoryAnalysis, calibrate, score_sets
from mlopsmortem.tagging.semantic import SemanticRun
from mlopsmortem.tagging.store import facet_values
from mlopsmortem.tagging.tags import StoryTags
from mlopsmortem.tagging.taxonomy import Taxonomy

METHODS = ("list", "rule", "semantic", "all")


def fold_of(story_id: str, folds: int) -> int:
    """A story's fold: fixed by its id, so reruns and other corpora split the same way."""
    return int(hashlib.sha256(story_id.encode("utf-8")).hexdigest()[:8], 16) % folds


def method_tags(result: StoryTags, kind: str, method: str) -> set[str]:
    """A story's canonical tags of one kind from one method ("all": what stories.components
    / stories.impacts get)."""
    if method == "all":
        return set(facet_values(result.tags, kind))  # type: ignore[arg-type]
    return {t.tag for t in result.tags if t.kind == kind and t.method == method and not t.free}


@dataclass(frozen=True)
class CrossValidation:
    held_out: Mapping[str, StoryTags]  # each fitted story, tagged by a calibration without it
    full: Mapping[str, StoryTags]  # every story, tagged by the calibration fitted on all
    calibration: Calibration  # fitted on all labelled stories
    report: Mapping[str, object]  # calibrate's report for the full fit


def cross_validate(
    db: sqlite_utils.Database,
    settings: Settings,
    taxonomy: Taxonomy,
    analyses: Mapping[str, StoryAnalysis],
    gold_components: Mapping[str, set[str]],
    gold_impacts: Mapping[str, set[str]],
    *,
    folds: int,
    corpus: str,
    tag_ids: Iterable[str] = (),
    component_vocabulary: Collection[str] | None = None,
) -> CrossValidation:
    """k-fold by story over the stories of `gold_impacts`; `tag_ids` are also tagged with the
    full fit. Components are fitted against `component_vocabulary` (default: every component
    of the taxonomy, as the dev scorer counts every prediction)."""
    model = model_key(settings.model_name)
    vocabulary = (
        set(component_vocabulary)
        if component_vocabulary is not None
        else {c.name for c in taxonomy.components}
    )
    labelled = sorted(gold_impacts)

    def fit(ids: Sequence[str]) -> tuple[Calibration, Mapping[str, object]]:
        result = calibrate(
            taxonomy,
            {sid: analyses[sid] for sid in ids},
            {sid: gold_components[sid] for sid in ids},
            {sid: gold_impacts[sid] for sid in ids},
            model=model,
            component_vocabulary=vocabulary,
            corpus=corpus,
            held_out=False,
        )
        return result.calibration, result.report

    def tag(calibration: Calibration, ids: Sequence[str]) -> dict[str, StoryTags]:
        from mlopsmortem.tagging.run import tag_batch  # run imports the methods; keep this light

        run = SemanticRun(taxonomy, calibration.impacts, settings)
        return tag_batch(db, taxonomy, calibration, run, list(ids), model, True)

    held: dict[str, StoryTags] = {}
    for k in range(folds):
        test = [sid for sid in labelled if fold_of(sid, folds) == k]
        train = [sid for sid in labelled if fold_of(sid, folds) != k]
        if test and train:
            held.update(tag(fit(train)[0], test))
    calibration, report = fit(labelled)
    everything = sorted({*labelled, *tag_ids})
    return CrossValidation(held, tag(calibration, everything), calibration, report)


def score_tags(
    tags: Mapping[str, StoryTags],
    gold: Mapping[str, set[str]],
    kind: str,
    method: str,
    *,
    exclude_methods: Collection[str] = (),
) -> Figures:
    """Micro figures of one kind and method over the stories of `gold`; tags of
    `exclude_methods` are left out first (e.g. the list method against labels that are the
    list's own items)."""
    predicted = {}
    for sid in gold:
        result = tags.get(sid)
        if result is None:
            predicted[sid] = set()
            continue
        if exclude_methods:
            kept = tuple(t for t in result.tags if t.method not in exclude_methods)
            result = StoryTags(kept, result.mentions, result.semantic)
        predicted[sid] = method_tags(result, kind, method)
    return score_sets(predicted, gold)


def impact_coverage(tags: Mapping[str, StoryTags], with_text: Iterable[str]) -> tuple[int, int]:
    """(stories with at least one impact, stories) among the stories `with_text`."""
    ids = [sid for sid in with_text if sid in tags]
    return sum(bool(method_tags(tags[sid], "impact", "all")) for sid in ids), len(ids)


__all__ = [
    "METHODS",
    "CrossValidation",
    "Figures",
    "cross_validate",
    "fold_of",
    "impact_coverage",
    "method_tags",
    "score_tags",
]
