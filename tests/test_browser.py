"""One real browser session against a running `mlopsmortem serve` on the test knowledge base.

Needs Debian's chromium at /usr/bin/chromium (driven by the `playwright` package, without
Playwright's own browser download); skips when it is missing.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.test_plugin import build_plugin_kb

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUERY = "logs missing after elasticsearch was down"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "no browser at /usr/bin/chromium: install Debian's chromium "
            "(apt-get install -y chromium) to enable the browser test"
        )


@contextmanager
def serving(path: Path) -> Iterator[str]:
    """`mlopsmortem serve` on the knowledge base at `path`, on a free port: its base URL."""
    port = free_port()
    log = path.parent / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlopsmortem",
                "serve",
                "--db",
                str(path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlopsmortem serve exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(base + "/-/search", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlopsmortem serve did not answer: {log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    require_chromium()
    path = build_plugin_kb(tmp_path_factory.mktemp("browser") / "kb.db")
    with serving(path) as base:
        yield base


def test_search_facet_and_similar_in_a_real_browser(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)  # the first semantic query may wait for the model
            page.goto(server + "/-/search")
            expect(page).to_have_title("Search failure stories")

            # type a query, submit with Enter: the expected story comes first
            page.get_by_role("searchbox", name="Search query").fill(QUERY)
            page.keyboard.press("Enter")
            page.wait_for_url("**/-/search?q=*")
            hits = page.locator("li.mm-hit")
            expect(hits.first).to_have_attribute("data-story-id", "fluentbit")
            expect(hits.first.locator("h3")).to_contain_text("How Fluent Bit silently dropped")
            expect(hits.first.locator(".mm-snippet mark").first).to_be_visible()
            page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

            # arrow keys move between the modes without leaving the page; a click re-runs
            searched = page.url
            page.get_by_role("radio", name=re.compile("^hybrid")).focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            expect(page.get_by_role("radio", name=re.compile("^keyword"))).to_be_checked()
            assert page.url == searched
            page.get_by_role("radio", name=re.compile("^semantic")).click()
            page.wait_for_url("**mode=semantic*")
            page.get_by_role("radio", name=re.compile("^hybrid")).click()
            page.wait_for_url("**mode=hybrid*")

            # on a phone the filters follow the results, and a link leads down to them
            page.set_viewport_size({"width": 390, "height": 844})
            filters = page.locator("#mm-filters")
            results_box = page.locator("#mm-results").bounding_box()
            filters_box = filters.bounding_box()
            assert results_box is not None and filters_box is not None
            assert filters_box["y"] > results_box["y"]
            page.get_by_role("link", name="Filters ↓").click()
            expect(filters).to_be_in_viewport()
            page.screenshot(path=str(tmp_path / "phone.png"))
            page.set_viewport_size({"width": 1280, "height": 900})
            expect(page.get_by_role("link", name="Filters ↓")).to_be_hidden()

            # click a facet: every result now carries that component, the facet shows selected
            facet = page.locator('[data-facet="component"] a[data-value="kubernetes"]')
            facet.click()
            page.wait_for_url("**component=kubernetes*")
            expect(page.locator('[data-facet="component"] a.mm-selected')).to_have_attribute(
                "data-value", "kubernetes"
            )
            expect(page.locator(".mm-active")).to_contain_text("Component: kubernetes")
            count = hits.count()
            assert count >= 1
            for i in range(count):
                expect(hits.nth(i).locator(".mm-chip", has_text="kubernetes")).to_have_count(1)
            expect(hits.first).to_have_attribute("data-story-id", "fluentbit")
            page.screenshot(path=str(tmp_path / "facet.png"), full_page=True)

            # open the similar stories of the first result
            hits.first.get_by_role("link", name="Similar stories").click()
            page.wait_for_url("**/-/similar/fluentbit?q=*")
            expect(page.locator("h1")).to_have_text("Stories similar to")
            expect(page.locator(".mm-panel h2")).to_contain_text("How Fluent Bit silently")
            expect(hits.first).to_have_attribute("data-story-id", "logstash")
            page.screenshot(path=str(tmp_path / "similar.png"), full_page=True)

            # and from there the story's own page, with tags, status and history
            hits.first.locator("h3 a").click()
            page.wait_for_url("**/kb/stories/logstash?q=*")
            expect(page.locator("#similar")).to_be_visible()
            expect(page.locator(".mm-story .mm-status").first).to_have_text("archived")
            page.screenshot(path=str(tmp_path / "story.png"), full_page=True)
        finally:
            browser.close()
    for name in ("search", "phone", "facet", "similar", "story"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- incident cards

SHOTS = Path("/tmp/shots")  # the incident pages' screenshots, kept to look at
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The demo crawled (its cards extracted by the crawl), served: (base URL, database)."""
    require_chromium()
    from mlopsmortem.pipeline import demo_session
    from mlopsmortem.settings import Settings

    path = tmp_path_factory.mktemp("browser-demo") / "demo.db"
    with demo_session(Settings(db_path=path, quiet=True), site_port=free_port()):
        pass
    with serving(path) as base:
        yield base, path


def card_story(path: Path) -> dict:
    """The demo story whose card has the longest timeline among those stating a summary,
    a duration and a resolution, with what its page should show."""
    from mlopsmortem.incidents.types import duration_text

    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT c.story_id, s.title, c.summary, c.duration_minutes,"
        " (SELECT count(*) FROM incident_timeline t WHERE t.story_id = c.story_id) AS events,"
        " (SELECT count(DISTINCT kind || ':' || tag) FROM tags g WHERE g.story_id = c.story_id)"
        " FROM incident_cards c JOIN stories s ON s.id = c.story_id"
        " WHERE c.summary IS NOT NULL AND c.duration_minutes IS NOT NULL"
        " AND c.resolution IS NOT NULL ORDER BY events DESC, c.story_id LIMIT 1"
    ).fetchone()
    conn.close()
    assert row is not None, "the demo has no card with a summary, a duration and a resolution"
    sid, title, summary, minutes, events, tags = row
    return {
        "id": sid,
        "title": title,
        "summary": summary,
        "duration": duration_text(minutes),
        "events": events,
        "tags": tags,
    }


def page_overflows(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


def test_incident_card_explore_and_like_in_a_real_browser(demo_server) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, path = demo_server
    story = card_story(path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=DESKTOP)
            page.set_default_timeout(60_000)

            # the story page leads with its card; the tags follow, one row per tag
            page.goto(f"{base}/demo/stories/{story['id']}")
            card = page.locator("#card")
            expect(card).to_be_visible()
            expect(card.locator(".mm-card-summary")).to_have_text(story["summary"])
            expect(card.locator("dd strong")).to_have_text(story["duration"])
            expect(card.locator(".mm-timeline li")).to_have_count(story["events"])
            expect(page.locator("#tags tbody tr")).to_have_count(story["tags"])
            card_box, similar_box = card.bounding_box(), page.locator("#similar").bounding_box()
            assert card_box is not None and similar_box is not None
            assert card_box["y"] < similar_box["y"]
            page.screenshot(path=str(SHOTS / "card.png"), full_page=True)
            page.set_viewport_size(PHONE)
            assert not page_overflows(page)
            card.screenshot(path=str(SHOTS / "card-phone.png"))
            page.set_viewport_size(DESKTOP)

            # explore: charts as SVG; a matrix cell opens the search for its pair
            page.goto(base + "/-/explore")
            expect(page.locator("h1")).to_have_text("Explore failure stories")
            assert page.locator("#by-category svg").count() >= 5
            assert page.locator("#by-trigger svg").count() >= 5
            expect(page.locator("#durations svg")).to_be_visible()
            page.screenshot(path=str(SHOTS / "explore.png"), full_page=True)
            page.set_viewport_size(PHONE)
            # on a phone the page itself never scrolls sideways; the matrix scrolls in its box
            assert not page_overflows(page)
            box = page.locator(".mm-matrix-box")
            box.scroll_into_view_if_needed()
            assert box.evaluate("b => b.scrollWidth > b.clientWidth")
            frame = box.bounding_box()
            assert frame is not None and frame["x"] >= 0
            assert frame["x"] + frame["width"] <= PHONE["width"]
            box.evaluate("b => b.scrollBy(120, 0)")
            assert box.evaluate("b => b.scrollLeft") > 0
            page.screenshot(path=str(SHOTS / "explore-phone.png"), full_page=True)
            page.set_viewport_size(DESKTOP)
            cell = page.locator(".mm-matrix a.mm-cell").first
            cell.click()
            page.wait_for_url("**/-/search?component=*&impact=*")
            expect(page.locator(".mm-active")).to_contain_text("Component:")
            expect(page.locator(".mm-active")).to_contain_text("Impact:")

            # incidents like mine: paste the story's own summary, it comes back first
            page.goto(base + "/-/like")
            page.get_by_label("Your incident").fill(story["summary"])
            page.get_by_role("button", name="Find similar incidents").click()
            page.wait_for_selector("li.mm-hit")
            assert page.url == base + "/-/like"  # posted: the text is not in the URL
            expect(page.locator("li.mm-hit").first).to_have_attribute("data-story-id", story["id"])
            expect(page.locator("#shared-components li").first).to_be_visible()
            expect(page.locator("#resolutions")).to_be_visible()
            page.screenshot(path=str(SHOTS / "like.png"), full_page=True)
            page.set_viewport_size(PHONE)
            assert not page_overflows(page)
            page.screenshot(path=str(SHOTS / "like-phone.png"))
        finally:
            browser.close()
    for name in ("card", "card-phone", "explore", "explore-phone", "like", "like-phone"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000
