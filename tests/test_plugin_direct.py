"""The JSON search API answered in front of Datasette's router (mlopsmortem.web_direct): the
same bytes as Datasette's answer, and only for requests Datasette would answer in a fixed way."""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from datasette import hookimpl
from datasette.app import Datasette, DatasetteRouter
from datasette.plugins import pm

from mlopsmortem.serve import DATASETTE_SETTINGS, PLUGIN_NAME, load_metadata
from tests.test_plugin import PLUGINS, kb_path, settings

__all__ = ["kb_path", "settings"]  # fixtures used below

SEARCHES = (
    "/-/search.json?q=lost+logs",
    "/-/search.json?q=lost+logs&mode=keyword&facets=1",
    "/-/search.json?q=kafka+consumer+lag&mode=semantic&n=3&offset=2",
    "/-/search.json?q=dns&component=Kubernetes&n=2",
    "/-/search.json?q=" + "x" * 5000,  # refused: too long
    "/-/search.json",  # refused: no query
    "/-/search.json?q=dns&n=many",  # refused: n is not a number
)


def datasette(
    kb_path: Path,
    settings,
    *,
    direct: bool = True,
    metadata_change=None,
    **datasette_settings: Any,
) -> Datasette:
    metadata = copy.deepcopy(load_metadata(settings))
    if not direct:
        metadata["plugins"][PLUGIN_NAME]["direct_json"] = False
    if metadata_change is not None:
        metadata_change(metadata)
    return Datasette(
        [str(kb_path)],
        plugins_dir=str(PLUGINS),
        metadata=metadata,
        settings={**DATASETTE_SETTINGS, **datasette_settings},
    )


class Caller:
    """Raw ASGI requests to ds.app(), counting those that reached Datasette's router."""

    def __init__(self, ds: Datasette, monkeypatch) -> None:
        self.ds = ds
        self.app = ds.app()
        if not hasattr(DatasetteRouter.route_path, "routed"):
            real = DatasetteRouter.route_path

            async def counting(router, scope, receive, send, path):
                counting.routed[router.ds] += 1
                return await real(router, scope, receive, send, path)

            counting.routed = Counter()
            monkeypatch.setattr(DatasetteRouter, "route_path", counting)

    @property
    def routed(self) -> int:
        """How many requests reached Datasette's router."""
        return DatasetteRouter.route_path.routed[self.ds]

    async def get(
        self, url: str, headers: list[tuple[bytes, bytes]] = (), method: str = "GET"
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path, _, query = url.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": urllib.parse.unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": [(b"host", b"localhost"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent: list[dict[str, Any]] = []
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = sent[0]
        headers = [(bytes(k), bytes(v)) for k, v in start["headers"]]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return start["status"], headers, body

    async def routed_by(self, url: str, **kwargs: Any) -> tuple[bool, int, bytes]:
        """(whether Datasette's router answered, status, body)"""
        before = self.routed
        status, _, body = await self.get(url, **kwargs)
        return self.routed > before, status, body


@pytest.mark.asyncio
async def test_direct_answers_are_datasettes_byte_for_byte(kb_path, settings, monkeypatch):
    direct = Caller(datasette(kb_path, settings), monkeypatch)
    await direct.get("/-/search.json?q=warm")  # the first request goes through Datasette
    routed = Caller(datasette(kb_path, settings, direct=False), monkeypatch)
    await routed.get("/-/search.json?q=warm")
    statuses = set()
    for url in SEARCHES:
        before_direct, before_routed = direct.routed, routed.routed
        answer = await direct.get(url)
        expected = await routed.get(url)
        assert direct.routed == before_direct, url  # answered without Datasette's router
        assert routed.routed == before_routed + 1, url
        assert answer == expected, url
        statuses.add(answer[0])
    assert statuses == {200, 400}
    # the `next` link is absolute and keeps the query, as Datasette's request.url builds it
    _, _, body = await direct.get("/-/search.json?q=dns&component=Kubernetes&n=2")
    assert json.loads(body)["next"].startswith("http://localhost/-/search.json?q=dns&")


@pytest.mark.asyncio
async def test_only_the_search_api_without_credentials_is_answered_directly(
    kb_path, settings, monkeypatch
):
    ds = datasette(kb_path, settings)
    caller = Caller(ds, monkeypatch)
    url = "/-/search.json?q=lost+logs"
    first = await caller.routed_by(url)
    assert first[:2] == (True, 200)  # before Datasette ran its startup hooks: through it
    assert (await caller.routed_by(url))[:2] == (False, 200)
    actor = ds.sign({"a": {"id": "admin"}}, "actor")
    for headers in (
        [(b"cookie", f"ds_actor={actor}".encode())],
        [(b"cookie", b"ds_csrftoken=whatever")],
        [(b"authorization", b"Bearer secret")],
    ):
        assert (await caller.routed_by(url, headers=headers))[:2] == (True, 200), headers
    for other in ("/-/search?q=lost+logs", "/-/similar/fluentbit.json", "/-/search.json/"):
        assert (await caller.routed_by(other))[0], other
    assert (await caller.routed_by(url, method="HEAD"))[0]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "setup",
    ["allow rule", "base_url", "force_https_urls", "switched off", "actor plugin", "wrapper"],
)
async def test_whatever_datasette_could_decide_goes_through_datasette(
    kb_path, settings, monkeypatch, setup
):
    options: dict[str, Any] = {}
    if setup == "allow rule":
        options["metadata_change"] = lambda m: m.update(allow={"id": "admin"})
    elif setup == "switched off":
        options["direct"] = False
    elif setup in ("base_url", "force_https_urls"):
        options[setup] = "/kb-site/" if setup == "base_url" else True
    ds = datasette(kb_path, settings, **options)
    plugin = {"actor plugin": ActorFromQuery(), "wrapper": ActorFromHeader()}.get(setup)
    if plugin is not None:
        pm.register(plugin, name="test-direct-plugin")
    try:
        caller = Caller(ds, monkeypatch)
        url = ("/kb-site" if setup == "base_url" else "") + "/-/search.json?q=lost+logs"
        for _ in range(2):
            routed, status, _ = await caller.routed_by(url)
            assert routed, setup
        assert status == (403 if setup == "allow rule" else 200)
    finally:
        if plugin is not None:
            pm.unregister(name="test-direct-plugin")


class ActorFromQuery:
    """An authentication plugin: the actor comes from the query string."""

    __name__ = "test-direct-plugin"  # Datasette lists plugins by module name

    @hookimpl
    def actor_from_request(self, datasette, request):
        return {"id": request.args["as"]} if request.args.get("as") else None


class ActorFromHeader:
    """An authenticating middleware, as some plugins wrap the app: the actor goes into the
    scope before Datasette sees the request."""

    __name__ = "test-direct-plugin"

    @hookimpl
    def asgi_wrapper(self, datasette):
        def wrap(app):
            async def with_actor(scope, receive, send):
                await app(dict(scope, actor={"id": "proxy-user"}), receive, send)

            return with_actor

        return wrap


@pytest.mark.asyncio
async def test_a_view_that_fails_is_answered_by_datasette(kb_path, settings, monkeypatch):
    ds = datasette(kb_path, settings)
    caller = Caller(ds, monkeypatch)
    await caller.get("/-/search.json?q=warm")
    plugin = next(p for p in pm.get_plugins() if "mlopsmortem_search" in getattr(p, "__name__", ""))

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug in the search")

    monkeypatch.setattr(plugin, "run_search", broken)
    routed, status, body = await caller.routed_by("/-/search.json?q=lost+logs")
    # Datasette's error handling (its JSON error for a .json path), not a dropped connection
    assert routed and status == 500
    assert json.loads(body)["error"] == "a bug in the search"
