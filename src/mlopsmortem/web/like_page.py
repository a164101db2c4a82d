"""What the "incidents like mine" page and JSON endpoint run: the posted text read within a
bound, embedded off Datasette's SQL threads, answered by `search.like.incidents_like`.

The text comes only from a POST body (a form field `text`, or JSON {"text": ...}), never from
a query string, and is neither logged nor stored; a body larger than MAX_BODY_BYTES is
refused before it is read. Every refusal is a `BadRequest` with its status: 400 for an empty
or over-long text or a malformed body, 411 without a Content-Length.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.parse
from typing import Any

import numpy as np

from mlopsmortem.errors import SearchError
from mlopsmortem.incidents.types import TRIGGERS
from mlopsmortem.search.like import (
    MAX_LIKE_CHARS,
    LikeAnswer,
    check_text,
    embed_text,
    incidents_like,
    shorten,
)
from mlopsmortem.settings import Settings
from mlopsmortem.web.links import safe_href, story_path
from mlopsmortem.web.model import ensure_model
from mlopsmortem.web.params import BadRequest
from mlopsmortem.web.queries import execute, library_connection, library_db
from mlopsmortem.web.state import State

# a text of MAX_LIKE_CHARS characters, each 4 UTF-8 bytes percent-encoded (12 bytes) or a JSON
# surrogate pair (12 bytes), plus the form's other fields
MAX_BODY_BYTES = 12 * MAX_LIKE_CHARS + 4096
PASSAGE_CHARS = 320  # of each matched passage, on the page


async def posted_text(request: Any, *, as_json: bool) -> str:
    """The text of a POST: the form field `text`, or the JSON body's "text"; checked (empty
    or longer than MAX_LIKE_CHARS characters: BadRequest 400)."""
    length = request.headers.get("content-length")
    if length is None:
        raise BadRequest("send the text with a Content-Length header", status=411)
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        raise BadRequest(f"the text is too long: the limit is {MAX_LIKE_CHARS:,} characters")
    body = await request.post_body()
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("the request body is not UTF-8") from exc
    if as_json:
        try:
            data = json.loads(decoded or "null")
        except json.JSONDecodeError as exc:
            raise BadRequest(f'the body is not JSON: send {{"text": "..."}} ({exc.msg})') from exc
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise BadRequest('send a JSON object with a string "text": {"text": "..."}')
        text = data["text"]
    else:
        text = dict(urllib.parse.parse_qsl(decoded, keep_blank_values=True)).get("text", "")
    if "\x00" in text:
        raise BadRequest("the text holds a NUL character")
    try:
        return check_text(text)
    except SearchError as exc:
        raise BadRequest(str(exc)) from exc


def _embed(text: str, state: State) -> np.ndarray:
    settings: Settings = state.settings
    encoder = ensure_model(settings.model_name, state.path, settings.query_encoder, state.immutable)
    return embed_text(text, settings, encoder=encoder)


async def answer_like(datasette: Any, state: State, text: str) -> LikeAnswer:
    """The stories like `text` (checked by `posted_text`): embedded on a worker thread of the
    event loop's default executor, then ranked on one of Datasette's SQL threads."""
    loop = asyncio.get_running_loop()
    vectors = await loop.run_in_executor(None, _embed, text, state)

    def work(conn: sqlite3.Connection) -> LikeAnswer:
        with library_connection(conn, state.time_limit_ms):
            return incidents_like(library_db(conn), text, settings=state.settings, vectors=vectors)

    return await execute(datasette, state, work, what="comparison")


def like_body(state: State, answer: LikeAnswer, *, passages: bool, cards: bool) -> dict[str, Any]:
    """The JSON answer: `ok`, `database`, the library's answer (passages, count, results,
    shared, resolutions) with each result's `story_url`. Without `passages` (the actor may
    not view them) no passage text; without `cards` no summary, triggers or resolutions."""
    body = answer.as_dict()
    for result in body["results"]:
        result["story_url"] = story_path(state, result["id"])
        if not passages:
            result["passage"], result["passage_id"] = "", None
        if not cards:
            result["summary"], result["resolution"], result["triggers"] = None, None, []
    if not cards:
        body["shared"]["triggers"], body["resolutions"] = [], []
    else:
        for item in body["resolutions"]:
            item["story_url"] = story_path(state, item["id"])
    return {"ok": True, "database": state.database, **body}


def like_view(
    state: State, answer: LikeAnswer, search_path: str, *, passages: bool, cards: bool
) -> dict[str, Any]:
    """The answer as the page shows it: each story with its links and a shortened passage,
    what they share (with search links) and their resolutions."""

    def search(**filters: str) -> str:
        return f"{search_path}?{urllib.parse.urlencode(filters)}"

    matches = [
        {
            "id": m.id,
            "title": m.title or m.url,
            "href": safe_href(m.url),
            "story_url": story_path(state, m.id),
            "publisher": m.publisher,
            "year": m.year,
            "link_status": m.link_status,
            "score": m.score,
            "passage": shorten(m.passage, PASSAGE_CHARS) if passages else "",
            "summary": m.summary if cards else None,
            "triggers": [TRIGGERS.get(t, t).split(" (")[0] for t in m.triggers] if cards else [],
        }
        for m in answer.matches
    ]
    return {
        "passages": answer.passages,
        "matches": matches,
        "components": [
            {"value": v, "count": n, "url": search(component=v)} for v, n in answer.components
        ],
        "triggers": [
            {"value": TRIGGERS.get(v, v), "count": n, "url": search(trigger=v)}
            for v, n in answer.triggers
        ]
        if cards
        else [],
        "resolutions": [
            {"title": m.title or m.url, "story_url": story_path(state, m.id), "text": m.resolution}
            for m in answer.resolutions
        ]
        if cards
        else [],
    }
