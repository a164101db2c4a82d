"""Impact statements: sentences that say an impact happened ("three engineers spent two days",
"was down for 3 hours") tag it with the rule method; taxonomy validation and incremental
re-tagging cover them like aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsmortem.tagging.impact_statements import find_statements
from mlopsmortem.tagging.run import tag_stories
from mlopsmortem.tagging.store import story_tag_rows
from mlopsmortem.tagging.taxonomy import TaxonomyError, load_taxonomy
from tests.support.tagging_kb import S, build, edit_taxonomy, facets

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DATA / "taxonomy.toml")


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "Three engineers spent most of two days on diagnosis and cleanup.",
            "lost-engineering-time",
        ),
        ("Roughly 40 engineer-hours went into workarounds.", "lost-engineering-time"),
        (
            "Getting back to a consistent state took three engineers most of a week.",
            "lost-engineering-time",
        ),
        ("Four researchers lost most of two working days.", "lost-engineering-time"),
        ("We spent about four days debugging the driver.", "lost-engineering-time"),
        ("The API was fully unavailable for 38 minutes.", "outage"),
        ("The document service was down for 3 hours 12 minutes.", "outage"),
        ("Full control plane write outage for 47 minutes.", "outage"),
        ("It was a 30min outage for every tenant.", "outage"),
        # not statements: no duration, no people, or time that was not lost to the incident
        ("The site is down for maintenance.", None),
        ("We spent two days at the conference in May.", None),
        ("Jobs usually finish within three days.", None),
        ("The outage taught us a lot about retries.", None),
        ("Two engineers reviewed the change.", None),
        ("Multiple engineers worked in shifts throughout the weekend.", "lost-engineering-time"),
        # excluded by the sentence around the match, or not matched at all
        ("Our SLO allows 43 minutes of downtime per month.", None),
        ("We scheduled 2 hours of downtime for the database migration.", None),
        ("Customers in eu-west-1 saw 20 minutes of downtime while the rest were fine.", None),
        ("One replica was down for 2 hours but traffic failed over.", None),
        ("A single node was unreachable for 15 minutes.", None),
        ("The staging cluster was offline for 3 days.", None),
        ("Conversion was down 12% for 3 hours.", None),
        ("The pods were unavailable for 2 min during the rollout, as designed.", None),
        ("One of the engineers noticed that the training job took 12 hours.", None),
        ("Two teams lost access to the dashboard for several hours.", None),
        ("A few people lost their sessions for two hours.", None),
        ("The team weeks later found the bug.", None),
        ("We estimate the migration will take 40 engineer-hours.", None),
        ("Automation saves us about 10 engineer-days per quarter.", None),
    ],
)
def test_statements_table(taxonomy, sentence, expected):
    found = {m.tag for m in find_statements(taxonomy.statement_rules, sentence)}
    assert found == ({expected} if expected else set())


def test_a_statement_tags_the_impact_with_its_sentence_as_evidence(tag_settings):
    text = (
        "The nightly export job wrote to the wrong bucket.\n\n"
        "Nobody noticed for a while. Three engineers spent most of two days on cleanup.\n\n"
        "We added a check to the deploy pipeline."
    )
    db = build(tag_settings.db_path, (S("s", "An export went astray", text=text),))
    tag_stories(db, tag_settings)
    rows = [r for r in story_tag_rows(db, "s") if r["method"] == "rule" and r["kind"] == "impact"]
    assert [r["tag"] for r in rows] == ["lost-engineering-time"]
    assert rows[0]["evidence"].startswith("statement: ")
    assert "Three engineers spent most of two days" in rows[0]["evidence"]
    assert "lost-engineering-time" in facets(db, "s")[1]


def test_adding_a_statement_retags_only_the_stories_it_matches(tag_settings):
    db = build(
        tag_settings.db_path,
        (
            S("hit", "Queue backlog", "The payment queue stalled for a while; refunds froze."),
            S("miss", "Other story", "A certificate expired on the ingress."),
        ),
    )
    tag_stories(db, tag_settings)
    assert "data-loss" not in facets(db, "hit")[1]
    edit_taxonomy(
        tag_settings,
        'id = "data-loss"\n',
        "id = \"data-loss\"\nstatements = ['\\brefunds froze\\b']\n",
    )
    report = tag_stories(db, tag_settings)
    assert (report.tagged, report.revalidated) == (1, 1)
    assert "data-loss" in facets(db, "hit")[1]

    # and removing it again re-tags the story that had it
    edit_taxonomy(tag_settings, "statements = ['\\brefunds froze\\b']\n", "")
    report = tag_stories(db, tag_settings)
    assert (report.tagged, report.revalidated) == (1, 1)
    assert "data-loss" not in facets(db, "hit")[1]


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ("['(unclosed']", "statement 1 is not a valid regular expression"),
        ("['a?']", "statement 1 matches the empty string"),
        ("'not a list'", "`statements` must be a list of non-empty strings"),
        ("['x']\nstatement_exclude = ['[z-a]']", "statement exclusion 1 is not a valid"),
    ],
)
def test_bad_statements_are_taxonomy_errors_naming_the_entry(tmp_path, statements, message):
    path = tmp_path / "taxonomy.toml"
    path.write_text(
        f'[[impact]]\nid = "outage"\nname = "Outage"\ndescription = "Down."\n'
        f"statements = {statements}\n"
    )
    with pytest.raises(TaxonomyError, match=message) as caught:
        load_taxonomy(path)
    assert "impact #1 ('Outage')" in str(caught.value)


def test_an_exclusion_drops_a_statement_only_in_its_own_sentence(taxonomy):
    text = "We scheduled downtime for Friday. On Monday the API was down for 3 hours."
    found = find_statements(taxonomy.statement_rules, text)
    assert [m.alias for m in found] == ["was down for 3 hours"]


# --------------------------------------------------------------------------- impact sections


def test_an_impact_line_states_the_impact_but_the_same_words_in_running_text_do_not(
    tag_settings,
):
    cause = "The fluent-bit buffer filled up while Elasticsearch was slow; log lines lost. " * 2
    stated = "## Summary\n\nA slow Elasticsearch cluster.\n\n**Impact:** ~38 % of log lines lost.\n"
    db = build(
        tag_settings.db_path,
        (S("stated", "A buffer story", text=stated), S("cause", "Another story", text=cause)),
    )
    tag_stories(db, tag_settings)
    rows = {r["tag"]: r for r in story_tag_rows(db, "stated") if r["method"] == "rule"}
    assert rows["lost-logs"]["evidence"].startswith("impact section: ")
    assert "lost-logs" in facets(db, "stated")[1]
    assert "lost-logs" not in facets(db, "cause")[1]


def test_impact_spans_cover_headings_impact_lines_and_impact_sections():
    from mlopsmortem.tagging.impact_statements import impact_spans

    text = (
        "# Search went down\n\nWe saw timeouts.\n\n- Impact: checkout errors\n\n"
        "## Impact\n\nPayments failed for an hour.\n\nMore words.\n\n## Timeline\n\nlater timeouts"
    )
    covered = [text[a:b] for a, b in impact_spans(text)]
    assert "Search went down" in covered
    assert any("checkout errors" in c for c in covered)
    assert any("Payments failed" in c and "More words" in c for c in covered)
    assert not any("We saw timeouts" in c or "later timeouts" in c for c in covered)


# --------------------------------------------------------------------------- list summaries


def test_a_summary_only_story_is_tagged_from_its_summary(tag_settings):
    summary = (
        "A bad config pushed to every edge router took down the whole network for two hours; "
        "PostgreSQL was fine."
    )
    db = build(tag_settings.db_path, (S("edge", "Example Corp", summary=summary),))
    tag_stories(db, tag_settings)
    rows = {r["tag"]: r for r in story_tag_rows(db, "edge") if r["method"] == "rule"}
    assert rows["outage"]["evidence"].startswith("impact section: ")
    # one mention in a one-paragraph summary is what the list author says was involved
    assert rows["PostgreSQL"]["evidence"].startswith("1 mentions; first: ")
    components, impacts = facets(db, "edge")
    assert "outage" in impacts and "PostgreSQL" in components
