"""What the HTML pages tell a reader beyond the results themselves: which hits contain the
query's words, the query kept after a refusal, the story's title in the browser tab, and the
keyboard shortcuts (skip to results, mode change submits)."""

from __future__ import annotations

import html
import re

import pytest

from tests.test_plugin import ds, get_html, get_json, kb_path, search_path, settings

__all__ = ["ds", "kb_path", "settings"]  # fixtures used below

HIT = re.compile(
    r'<li class="mm-hit" data-story-id="([^"]+)">(.*?)</li>\s*(?=<li class="mm-hit"|</ol>)', re.S
)


async def hits_and_page(ds, **params) -> tuple[list[dict], str, dict[str, str]]:
    data = await get_json(ds, search_path(**params))
    page = await get_html(ds, search_path(False, **params))
    cards = {story_id: body for story_id, body in HIT.findall(page)}
    assert list(cards) == [h["id"] for h in data["results"]]
    return data["results"], page, cards


@pytest.mark.asyncio
async def test_hybrid_results_say_which_contain_the_words(ds) -> None:
    results, page, cards = await hits_and_page(ds, q="lost logs buffer", mode="hybrid")
    with_words = [h for h in results if h["matched_by"] != "semantic"]
    meaning_only = [h for h in results if h["matched_by"] == "semantic"]
    assert with_words and meaning_only  # the fixture has both kinds for this query
    assert f"{len(with_words)} contain your words, the others match by meaning only" in page
    for hit in results:
        assert ("meaning only</span>" in cards[hit["id"]]) == (hit["matched_by"] == "semantic")


@pytest.mark.asyncio
async def test_a_query_no_story_contains_says_so(ds) -> None:
    results, page, cards = await hits_and_page(ds, q="zzqx wvvyk", mode="hybrid")
    assert results and all(h["matched_by"] == "semantic" for h in results)
    assert "no story contains your words; these are the nearest by meaning" in page


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["keyword", "semantic"])
async def test_other_modes_carry_no_word_badges(ds, mode) -> None:
    results, page, cards = await hits_and_page(ds, q="lost logs buffer", mode=mode)
    assert results
    assert "contain your words" not in page and "meaning only</span>" not in page


@pytest.mark.asyncio
async def test_a_refused_query_stays_in_the_box(ds, settings) -> None:
    query = "kafka lag " * (settings.max_query_chars // 10 + 5)
    page = await get_html(ds, search_path(False, q=query), status=400)
    box = re.search(r'<input type="search" name="q" value="([^"]*)"', page)
    assert box is not None
    assert html.unescape(box.group(1)) == query[: settings.max_query_chars]


@pytest.mark.asyncio
async def test_story_row_page_title_is_the_story_title(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title is not None and "Fluent Bit" in html.unescape(title.group(1))


@pytest.mark.asyncio
async def test_keyboard_shortcuts(ds) -> None:
    page = await get_html(ds, search_path(False, q="dns"))
    assert '<a class="mm-skip" href="#mm-results">Skip to results</a>' in page
    assert 'id="mm-results"' in page
    assert page.count('onchange="this.form.submit()"') == 3  # the three modes
    empty = await get_html(ds, "/-/search")
    assert "mm-skip" not in empty and "onchange" not in empty  # nothing to re-run yet


@pytest.mark.asyncio
async def test_story_row_page_heading_is_the_title_with_a_way_back(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert heading is not None and "Fluent Bit" in html.unescape(heading.group(1))
    assert '<a href="/-/search">← Search failure stories</a>' in page
    assert "stories: fluentbit" in page  # the row's key is still shown


@pytest.mark.asyncio
async def test_similar_stories_lead_back_to_the_search_they_came_from(ds) -> None:
    page = await get_html(ds, search_path(False, q="lost logs"))
    link = re.search(r'<a class="mm-similar" href="([^"]+)"', page)
    assert link is not None
    url = html.unescape(link.group(1))
    assert url.startswith("/-/similar/") and url.endswith("?q=lost+logs")
    similar = await get_html(ds, url)
    assert '<a href="/-/search?q=lost+logs">← Search</a>' in similar
    plain = await get_html(ds, url.split("?")[0])
    assert '<a href="/-/search">← Search</a>' in plain
