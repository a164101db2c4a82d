"""Tagging: list, rule and semantic tags, facet arrays, incremental re-tagging, Datasette facets.

Real SQLite files in tmp_path; the semantic tests use the real bundled model and the real
calibration in data/ (the model is loaded once per session).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlopsmortem.db import utcnow
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.tagging.calibration import CALIBRATION_FILE, Calibration, load_calibration
from mlopsmortem.tagging.fitting import StoryAnalysis, calibrate
from mlopsmortem.tagging.listtags import normalise_free_tag
from mlopsmortem.tagging.rules import Mentions, snippet
from mlopsmortem.tagging.run import tag_stories
from mlopsmortem.tagging.semantic import SemanticScores, semantic_decisions
from mlopsmortem.tagging.store import (
    CONFIDENCE_CUT,
    INPUTS_TABLE,
    META_TAXONOMY_VERSION,
    story_tag_rows,
)
from mlopsmortem.tagging.tags import Tag, TaggingError
from mlopsmortem.tagging.taxonomy import load_taxonomy
from tests.support.tagging_kb import (
    DATA,
    S,
    build,
    by_method,
    edit_taxonomy,
    facets,
    set_text,
)

# --------------------------------------------------------------------------- list tags


def test_list_items_keep_originals_and_unmapped_ones_become_free_tags(tag_settings):
    db = build(
        tag_settings.db_path,
        (
            S(
                "cni",
                "The case of the missing packet",
                involved=("EKS", "AWS CNI Plugin", "k8s", "browser tabs", ""),
                impact=("partial production outage", "`unknown`"),
            ),
        ),
    )
    report = tag_stories(db, tag_settings)
    assert report.tagged == 1 and report.free == 2
    rows = [r for r in story_tag_rows(db, "cni") if r["method"] == "list"]
    canonical = {(r["kind"], r["tag"], r["original"]) for r in rows if not r["free"]}
    assert canonical == {
        ("component", "EKS", "EKS"),
        ("component", "AWS VPC CNI", "AWS CNI Plugin"),
        ("component", "Kubernetes", "k8s"),
        ("impact", "partial-outage", "partial production outage"),
    }
    free = {(r["kind"], r["tag"], r["original"]) for r in rows if r["free"]}
    assert free == {
        ("component", "browser tabs", "browser tabs"),
        ("impact", "unknown", "`unknown`"),
    }
    assert all(r["confidence"] == 1.0 for r in rows)
    assert {r["evidence"] for r in rows if r["tag"] == "unknown"} == {"impact: `unknown`"}
    components, impacts = facets(db, "cni")
    assert components == ["AWS VPC CNI", "EKS", "Kubernetes"]  # sorted, canonical, no free tags
    assert impacts == ["partial-outage"]


def test_free_tags_are_normalised_lightly():
    assert (
        normalise_free_tag("  `Frequent   connection failures`. ") == "frequent connection failures"
    )
    assert normalise_free_tag("AWS CNI Plugin") == "AWS CNI Plugin"
    assert normalise_free_tag("**unknown**") == "unknown"


def test_the_same_item_in_two_lists_is_kept_once(tag_settings):
    db = build(tag_settings.db_path, (S("a", "Title", involved=("Kafka",)),))
    now = utcnow()
    with db.conn:
        db["sources"].insert({"id": 2, "name": "other", "location": "https://example.org/o.md"})
        db["story_sources"].insert(
            {"story_id": "a", "source_id": 2, "occurrence": 0, "line": 1,
             "list_involved": json.dumps(["kafka ", "ZooKeeper"]), "list_impact": "[]",
             "first_seen": now, "last_seen": now}
        )  # fmt: skip
    tag_stories(db, tag_settings)
    rows = [(r["tag"], r["original"]) for r in story_tag_rows(db, "a") if r["method"] == "list"]
    assert sorted(rows) == [("Kafka", "Kafka"), ("ZooKeeper", "ZooKeeper")]


# --------------------------------------------------------------------------- rule tags


def test_rule_tagger_ignores_common_words_that_look_like_tools(tag_settings):
    prose = (
        "The migration sparked a long debate. With a new lead at the helm, the team hoped for "
        "a Ray of light after weeks of alerts. Go to the dashboard and look at the graph. "
    )
    db = build(tag_settings.db_path, (S("prose", "A difficult quarter", text=prose * 3),))
    tag_stories(db, tag_settings)
    assert by_method(db, "prose", "rule") == set()
    assert facets(db, "prose")[0] == []


def test_component_named_once_in_passing_is_not_tagged_but_in_the_title_it_is(tag_settings):
    text = (
        "We moved the nightly batch off the old cluster last spring; it used to read from "
        "Kafka but that is another story.\n\n"
        "This post is about PostgreSQL. The primary ran out of connections during a deploy, "
        "and every replica followed within minutes.\n\n"
        "The fix was a connection pooler in front of PostgreSQL and a lower pool size per pod."
    )
    db = build(tag_settings.db_path, (S("pg", "Why Redis was not the problem", text=text),))
    sync_passages(db, settings=tag_settings)  # no embeddings: semantic waits, rules do not
    report = tag_stories(db, tag_settings)
    assert report.semantic_pending == 1
    rows = {r["tag"]: r for r in story_tag_rows(db, "pg") if r["method"] == "rule"}
    assert "Kafka" not in rows
    assert rows["Redis"]["evidence"] == "title: Why Redis was not the problem"
    assert rows["Redis"]["confidence"] == pytest.approx(0.95)
    card = db.execute("SELECT id FROM passages WHERE story_id = 'pg' AND seq = 0").fetchone()[0]
    assert rows["Redis"]["passage_id"] == card
    pg = rows["PostgreSQL"]
    assert (
        pg["evidence"].startswith("2 mentions; first: ") and "about PostgreSQL." in pg["evidence"]
    )
    assert pg["confidence"] == pytest.approx(0.7)
    passage = db.execute("SELECT text FROM passages WHERE id = ?", [pg["passage_id"]]).fetchone()
    assert "PostgreSQL" in passage[0]
    assert facets(db, "pg")[0] == ["PostgreSQL", "Redis"]


def test_snippet_keeps_about_a_hundred_characters_each_side():
    text = "a" * 300 + " Kafka " + "b" * 300
    start = text.index("Kafka")
    result = snippet(text, start, start + 5)
    assert result.startswith("…") and result.endswith("…")
    assert "Kafka" in result and len(result) == 2 + 100 + 5 + 100


def test_impacts_come_from_titles_not_from_everyday_words_in_the_text(tag_settings):
    text = "Requests hit timeouts twice, then the service was overloaded and we rolled back. " * 3
    db = build(
        tag_settings.db_path,
        (S("t", "Total DNS outage in the cluster", text=text),),
    )
    tag_stories(db, tag_settings)
    rule = {(r["kind"], r["tag"]) for r in story_tag_rows(db, "t") if r["method"] == "rule"}
    assert ("impact", "outage") in rule
    assert not {tag for kind, tag in rule if kind == "impact"} - {"outage"}


# --------------------------------------------------------------------------- semantic tags

DEGRADED = (
    "Nothing crashed and no alert fired. Over six weeks our churn prediction model quietly "
    "got worse through data drift: the features it saw in production had drifted away from "
    "the ones it was trained on, and its accuracy slid a little every week.\n\n"
    "The data scientists only noticed when the retention team asked why the model's "
    "scores no longer matched who actually cancelled. Offline evaluation on fresh labels "
    "showed precision down from 0.81 to 0.62.\n\n"
    "We retrained on recent data, added drift monitoring on the input features and now "
    "compare live predictions with outcomes every week."
)


def test_semantic_tagger_finds_model_degradation_without_list_tags(tag_settings, model):
    db = build(
        tag_settings.db_path, (S("churn", "Six weeks of a slowly worsening model", DEGRADED),)
    )
    sync_passages(db, settings=tag_settings)
    embed_passages(db, tag_settings, progress=False)
    report = tag_stories(db, tag_settings)
    assert report.tagged == 1 and report.semantic_pending == 0
    semantic = {r["tag"]: r for r in story_tag_rows(db, "churn") if r["method"] == "semantic"}
    assert "model-degradation" in semantic
    unrelated = {"security-breach", "cost-overrun", "lost-logs", "data-loss", "outage",
                 "elevated-latency", "failed-deployment", "capacity-exhaustion"}  # fmt: skip
    assert not unrelated & set(semantic)
    row = semantic["model-degradation"]
    assert row["confidence"] >= CONFIDENCE_CUT and row["evidence"].startswith("score ")
    assert "alias mentions 1" in row["evidence"]
    passage = db.execute("SELECT kind, story_id FROM passages WHERE id = ?", [row["passage_id"]])
    assert passage.fetchone() == ("text", "churn")
    assert "model-degradation" in facets(db, "churn")[1]


def test_semantic_tags_arrive_once_embeddings_do(tag_settings, model):
    db = build(
        tag_settings.db_path, (S("churn", "Six weeks of a slowly worsening model", DEGRADED),)
    )
    sync_passages(db, settings=tag_settings)
    first = tag_stories(db, tag_settings)
    assert first.semantic_pending == 1 and by_method(db, "churn", "semantic") == set()
    assert tag_stories(db, tag_settings).tagged == 0
    embed_passages(db, tag_settings, progress=False)
    second = tag_stories(db, tag_settings)
    assert second.tagged == 1 and second.semantic_pending == 0
    assert "model-degradation" in by_method(db, "churn", "semantic")


def test_cards_that_name_the_tags_do_not_cause_a_retag(tag_settings, model):
    """The pipeline syncs passages again after tagging (a card lists the story's tags); the
    changed card must not make the next run re-tag the story."""
    db = build(
        tag_settings.db_path, (S("churn", "Six weeks of a slowly worsening model", DEGRADED),)
    )
    for _ in range(2):
        sync_passages(db, settings=tag_settings)
        embed_passages(db, tag_settings, progress=False)
        report = tag_stories(db, tag_settings)
    assert report.tagged == 0 and report.unchanged == 1
    card = db.execute("SELECT text FROM passages WHERE story_id = 'churn' AND seq = 0").fetchone()
    assert "model-degradation" in card[0]


def test_semantic_decisions_rank_the_best_impact_against_its_own_threshold():
    z = {"outage": 1.2, "lost-logs": 1.5, "data-loss": 0.2}
    assert semantic_decisions(z, top=1.0, other=1.3) == {"lost-logs": 1.0}
    assert semantic_decisions(z, top=1.0, other=1.1) == {"lost-logs": 1.0, "outage": 1.1}
    assert semantic_decisions(z, top=2.0, other=1.0) == {"outage": 1.0}


def test_calibrate_recovers_a_separating_threshold_and_reports_held_out_figures():
    taxonomy = load_taxonomy(DATA / "taxonomy.toml")
    impacts = ("outage", "lost-logs")
    rng = np.random.default_rng(7)
    analyses, gold_c, gold_i = {}, {}, {}
    for n in range(20):
        wanted = impacts[n % 2]
        raw = np.array([0.3 if i == wanted else 0.0 for i in impacts]) + rng.normal(0, 0.02, 2)
        sid = f"s{n}"
        scores = SemanticScores(impacts, raw, (1, 1))
        analyses[sid] = StoryAnalysis(sid, (), Mentions({}, {}), scores)
        gold_c[sid], gold_i[sid] = set(), {wanted}
    result = calibrate(
        taxonomy, analyses, gold_c, gold_i, model="m", component_vocabulary=(), corpus="synthetic"
    )
    figures = result.report["impacts"]["global"]
    assert figures["in_sample"]["f1"] == 1.0 and figures["held_out"]["f1"] == 1.0
    cal = result.calibration
    assert cal.impacts == impacts and cal.top < 1.0 and cal.other > 0.0
    again = Calibration.from_json(json.loads(json.dumps(cal.to_json())))
    assert again.top == cal.top and dict(again.mean) == dict(cal.mean)


# --------------------------------------------------------------------------- calibration file


def test_a_missing_calibration_turns_semantic_off_and_a_broken_one_is_an_error(tag_settings):
    db = build(tag_settings.db_path, (S("a", "Kafka lag", involved=("Kafka",)),))
    path = tag_settings.data_dir / CALIBRATION_FILE
    path.write_text("{not json")
    with pytest.raises(TaggingError, match="invalid tagging calibration"):
        tag_stories(db, tag_settings)
    path.unlink()
    report = tag_stories(db, tag_settings)
    assert report.tagged == 1 and any("semantic impacts off" in w for w in report.warnings)
    assert facets(db, "a")[0] == ["Kafka"]
    with pytest.raises(TaggingError, match="cannot read"):
        load_calibration(path)


def test_the_shipped_calibration_matches_the_shipped_taxonomy():
    taxonomy = load_taxonomy(DATA / "taxonomy.toml")
    cal = load_calibration(DATA / CALIBRATION_FILE)
    assert cal.model == "all-MiniLM-L6-v2" and cal.component_min_mentions >= 1
    assert all(taxonomy.impact(i) is not None for i in cal.impacts)
    from mlopsmortem.tagging.calibration import descriptions_digest

    assert cal.descriptions_digest == descriptions_digest(taxonomy)
    held_out = cal.derivation["impacts"]["global"]["held_out"]
    assert set(held_out) >= {"precision", "recall", "f1"}


# --------------------------------------------------------------------------- incremental


STORIES = (
    S("fb", "Missing logs", "Fluent Bit paused its input. Fluent Bit then lost the buffer."),
    S(
        "kafka",
        "Retention ate our events",
        "Kafka retention deleted the data. Kafka consumers were slow.",
    ),
    S("flurbo", "A new tool", "Flurbo crashed at night. Flurbo restarted in a loop."),
    S("listed", "Lists only", involved=("Flurbo",)),
)


def test_unchanged_rerun_tags_nothing_and_rebuild_redoes_everything(tag_settings):
    db = build(tag_settings.db_path, STORIES)
    first = tag_stories(db, tag_settings)
    assert (first.stories, first.tagged, first.unchanged) == (4, 4, 0)
    second = tag_stories(db, tag_settings)
    assert (second.tagged, second.unchanged, second.revalidated, second.tags) == (0, 4, 0, 0)
    assert tag_stories(db, tag_settings, rebuild=True).tagged == 4
    set_text(db, "kafka", "Kafka retention deleted a day of events. Kafka lag grew all night.")
    third = tag_stories(db, tag_settings)
    assert (third.tagged, third.unchanged) == (1, 3)


def test_story_ids_and_removed_stories(tag_settings):
    db = build(
        tag_settings.db_path, (*STORIES, S("gone", "Kafka", involved=("Kafka",), removed=True))
    )
    report = tag_stories(db, tag_settings, story_ids=["kafka", "gone"])
    assert report.tagged == 1
    assert db.execute("SELECT count(DISTINCT story_id) FROM tags").fetchone()[0] == 1
    assert tag_stories(db, tag_settings).tagged == 3


def test_taxonomy_edit_retags_only_the_stories_it_touches(tag_settings):
    db = build(tag_settings.db_path, STORIES)
    tag_stories(db, tag_settings)
    old_version = db.execute("SELECT value FROM meta WHERE key = ?", [META_TAXONOMY_VERSION])
    old_version = old_version.fetchone()[0]
    assert {r["free"] for r in story_tag_rows(db, "listed")} == {1}

    # a new component: the two stories naming it change, the other two keep their tags
    edit_taxonomy(
        tag_settings,
        '[[component]]\nname = "fluent-bit"',
        '[[component]]\nname = "Flurbo"\ncategory = "logging and observability"\n'
        'aliases = ["flurbo"]\n\n[[component]]\nname = "fluent-bit"',
    )
    report = tag_stories(db, tag_settings)
    assert (report.tagged, report.revalidated, report.unchanged) == (2, 2, 0)
    assert report.previous_taxonomy_version == old_version
    new_version = report.taxonomy_version
    assert new_version != old_version
    assert facets(db, "flurbo")[0] == ["Flurbo"] and facets(db, "listed")[0] == ["Flurbo"]
    assert {r["free"] for r in story_tag_rows(db, "listed")} == {0}
    stamped = {r[0] for r in db.execute("SELECT DISTINCT taxonomy_version FROM tags")}
    assert stamped == {new_version}
    meta = db.execute("SELECT value FROM meta WHERE key = ?", [META_TAXONOMY_VERSION]).fetchone()
    assert meta[0] == new_version
    versions = {r[0] for r in db.execute(f"SELECT taxonomy_version FROM {INPUTS_TABLE}")}
    assert versions == {new_version}

    # renaming a tag re-tags the stories that had it, and only them
    edit_taxonomy(tag_settings, 'name = "fluent-bit"', 'name = "Fluent Bit"')
    renamed = tag_stories(db, tag_settings)
    assert (renamed.tagged, renamed.revalidated) == (1, 3)
    assert facets(db, "fb")[0] == ["Fluent Bit"]

    # an exclusion added to Kafka: "Kafka retention" no longer counts, one mention is left
    edit_taxonomy(
        tag_settings,
        'name = "Kafka"\n',
        'name = "Kafka"\nexclude = ["Kafka retention"]\n',
    )
    excluded = tag_stories(db, tag_settings)
    assert (excluded.tagged, excluded.revalidated) == (1, 3)
    assert facets(db, "kafka")[0] == []

    assert tag_stories(db, tag_settings).tagged == 0


def test_reordering_the_taxonomy_retags_everything(tag_settings):
    db = build(tag_settings.db_path, STORIES)
    tag_stories(db, tag_settings)
    path = tag_settings.taxonomy_file
    head, *blocks = path.read_text().split("\n[[component]]\n")
    blocks[0], blocks[1] = blocks[1], blocks[0]  # swap the first two components
    path.write_text("\n[[component]]\n".join([head, *blocks]))
    report = tag_stories(db, tag_settings)
    assert report.tagged == 4 and "reordered" in (report.full_retag_reason or "")


def test_tag_rows_carry_the_taxonomy_version_and_evidence(tag_settings):
    db = build(tag_settings.db_path, STORIES)
    report = tag_stories(db, tag_settings)
    rows = story_tag_rows(db, "fb")
    assert rows and {r["taxonomy_version"] for r in rows} == {report.taxonomy_version}
    assert all(r["evidence"] for r in rows)
    assert report.to_dict()["by_method"] == dict(report.by_method)
    json.dumps(report.to_dict())  # the pipeline stores it as JSON


def test_tag_row_shape():
    row = Tag("component", "Kafka", "rule", 0.71234, "e", 3).row("s", "v")
    assert row == {
        "story_id": "s", "kind": "component", "tag": "Kafka", "method": "rule", "free": 0,
        "original": None, "confidence": 0.7123, "evidence": "e", "passage_id": 3,
        "taxonomy_version": "v",
    }  # fmt: skip


# --------------------------------------------------------------------------- Datasette


@pytest.mark.asyncio
async def test_datasette_facets_over_the_component_and_impact_arrays(tag_settings):
    from datasette.app import Datasette

    db = build(
        tag_settings.db_path,
        (
            S("a", "Kafka lag", involved=("Kafka", "k8s"), impact=("lost events",)),
            S("b", "Kafka again", involved=("kafka",), impact=("downtime",)),
            S("c", "Redis memory", involved=("Redis", "kubernetes")),
        ),
    )
    tag_stories(db, tag_settings)
    db.close()
    datasette = Datasette([str(tag_settings.db_path)])
    response = await datasette.client.get("/kb/stories.json?_facet_array=components")
    assert response.status_code == 200
    results = response.json()["facet_results"]["components"]["results"]
    assert {r["value"]: r["count"] for r in results} == {"Kafka": 2, "Kubernetes": 2, "Redis": 1}
    response = await datasette.client.get(
        "/kb/stories.json?_facet_array=impacts&_facet_array=components&components__arraycontains=Kafka"
    )
    data = response.json()
    impacts = {r["value"]: r["count"] for r in data["facet_results"]["impacts"]["results"]}
    assert impacts == {"data-loss": 1, "outage": 1}
    assert data["filtered_table_rows_count"] == 2
