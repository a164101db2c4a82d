"""What the plugin's answers are built from, checked against the long way round.

* the query-vector cache can be looked up without embedding, and `embed_first` then skips its
  worker thread;
* hit links built from prefixes kept in the plugin state equal Datasette's URL builders;
* JSON responses carry a Content-Length that matches their body.

No model is loaded: the encoder is replaced where a vector is needed.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasette.app import Datasette
from datasette.utils import tilde_encode

from mlopsmortem.db import open_db
from mlopsmortem.search import vectors as vector_index
from mlopsmortem.web import queries as web_sql
from mlopsmortem.web.params import Params
from mlopsmortem.web.results import hit_dict, hit_view
from mlopsmortem.web.serve import DATASETTE_SETTINGS
from mlopsmortem.web.state import kb_state

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_encoder(monkeypatch) -> list[str]:
    """An empty query cache of 3 entries and an encoder that records what it embeds."""
    embedded: list[str] = []

    class Recorder:
        kind = "fake"

        def embed(self, text: str) -> np.ndarray:
            embedded.append(text)
            return np.ones(4, dtype=np.float32)

    monkeypatch.setattr(vector_index, "_query_vectors", OrderedDict())
    monkeypatch.setattr(vector_index, "QUERY_CACHE_SIZE", 3)
    monkeypatch.setattr(vector_index, "query_encoder", lambda *args: Recorder())
    return embedded


def test_cached_query_vector_looks_up_without_embedding(fake_encoder) -> None:
    assert vector_index.cached_query_vector("lost logs", "m") is None
    assert fake_encoder == []
    first = vector_index.embed_query("lost logs", "m")
    assert vector_index.cached_query_vector("lost logs", "m") is first
    assert vector_index.embed_query("lost logs", "m") is first
    assert vector_index.cached_query_vector("lost logs", "other model") is None
    assert fake_encoder == ["lost logs"]
    assert not first.flags.writeable


def test_query_cache_drops_the_least_recently_used(fake_encoder) -> None:
    for text in ("a", "b", "c"):
        vector_index.embed_query(text, "m")
    vector_index.cached_query_vector("a", "m")  # a lookup counts as a use
    vector_index.embed_query("d", "m")
    assert vector_index.cached_query_vector("b", "m") is None
    assert all(vector_index.cached_query_vector(t, "m") is not None for t in "acd")


def test_embed_first_skips_the_worker_thread_when_the_vector_is_cached(
    fake_encoder, monkeypatch
) -> None:
    calls: list[str] = []

    def query_vector(text: str, model_name: str, *where: Any) -> np.ndarray:
        calls.append(text)
        return vector_index.embed_query(text, model_name)

    monkeypatch.setattr(web_sql, "query_vector", query_vector)
    settings = type("T", (), {"model_name": "m", "query_encoder": "auto"})()
    state: Any = type("S", (), {"settings": settings, "path": "", "immutable": False})()
    asyncio.run(web_sql.embed_first(state, Params(q="dns timeouts")))
    assert calls == ["dns timeouts"]
    asyncio.run(web_sql.embed_first(state, Params(q="dns timeouts")))
    asyncio.run(web_sql.embed_first(state, Params(q="anything", mode="keyword")))
    assert calls == ["dns timeouts"]


# --------------------------------------------------------------------------- links and JSON


class Hit:
    def __init__(self, story_id: str) -> None:
        self.id = story_id
        self.url = "https://example.com/post"
        self.components = ["dns"]
        self.impacts: list[str] = []
        self.triggers = ["expiry"]
        self.detection = "alert"
        self.duration_minutes = 125.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id}


@pytest.fixture
def datasette(tmp_path: Path) -> Datasette:
    path = tmp_path / "kb.db"
    open_db(path).close()  # the schema, no stories
    return Datasette(
        [str(path)],
        plugins_dir=str(REPO / "plugins"),
        settings={**DATASETTE_SETTINGS, "base_url": "/kb/"},
        metadata={"plugins": {"mlopsmortem-search": {"warm": False}}},
    )


@pytest.mark.parametrize("story_id", ["0123456789abcdef", "we ird/id~ü?#%"])
def test_hit_links_equal_datasettes_url_builders(datasette, story_id) -> None:
    state = asyncio.run(kb_state(datasette))
    assert state is not None
    data = hit_dict(state, Hit(story_id))
    assert data["story_url"] == datasette.urls.row("kb", "stories", tilde_encode(story_id))
    assert data["story_url"].startswith("/kb/kb/stories/")
    quoted = urllib.parse.quote(story_id, safe="")
    assert data["similar_url"] == datasette.urls.path(f"-/similar/{quoted}.json")
    view = hit_view(datasette, state, Hit(story_id), None)
    assert view["story_url"] == data["story_url"]
    assert view["similar_url"] == datasette.urls.path(f"-/similar/{quoted}")
    # the card's fields in words, and a trigger chip that starts a search by that trigger
    assert (view["detection_label"], view["duration_text"]) == ("found by an alert", "2 h 5 min")
    trigger = next(c for c in view["chips"] if c["kind"] == "trigger")
    assert trigger == {
        "kind": "trigger",
        "value": "expiry",
        "label": "expiry",
        "url": datasette.urls.path("-/search") + "?trigger=expiry",
    }


def test_json_responses_carry_their_length(datasette) -> None:
    async def get() -> Any:
        await datasette.invoke_startup()
        return await datasette.client.get("/-/search.json?q=")  # the client adds base_url

    response = asyncio.run(get())
    assert response.status_code == 400
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(response.content)["ok"] is False
