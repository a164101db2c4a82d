"""What the HTML pages tell a reader beyond the results themselves: which hits contain the
query's words, the query kept after a refusal, the story's title in the browser tab, and the
keyboard shortcuts (skip to results, a clicked mode re-runs), the way back from a story."""

from __future__ import annotations

import html
import re

import pytest

from mlopsmortem.web.params import MAX_FILTER_VALUES
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
    # a click on a mode re-runs the search; arrow keys (event.detail 0) only move the choice
    assert page.count('onclick="if (event.detail) this.form.submit()"') == 3
    assert "onchange" not in page
    empty = await get_html(ds, "/-/search")
    assert "mm-skip" not in empty and "onclick" not in empty  # nothing to re-run yet
    # narrow screens show the filters after the results: a link leads down to them
    assert '<a class="mm-filters-link" href="#mm-filters">' in page
    assert 'id="mm-filters"' in page and '<a href="#mm-filters">to narrow</a>' in empty


@pytest.mark.asyncio
async def test_story_row_page_heading_is_the_title_with_a_way_back(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit")
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert heading is not None and "Fluent Bit" in html.unescape(heading.group(1))
    assert '<a href="/-/search">← Search failure stories</a>' in page
    assert "stories: fluentbit" in page  # the row's key is still shown


def links(page: str, css_class: str | None = None) -> list[str]:
    attr = f' class="{css_class}"' if css_class else ""
    return [html.unescape(u) for u in re.findall(rf'<a{attr} href="([^"]+)"', page)]


SEARCH = {"q": "lost logs", "mode": "keyword", "component": "logging", "offset": "1", "n": "1"}
# the search's page size travels as sn: n is the similar page's own
STATE = "q=lost+logs&mode=keyword&component=logging&sn=1&offset=1"
BACK = "q=lost+logs&mode=keyword&component=logging&n=1&offset=1"


@pytest.mark.asyncio
async def test_story_and_similar_pages_lead_back_to_the_search_they_came_from(ds) -> None:
    page = await get_html(ds, search_path(False, **SEARCH))
    card = HIT.search(page)
    assert card is not None
    story_url = next(u for u in links(card.group(2)) if u.startswith("/kb/stories/"))
    similar_url = links(card.group(2), "mm-similar")[0]
    assert story_url.endswith("?" + STATE) and similar_url.endswith("?" + STATE)
    back = f'<a href="/-/search?{html.escape(BACK)}">← Results for “lost logs”</a>'
    # the story's page and its similar stories lead back to the same search, page and filters
    story = await get_html(ds, story_url)
    assert back in story and f"stories: {card.group(1)}" in story
    assert all(u.endswith("?" + STATE) for u in links(story) if u.startswith("/-/similar/"))
    similar = await get_html(ds, similar_url)
    assert back in similar
    onwards = [
        u
        for u in links(similar)
        if u.startswith(("/kb/stories/", "/-/similar/")) and ".json" not in u
    ]
    assert onwards and all(u.endswith("?" + STATE) for u in onwards)
    # without a search to go back to, the link is to the search page
    for plain in (story_url.split("?")[0], similar_url.split("?")[0]):
        assert '<a href="/-/search">← Search failure stories</a>' in await get_html(ds, plain)


@pytest.mark.asyncio
async def test_a_way_back_with_bad_parameters_keeps_the_typed_query(ds) -> None:
    page = await get_html(ds, "/-/similar/fluentbit?q=dns&mode=nonsense&since=x")
    assert '<a href="/-/search?q=dns">← Results for “dns”</a>' in page
    hostile = await get_html(ds, "/kb/stories/fluentbit?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in hostile and "&lt;script&gt;alert(1)" in hostile


@pytest.mark.asyncio
async def test_the_way_back_keeps_the_search_page_size_apart_from_the_similar_pages(ds) -> None:
    page = await get_html(ds, "/-/similar/fluentbit?q=dns&sn=20&offset=20&n=2")
    assert '<a href="/-/search?q=dns&amp;n=20&amp;offset=20">← Results for “dns”</a>' in page
    assert len(HIT.findall(page)) == 2  # the similar page's own n
    data = await get_json(ds, "/-/similar/fluentbit.json?q=dns&sn=20&n=2")
    assert len(data["results"]) == 2


@pytest.mark.asyncio
async def test_the_way_back_without_a_query_drops_the_page(ds) -> None:
    page = await get_html(ds, "/kb/stories/fluentbit?component=logging&sn=20&offset=20")
    assert '<a href="/-/search?component=logging">← Back to the results</a>' in page


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "page",
    [
        "sn=0",
        "sn=-1",
        "sn=x",
        "sn=²",
        "sn=51",
        "offset=5000",
        "sn=" + "9" * 4301,
        "offset=" + "9" * 4301,
    ],
)
async def test_a_bad_page_size_or_offset_keeps_the_rest_of_the_way_back(ds, page) -> None:
    html_page = await get_html(
        ds, f"/-/similar/fluentbit?q=dns&mode=keyword&component=logging&{page}"
    )
    back = "/-/search?q=dns&amp;mode=keyword&amp;component=logging"
    assert f'<a href="{back}">← Results for “dns”</a>' in html_page


@pytest.mark.asyncio
async def test_the_way_back_names_a_long_query_shortly(ds) -> None:
    query = "fluent bit dropped chunks " * 20
    page = await get_html(ds, f"/kb/stories/fluentbit?q={query.replace(' ', '+')}")
    label = re.search(r"← Results for “([^”]*)”", page)
    assert label is not None and len(label.group(1)) <= 60
    assert label.group(1) == query[:59].strip() + "…"  # no space before the ellipsis
    assert html.escape(f"/-/search?q={query.strip().replace(' ', '+')}") in page


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["mode=nonsense", "since=1", "since=x", "since=" + "9" * 4301])
async def test_a_bad_mode_or_year_keeps_the_rest_of_the_way_back(ds, bad) -> None:
    page = await get_html(ds, f"/-/similar/fluentbit?q=dns&component=logging&sn=20&{bad}")
    assert '<a href="/-/search?q=dns&amp;component=logging&amp;n=20">' in page


@pytest.mark.asyncio
async def test_a_refused_way_back_keeps_the_typed_query_without_spaces_around(ds) -> None:
    too_many = "&".join(f"component=c{i}" for i in range(MAX_FILTER_VALUES + 1))
    page = await get_html(ds, f"/kb/stories/fluentbit?q=++dns++&{too_many}")
    assert '<a href="/-/search?q=dns">← Results for “dns”</a>' in page
    blank = await get_html(ds, f"/kb/stories/fluentbit?q=+++&{too_many}")
    assert '<a href="/-/search">← Search failure stories</a>' in blank
