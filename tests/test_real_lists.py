"""The real curated lists in ../shared/corpus/lists; skipped where that folder is absent."""

from collections import Counter

import pytest

from mlopsmortem.lists.formats import FAILURE_STORY, RESOURCE, parse_list
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources

from .conftest import SHARED_CORPUS

LISTS = SHARED_CORPUS / "lists"
pytestmark = pytest.mark.skipif(not LISTS.is_dir(), reason=f"{LISTS} not present")


def parse(name: str):
    path = LISTS / name
    return parse_list(path.read_text(encoding="utf-8"), name=str(path))


def test_kubernetes_list_gives_50_stories_all_with_involved_and_impact() -> None:
    parsed = parse("k8s-failure-stories.md")
    assert parsed.format == "afs"
    assert len(parsed.entries) == 50
    assert all(e.involved and e.impact for e in parsed.entries)
    assert all(e.title and e.publisher and e.year for e in parsed.entries)
    assert parsed.problems == ()


def test_danluu_gives_190_failure_stories_in_six_sections_two_resources_14_candidates() -> None:
    parsed = parse("danluu-post-mortems.md")
    assert parsed.format == "danluu"
    stories = [e for e in parsed.entries if e.category == FAILURE_STORY]
    assert len(stories) == 190
    sections = Counter(e.section.split(" > ")[-1] for e in stories)
    assert set(sections) == {
        "Config Errors",
        "Hardware/Power Failures",
        "Conflicts",
        "Time",
        "Database",
        "Uncategorized",
    }
    resources = [e for e in parsed.entries if e.category == RESOURCE]
    assert len(resources) == 2
    assert {e.section.split(" > ")[-1] for e in resources} == {"Analysis"}
    assert len(parsed.candidates) == 14
    assert all(e.publisher and e.summary for e in stories)


def test_awful_mlops_gives_two() -> None:
    parsed = parse("awful-mlops.md")
    assert len(parsed.entries) == 2
    assert parsed.entries[0].involved == ("fluent-bit", "missing logs", "Fluentd")


def test_mlops_resources_are_resources_with_section_and_tag() -> None:
    parsed = parse("mlops-resources.md")
    assert parsed.format == "resources"
    assert all(e.category == RESOURCE for e in parsed.entries)
    assert {e.url for e in parsed.entries} == {
        link for link in _links(LISTS / "mlops-resources.md")
    }
    tags = Counter(e.tag for e in parsed.entries if e.tag)
    assert set(tags) == {"cult", "introductionary"}
    assert all(e.section for e in parsed.entries)


def test_no_toc_badge_or_contributor_link_becomes_a_story() -> None:
    for name in ("k8s-failure-stories.md", "danluu-post-mortems.md", "awful-mlops.md"):
        for entry in parse(name).entries:
            assert not entry.url.startswith("#")
            assert "Contributors" not in (entry.section or "")
            assert "Contributing" not in (entry.section or "")
            assert "Thanks" not in (entry.section or "")


def test_all_real_lists_ingest_with_no_problems(db, settings) -> None:
    specs = [SourceSpec(p.stem, str(p)) for p in sorted(LISTS.glob("*.md"))]
    report = ingest_sources(db, specs, settings)
    assert not report.failed
    assert all(not s.problems for s in report.sources)
    # 2 + 192 + 50 + 28 unique links; no link is shared between these lists
    assert db["stories"].count == 272
    again = ingest_sources(db, specs, settings)
    assert again.new_story_ids == [] and again.totals()["updated"] == 0


def _links(path):
    import re

    return set(re.findall(r"\]\((https?://[^)\s]+)\)", path.read_text()))
