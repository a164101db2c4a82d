"""The JSON search API answered in front of Datasette's router (mlopsmortem.web.direct): the
same bytes as Datasette's answer, and only for requests Datasette would answer in a fixed way."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from datasette import hookimpl
from datasette.app import Datasette, DatasetteRouter
from datasette.plugins import pm
from datasette.utils.asgi import Response

from mlopsmortem.web.params import config_flag
from mlopsmortem.web.serve import DATASETTE_SETTINGS, PLUGIN_NAME, load_metadata
from tests.support.asgi_calls import asgi_request
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
        self, url: str, headers: Sequence[tuple[bytes, bytes]] = (), method: str = "GET"
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return await asgi_request(self.app, url, headers=headers, method=method)

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


def search_plugin() -> Any:
    return next(p for p in pm.get_plugins() if "mlopsmortem_search" in getattr(p, "__name__", ""))


@pytest.mark.asyncio
async def test_a_view_that_fails_is_answered_as_datasette_answers_it(
    kb_path, settings, monkeypatch
):
    calls = []

    async def broken(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("a bug in the search")

    monkeypatch.setattr(search_plugin(), "run_search", broken)
    direct = Caller(datasette(kb_path, settings), monkeypatch)
    routed = Caller(datasette(kb_path, settings, direct=False), monkeypatch)
    for caller in (direct, routed):
        await caller.get("/-/search.json")  # the first request goes through Datasette
    url = "/-/search.json?q=lost+logs"
    calls.clear()
    answer = await direct.get(url)
    assert len(calls) == 1  # not run again through Datasette
    assert direct.routed == 1
    # Datasette's own error answer (its JSON error for a .json path), byte for byte
    assert answer == await routed.get(url)
    assert answer[0] == 500
    assert json.loads(answer[2])["error"] == "a bug in the search"


class SearchElsewhere:
    """A plugin whose own route answers /-/search.json, registered after ours: Datasette's
    router tries it first."""

    __name__ = "test-direct-plugin"

    @hookimpl
    def register_routes(self, datasette):
        async def other_search(request):
            return Response.json({"answered by": "another plugin"})

        return [(r"^/-/search\.json$", other_search)]


@pytest.mark.asyncio
async def test_a_route_another_plugin_answers_first_is_left_to_datasette(
    kb_path, settings, monkeypatch
):
    pm.register(SearchElsewhere(), name="test-direct-plugin")
    try:
        caller = Caller(datasette(kb_path, settings), monkeypatch)
        for _ in range(2):
            routed, status, body = await caller.routed_by("/-/search.json?q=lost+logs")
            assert routed and status == 200
            assert json.loads(body) == {"answered by": "another plugin"}
    finally:
        pm.unregister(name="test-direct-plugin")


@pytest.mark.asyncio
async def test_with_datasettes_tracer_on_requests_go_through_datasette(
    kb_path, settings, monkeypatch
):
    caller = Caller(datasette(kb_path, settings, trace_debug=True), monkeypatch)
    for _ in range(2):
        routed, status, body = await caller.routed_by("/-/search.json?q=dns&_trace=1")
        assert routed and status == 200
    assert "_trace" in json.loads(body)


@pytest.mark.asyncio
@pytest.mark.parametrize("value", ["false", "off", 0])
async def test_direct_json_is_switched_off_by_what_people_write_for_false(
    kb_path, settings, monkeypatch, value
):
    def switch_off(metadata):
        metadata["plugins"][PLUGIN_NAME]["direct_json"] = value

    caller = Caller(datasette(kb_path, settings, metadata_change=switch_off), monkeypatch)
    for _ in range(2):
        assert (await caller.routed_by("/-/search.json?q=dns"))[0]


def test_a_setting_that_is_neither_true_nor_false_is_an_error():
    assert config_flag({"warm": "No"}, "warm", True) is False
    assert config_flag({"warm": "1"}, "warm", False) is True
    assert config_flag({}, "warm", True) is True
    with pytest.raises(ValueError, match="setting direct_json: expected true or false"):
        config_flag({"direct_json": "maybe"}, "direct_json", True)
