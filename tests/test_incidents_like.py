"""Incidents like mine: the library (mlopsmortem.search.like), the JSON endpoint and the page
(plugins/mlopsmortem_incidents.py), on the plugin's knowledge base with the test cards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from datasette.app import Datasette

from mlopsmortem.db import open_existing_db
from mlopsmortem.errors import SearchError
from mlopsmortem.search import vectors
from mlopsmortem.search.like import MAX_LIKE_CHARS, check_text, incidents_like
from mlopsmortem.settings import Settings
from mlopsmortem.web import like_page
from mlopsmortem.web.serve import DATASETTE_SETTINGS, load_metadata
from tests.support.incident_cards import with_cards
from tests.test_plugin import PLUGINS, kb_path

__all__ = ["kb_path"]  # fixture used below

INCIDENT = (
    "Elasticsearch was down for an hour. Our Fluent Bit daemonset paused its tail input when "
    "the memory buffer filled up, Kubernetes rotated the container log files meanwhile, and "
    "when the cluster came back hours of application logs were missing."
)


@pytest.fixture(scope="module")
def cards_path(kb_path: Path, tmp_path_factory) -> Path:
    return with_cards(kb_path, tmp_path_factory.mktemp("like") / "kb.db")


@pytest.fixture
def ds(cards_path: Path) -> Datasette:
    return Datasette(
        [str(cards_path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(Settings(db_path=cards_path, quiet=True)),
        settings=DATASETTE_SETTINGS,
    )


@pytest.fixture
def embedded(monkeypatch) -> list[str]:
    """The texts the plugin embeds, recorded (and still embedded)."""
    calls: list[str] = []
    real = like_page.embed_text

    def spy(text, *args, **kwargs):
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(like_page, "embed_text", spy)
    return calls


# --------------------------------------------------------------------------- library


def test_the_nearest_stories_with_what_they_share_and_their_resolutions(cards_path) -> None:
    db = open_existing_db(cards_path)
    changes = db.conn.total_changes
    answer = incidents_like(db, INCIDENT, settings=Settings(db_path=cards_path, quiet=True))
    assert db.conn.total_changes == changes  # nothing written
    assert not any(INCIDENT in key for _, key in vectors._query_vectors)  # nor cached
    ids = [m.id for m in answer.matches]
    assert ids[0] == "fluentbit" and len(ids) == 10 and "removed" not in ids
    scores = [m.score for m in answer.matches]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5
    first = answer.matches[0]
    assert first.passage and first.passage_id
    assert first.triggers == ("dependency-failure", "resource-exhaustion")
    assert first.resolution == "We now use filesystem buffering (storage.type filesystem)."
    components = dict(answer.components)
    assert components["logging"] >= 2 and components["kubernetes"] >= 2
    assert [c for _, c in answer.components] == sorted(components.values(), reverse=True)
    assert answer.resolutions[0].id == "fluentbit"
    assert all(m.resolution for m in answer.resolutions)
    data = answer.as_dict()
    assert data["count"] == 10 and data["results"][0]["id"] == "fluentbit"
    assert {"value": "logging", "count": components["logging"]} in data["shared"]["components"]
    db.close()


def test_a_text_is_checked_before_anything_is_embedded() -> None:
    with pytest.raises(SearchError, match="empty text"):
        check_text(" \n\t ")
    with pytest.raises(SearchError, match="is 20,001 characters long; the limit is 20,000"):
        check_text("x" * (MAX_LIKE_CHARS + 1))
    # a browser sends a textarea's line breaks as \r\n: they count as one character each
    text = "x" * (MAX_LIKE_CHARS - 10) + "\r\n" * 6 + "y"
    assert len(text) > MAX_LIKE_CHARS and check_text(text).endswith("\n" * 6 + "y")


# --------------------------------------------------------------------------- JSON


@pytest.mark.asyncio
async def test_like_json_round_trip(ds, embedded) -> None:
    response = await ds.client.post("/-/like.json", json={"text": INCIDENT})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["ok"] is True and data["database"] == "kb"
    assert data["count"] == 10 and data["passages"] == 1
    first = data["results"][0]
    assert first["id"] == "fluentbit" and first["story_url"] == "/kb/stories/fluentbit"
    assert first["passage"] and first["triggers"] == ["dependency-failure", "resource-exhaustion"]
    shared = {c["value"]: c["count"] for c in data["shared"]["components"]}
    assert shared["logging"] >= 2
    triggers = {t["value"]: t for t in data["shared"]["triggers"]}
    assert (
        triggers["dependency-failure"]["label"]
        == "dependency failure (cloud, third party, upstream)"
    )
    assert data["resolutions"][0] == {
        "id": "fluentbit",
        "title": "How Fluent Bit silently dropped our logs",
        "resolution": "We now use filesystem buffering (storage.type filesystem).",
        "story_url": "/kb/stories/fluentbit",
    }
    assert embedded == [INCIDENT]


@pytest.mark.asyncio
async def test_a_text_in_a_url_is_never_read_nor_embedded(ds, embedded) -> None:
    response = await ds.client.get("/-/like.json?text=lost+logs+secret")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["ok"] is False and "secret" not in response.text
    page = await ds.client.get("/-/like?text=lost+logs+secret")
    assert page.status_code == 200 and "secret" not in page.text
    assert '<form class="mm-like-form"' in page.text and 'method="post"' in page.text
    assert embedded == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"text": "x" * (MAX_LIKE_CHARS + 1)}, "is 20,001 characters long; the limit is 20,000"),
        ({"text": "   "}, "empty text"),
        ({"text": 3}, 'a string "text"'),
        (["lost logs"], 'a string "text"'),
    ],
)
async def test_a_refused_text_is_a_400_that_says_why(ds, embedded, body, error) -> None:
    response = await ds.client.post("/-/like.json", json=body)
    assert response.status_code == 400, response.text
    assert response.json() == {"ok": False, "error": response.json()["error"], "status": 400}
    assert error in response.json()["error"]
    assert embedded == []


@pytest.mark.asyncio
async def test_a_body_too_large_or_not_json_is_refused_unread(ds, embedded) -> None:
    huge = b'{"text": "' + b"x" * (like_page.MAX_BODY_BYTES + 1) + b'"}'
    response = await ds.client.post(
        "/-/like.json", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "the limit is 20,000" in response.json()["error"]
    response = await ds.client.post(
        "/-/like.json", content=b"text=lost", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    assert embedded == []


@pytest.mark.asyncio
async def test_without_the_passages_table_no_passage_text(cards_path) -> None:
    metadata = load_metadata(Settings(db_path=cards_path, quiet=True))
    tables = metadata.setdefault("databases", {}).setdefault("kb", {}).setdefault("tables", {})
    tables["passages"] = {"allow": {"id": "admin"}}
    ds = Datasette(
        [str(cards_path)], plugins_dir=str(PLUGINS), metadata=metadata, settings=DATASETTE_SETTINGS
    )
    data = (await ds.client.post("/-/like.json", json={"text": INCIDENT})).json()
    assert data["results"][0]["id"] == "fluentbit"
    assert all(r["passage"] == "" and r["passage_id"] is None for r in data["results"])


# --------------------------------------------------------------------------- the page


@pytest.mark.asyncio
async def test_the_like_page_posts_with_datasettes_csrf_token(ds, embedded) -> None:
    form = await ds.client.get("/-/like")
    token = re.search(r'name="csrftoken" value="([^"]+)"', form.text)
    assert token is not None and 'maxlength="20000"' in form.text
    cookies = {"ds_csrftoken": form.cookies["ds_csrftoken"]}
    # a browser has the cookie: without the form's token the post is refused, unread
    refused = await ds.client.post("/-/like", data={"text": INCIDENT}, cookies=cookies)
    assert refused.status_code == 403 and embedded == []
    answer = await ds.client.post(
        "/-/like", data={"text": INCIDENT, "csrftoken": token.group(1)}, cookies=cookies
    )
    assert answer.status_code == 200 and "no-store" in answer.headers["cache-control"]
    ids = re.findall(r'<li class="mm-hit" data-story-id="([^"]+)"', answer.text)
    assert ids[0] == "fluentbit" and len(ids) == 10
    assert 'id="shared-components"' in answer.text and 'id="resolutions"' in answer.text
    assert "We now use filesystem buffering" in answer.text
    assert 'href="/-/search?component=logging"' in answer.text
    assert INCIDENT in answer.text  # back in the box, to edit and send again
    too_long = await ds.client.post(
        "/-/like",
        data={"text": "x" * (MAX_LIKE_CHARS + 1), "csrftoken": token.group(1)},
        cookies=cookies,
    )
    assert too_long.status_code == 400
    assert "is 20,001 characters long; the limit is 20,000" in too_long.text
    assert embedded == [INCIDENT]


@pytest.mark.asyncio
async def test_json_from_a_browser_with_datasettes_cookie_needs_no_form_token(ds) -> None:
    # a JSON body can only come from a page of the same site (CORS): no token to send
    form = await ds.client.get("/-/like")
    cookies = {"ds_csrftoken": form.cookies["ds_csrftoken"]}
    response = await ds.client.post("/-/like.json", json={"text": INCIDENT}, cookies=cookies)
    assert response.status_code == 200 and response.json()["results"][0]["id"] == "fluentbit"
    # a form body to the JSON endpoint still needs the token
    refused = await ds.client.post("/-/like.json", data={"text": INCIDENT}, cookies=cookies)
    assert refused.status_code == 403
