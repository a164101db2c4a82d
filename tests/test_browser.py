"""One real browser session against a running `mlopsmortem serve` on the test knowledge base.

Needs Debian's chromium at /usr/bin/chromium (driven by the `playwright` package, without
Playwright's own browser download); skips when it is missing.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(
            "no browser at /usr/bin/chromium: install Debian's chromium "
            "(apt-get install -y chromium) to enable the browser test"
        )
    path = build_plugin_kb(tmp_path_factory.mktemp("browser") / "kb.db")
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
