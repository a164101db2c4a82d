from pathlib import Path

import pytest

from mlopsmortem.lists.formats import (
    FAILURE_STORY,
    RESOURCE,
    normalise_kind,
    parse_list,
    split_items,
)

from .conftest import FIXTURES


def parse(name: str, **kwargs):
    path = FIXTURES / name
    return parse_list(path.read_text(), name=str(path), **kwargs)


def test_afs_entries_with_title_publisher_kind_year_and_hand_tags() -> None:
    parsed = parse("afs.md")
    assert parsed.format == "afs"
    first = parsed.entries[0]
    assert first.title == "Why the collector dropped every log line"
    assert first.publisher == "Acme Cloud"
    assert first.kind == "blog post"
    assert first.year == 2021
    assert first.category == FAILURE_STORY
    assert first.involved == ("fluent-bit", "`Mem_Buf_Limit`", '"buffer, overflow"')
    assert first.impact == ("lost application logs in production",)
    assert first.line == 7
    assert first.url.startswith("https://blog.acme.example/collector-dropped-logs/")
    assert "* involved: fluent-bit" in first.list_text
    second = parsed.entries[1]
    assert (second.kind, second.year) == ("postmortem", 2019)
    assert second.involved == ("CoreDNS", "conntrack")  # trailing comma dropped
    assert second.impact == ("partial production outage", "high latency")
    talk = parsed.entries[2]
    assert (talk.publisher, talk.kind, talk.year) == ("Beta", "talk", 2020)
    archived = parsed.entries[3]
    assert (archived.title, archived.publisher, archived.year) == (
        "Old story, now only archived",
        "Gamma",
        2018,
    )


def test_afs_bad_entries_are_reported_with_file_and_line_and_skipped() -> None:
    parsed = parse("afs.md")
    problems = [str(p) for p in parsed.problems]
    path = str(FIXTURES / "afs.md")
    assert f"{path}:17: nested item is neither 'involved:' nor 'impact:'" in problems
    assert any(p.startswith(f"{path}:18: list item has no link") for p in problems)
    assert f"{path}:19: link has no title text" in problems
    assert len(parsed.entries) == 4  # the entry with the odd nested item is still kept


def test_badges_toc_anchors_contributors_and_thanks_are_not_stories() -> None:
    urls = {e.url for e in parse("afs.md").entries}
    assert not any("shields.io" in u or "ci.example.org" in u for u in urls)
    assert not any("github.com" in u or "twitter.com" in u for u in urls)


def test_danluu_paragraphs_sections_candidates_and_analysis() -> None:
    parsed = parse("danluu.md")
    assert parsed.format == "danluu"
    stories = [e for e in parsed.entries if e.category == FAILURE_STORY]
    assert [e.publisher for e in stories] == ["Acme", "Example Corp", "Beta"]
    acme = stories[0]
    assert acme.section == "A list of outages > Config Errors"
    assert acme.summary.startswith("A bad flag in 2018 took down every region.")
    assert acme.year == 2018
    assert acme.title == "Acme: A bad flag in 2018 took down every region"
    assert stories[2].section == "A list of outages > Hardware Failures"
    # the first link is the story; "HN discussion" inside the summary is not another story
    assert not any("news.example" in e.url for e in parsed.entries)
    resources = [e for e in parsed.entries if e.category == RESOURCE]
    assert [(e.title, e.url) for e in resources] == [
        ("How things fail", "https://papers.example/how-things-fail.pdf")
    ]
    assert [c.label for c in parsed.candidates] == ["Gamma's incidents", "Delta list"]
    assert not any("github.com" in e.url for e in parsed.entries)
    assert [str(p).rsplit(":", 1)[-1].strip() for p in parsed.problems] == [
        "entry does not start with a link; skipped"
    ]


def test_resource_list_tags_titles_publishers_and_descriptions() -> None:
    parsed = parse("resources.md")
    assert parsed.format == "resources"
    by_url = {e.url: e for e in parsed.entries}
    why = by_url["https://journal.example/why-models-fail"]
    assert (why.tag, why.title, why.publisher, why.kind, why.year) == (
        "introductionary",
        "Why models fail in production",
        "Example Journal",
        "article",
        2019,
    )
    assert why.section == "ML resources > Reading > Motivation"
    assert by_url["https://papers.example/hidden-debt.pdf"].tag == "cult"
    assert by_url["https://papers.example/hidden-debt.pdf"].kind == "paper"
    assert by_url["https://www.youtube.com/watch?v=xyz&ab_channel=ConfOrg"].kind == "talk"
    assert by_url["https://dbt.example/docs"].summary == "ELT instead of ETL"
    assert by_url["https://metaflow.example/"].summary == "a python library, by"
    assert by_url["https://outerbounds.example/"].title == "Outerbounds"
    assert by_url["https://redis.example/feature-stores"].title == "Redis"
    assert all(e.category == RESOURCE for e in parsed.entries)
    assert len(parsed.entries) == 9


def test_generic_lists_take_every_link_with_its_heading_path() -> None:
    parsed = parse("generic.md")
    assert parsed.format == "generic"
    urls = [e.url for e in parsed.entries]
    assert urls == [
        "https://first.example/a",
        "https://queues.example/story",
        "https://one.example/x",
        "https://two.example/y",
    ]
    assert parsed.entries[1].section == "Reading list > Incidents"
    assert [c.url for c in parsed.candidates] == ["https://lists.example/more"]


def test_named_format_overrides_detection_and_unknown_format_is_an_error() -> None:
    assert parse("afs.md", format="generic").format == "generic"
    with pytest.raises(ValueError, match="unknown list format"):
        parse("afs.md", format="nope")


def test_urls_with_parentheses_and_escapes_survive_parsing(tmp_path: Path) -> None:
    text = (
        "* [Bash bug - Wiki - article 2014]"
        "(https://en.wikipedia.org/wiki/Shellshock_(software_bug))\n"
        "* [Space - Org - paper 2010](https://x.example/How%20Complex%20Systems%20Fail.pdf)\n"
    )
    parsed = parse_list(text, name="inline.md", format="afs")
    assert [e.url for e in parsed.entries] == [
        "https://en.wikipedia.org/wiki/Shellshock_(software_bug)",
        "https://x.example/How%20Complex%20Systems%20Fail.pdf",
    ]


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a, b, c", ("a", "b", "c")),
        ("EKS, AWS CNI Plugin,", ("EKS", "AWS CNI Plugin")),
        ('x, "graceful, shutdown", y', ("x", '"graceful, shutdown"', "y")),
        ("`--a,b`, c", ("`--a,b`", "c")),
        ("", ()),
    ],
)
def test_split_items(text: str, items: tuple[str, ...]) -> None:
    assert split_items(text) == items


@pytest.mark.parametrize(
    ("raw", "url", "kind"),
    [
        ("blog post", "", "blog post"),
        ("postmortem", "", "postmortem"),
        ("Post-Mortem", "", "postmortem"),
        ("incident report", "", "incident report"),
        ("KubeCon Barcelona", "", "talk"),
        ("ContainerDays EU", "", "talk"),
        ("Dutch kubernetes meetup slides", "", "talk"),
        (None, "https://www.youtube.com/watch?v=1", "talk"),
        ("paper", "", "paper"),
        (None, "", None),
    ],
)
def test_normalise_kind(raw, url, kind) -> None:
    assert normalise_kind(raw, url) == kind


def test_a_link_with_another_scheme_is_reported_as_unsupported_not_missing() -> None:
    text = (
        "* [A story - Org - blog post 2020](https://a.example/story)\n"
        "* [Mirror - Org - postmortem 2019](ftp://files.example/postmortem.txt)\n"
        "* [Gopher - Org - postmortem 2018](GOPHER://old.example/1)\n"
        "* plain words, no link at all\n"
    )
    parsed = parse_list(text, name="list.md", format="afs")
    assert [e.url for e in parsed.entries] == ["https://a.example/story"]
    assert [str(p) for p in parsed.problems] == [
        "list.md:2: unsupported scheme ftp: 'ftp://files.example/postmortem.txt'",
        "list.md:3: unsupported scheme gopher: 'GOPHER://old.example/1'",
        "list.md:4: list item has no link: 'plain words, no link at all'",
    ]
