"""The semantic score: a logistic fit of the gold impacts on z and the impact's alias
mentions, its log-odds compared with the thresholds (see tagging.fitting.calibrate)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mlopsmortem.tagging.calibration import Calibration
from mlopsmortem.tagging.fitting import StoryAnalysis, calibrate
from mlopsmortem.tagging.logistic import fit_logistic, sigmoid
from mlopsmortem.tagging.rules import Mentions
from mlopsmortem.tagging.semantic import SemanticScores, semantic_decisions, semantic_tags
from mlopsmortem.tagging.taxonomy import TaxonomyError, load_taxonomy
from mlopsmortem.tagging.taxonomy_types import TagMatch

DATA = Path(__file__).resolve().parents[1] / "data"
IMPACTS = ("outage", "lost-logs")


def test_fit_logistic_reaches_the_penalised_optimum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2))
    y = x @ np.array([2.0, -1.0]) + rng.normal(size=400) > 0.5
    weights, intercept = fit_logistic(x, y, l2=1.0)
    p = sigmoid(x @ weights + intercept)
    # the gradient of log-loss + l2/2 |w|^2 vanishes at the optimum (intercept unpenalised)
    assert np.allclose(x.T @ (p - y) + weights, 0, atol=1e-6)
    assert abs(float((p - y).sum())) < 1e-6
    assert weights[0] > 1.0 and weights[1] < -0.5


def calibration(**score: float) -> Calibration:
    return Calibration(
        model="m",
        impacts=IMPACTS,
        mean={i: 0.0 for i in IMPACTS},
        std={i: 1.0 for i in IMPACTS},
        top=0.5,
        other=0.5,
        component_min_mentions=2,
        descriptions_digest="",
        **score,
    )


def test_alias_mentions_raise_the_score_past_the_threshold():
    cal = calibration(z_weight=1.0, mention_weight=1.0, intercept=-1.0)
    scores = SemanticScores(IMPACTS, np.array([1.2, -1.0]), (7, 8))
    texts = {7: "The API returned errors for everyone.", 8: "Logs."}
    assert semantic_tags(scores, cal, texts, {}) == []  # 1.2 - 1.0 < 0.5
    (tag,) = semantic_tags(scores, cal, texts, {"outage": 2})  # + log(3)
    assert (tag.tag, tag.method, tag.passage_id) == ("outage", "semantic", 7)
    assert tag.evidence.startswith("score 1.30 >= 0.50 (z 1.20, alias mentions 2): The API")
    assert 0.5 < tag.confidence < 1.0


def test_a_calibration_without_score_weights_scores_by_z_alone():
    data = calibration().to_json()
    del data["semantic"]["score"]
    old = Calibration.from_json(json.loads(json.dumps(data)))
    assert old.score(1.7, 5) == 1.7
    fitted = calibration(z_weight=1.5, mention_weight=0.5, intercept=-2.0)
    again = Calibration.from_json(json.loads(json.dumps(fitted.to_json())))
    assert math.isclose(again.score(1.0, 1), 1.5 + 0.5 * math.log(2) - 2.0)


def mentions_of(impact: str, count: int) -> Mentions:
    match = TagMatch("impact", impact, impact, 0, len(impact))
    return Mentions({}, {("impact", impact): (match,) * count} if count else {})


def test_calibrate_weighs_mentions_when_they_carry_the_signal():
    """z is noise here and the alias mentions tell the impacts apart: the fitted score leans on
    mentions, and the held-out F1 beats thresholds on z alone."""
    taxonomy = load_taxonomy(DATA / "taxonomy.toml")
    rng = np.random.default_rng(11)
    analyses, gold_c, gold_i = {}, {}, {}
    for n in range(30):
        wanted = IMPACTS[n % 2]
        sid = f"s{n}"
        scores = SemanticScores(IMPACTS, rng.normal(0, 0.05, 2), (1, 1))
        analyses[sid] = StoryAnalysis(sid, (), mentions_of(wanted, 1 + n % 3), scores)
        gold_c[sid], gold_i[sid] = set(), {wanted}
    result = calibrate(
        taxonomy, analyses, gold_c, gold_i, model="m", component_vocabulary=(), corpus="synthetic"
    )
    cal = result.calibration
    assert cal.mention_weight > 1.0 and abs(cal.z_weight) < cal.mention_weight
    impacts = result.report["impacts"]
    assert impacts["global"]["held_out"]["f1"] == 1.0
    assert impacts["z_only_alternative"]["held_out"]["f1"] < 0.9
    assert math.isclose(impacts["global"]["score"]["mentions"], cal.mention_weight, rel_tol=1e-5)


def test_exclusive_impacts_are_never_both_added_by_the_semantic_step():
    exclusive = {"outage": {"partial-outage"}, "partial-outage": {"outage"}}
    score = {"outage": 2.0, "partial-outage": 2.5, "lost-logs": 1.0}
    assert semantic_decisions(score, 0.5, 0.5) == {
        "outage": 0.5,
        "partial-outage": 0.5,
        "lost-logs": 0.5,
    }
    # the better-scored one wins; one from the list, a title or a statement wins outright
    assert set(semantic_decisions(score, 0.5, 0.5, exclusive=exclusive)) == {
        "partial-outage",
        "lost-logs",
    }
    with_list_outage = semantic_decisions(score, 0.5, 0.5, tagged={"outage"}, exclusive=exclusive)
    assert "partial-outage" not in with_list_outage and "lost-logs" in with_list_outage
    # a rival that does not pass its threshold blocks nothing
    assert set(semantic_decisions(score, 3.0, 1.5, exclusive=exclusive)) == {"outage"}


def test_the_shipped_taxonomy_makes_outage_and_partial_outage_exclusive(tmp_path):
    taxonomy = load_taxonomy(DATA / "taxonomy.toml")
    assert taxonomy.exclusive_impacts["partial-outage"] == {"outage"}
    path = tmp_path / "taxonomy.toml"
    path.write_text(
        '[[impact]]\nid = "outage"\nname = "Outage"\ndescription = "Down."\n'
        'exclusive_with = ["partial"]\n'
    )
    with pytest.raises(TaxonomyError, match="exclusive_with names 'partial'"):
        load_taxonomy(path)


TOTAL_OUTAGE = (
    "At 09:12 the whole platform went dark. Every request to the API failed, the website "
    "returned nothing but errors and no customer anywhere could log in or use the product.\n\n"
    "It was a complete outage of production: the service was down and unreachable for all "
    "users until the database came back and traffic could be served again.\n\n"
    "We restored the primary from a snapshot and brought the service back up."
)


def test_a_list_partial_outage_keeps_semantic_outage_off_until_exclusivity_is_removed(
    tag_settings, model
):
    from mlopsmortem.passages.embed import embed_passages
    from mlopsmortem.passages.sync import sync_passages
    from mlopsmortem.tagging.run import tag_stories
    from mlopsmortem.tagging.store import story_tag_rows
    from tests.support.tagging_kb import S, build, edit_taxonomy

    db = build(
        tag_settings.db_path,
        (
            S("listed", "Platform incident", TOTAL_OUTAGE, impact=("partial outage",)),
            S("other", "Kafka lag", "Kafka consumers fell behind on the events topic."),
        ),
    )
    sync_passages(db, settings=tag_settings)
    embed_passages(db, tag_settings, progress=False)
    tag_stories(db, tag_settings)

    def impacts(method: str) -> set[str]:
        rows = story_tag_rows(db, "listed")
        return {r["tag"] for r in rows if r["method"] == method and r["kind"] == "impact"}

    assert impacts("list") == {"partial-outage"}
    assert "outage" not in impacts("semantic")

    # exclusivity is a property of the whole run: editing it re-tags every story
    edit_taxonomy(tag_settings, 'exclusive_with = ["partial-outage"]\n', "")
    report = tag_stories(db, tag_settings)
    assert (report.tagged, report.revalidated) == (2, 0)
    assert "outage" in impacts("semantic")


# --------------------------------------------------------------------------- fallback impact


def test_fallback_tags_the_best_impact_of_a_story_that_would_have_none():
    scores = SemanticScores(IMPACTS, np.array([0.2, -1.0]), (7, 8))
    texts = {7: "The API returned errors.", 8: "Logs."}
    assert semantic_tags(scores, calibration(), texts, {}) == []  # 0.2 < 0.5: nothing passes
    with_fallback = calibration(fallback=True)
    (tag,) = semantic_tags(scores, with_fallback, texts, {})
    assert (tag.tag, tag.confidence) == ("outage", 0.5)  # exactly enough for stories.impacts
    assert tag.evidence.startswith("fallback, the best-scored impact")
    # not when another method tagged an impact, nor when the text says there was none
    assert semantic_tags(scores, with_fallback, texts, {}, tagged={"lost-logs"}) == []
    assert semantic_tags(scores, with_fallback, texts, {"no-user-impact": 1}) == []
    assert semantic_decisions({"outage": 0.2}, 0.5, 0.5, fallback=True) == {"outage": 0.2}


def test_a_summary_only_story_gets_semantic_impacts_from_its_summary(tag_settings, model):
    from mlopsmortem.tagging.run import tag_stories
    from mlopsmortem.tagging.store import story_tag_rows
    from tests.support.tagging_kb import S, build

    summary = (
        "Over six weeks our churn model quietly got worse as the production features drifted "
        "away from the training data, and its accuracy slid every week until we retrained it."
    )
    db = build(tag_settings.db_path, (S("churn", "Example Corp", summary=summary),))
    report = tag_stories(db, tag_settings)
    assert report.without_text == 0
    semantic = {r["tag"]: r for r in story_tag_rows(db, "churn") if r["method"] == "semantic"}
    assert "model-degradation" in semantic
    assert semantic["model-degradation"]["evidence"].endswith(summary[:40] + "…") or (
        "churn model" in semantic["model-degradation"]["evidence"]
    )
