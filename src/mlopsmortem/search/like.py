"""Incidents like mine: the public stories nearest to a pasted text (a draft postmortem, an
alert), what they have in common and how they were resolved.

Guarantees:
* the text is cut into passages as stories are (`passages.chunking`, the knowledge base's
  passage size) and embedded locally with the knowledge base's query encoder; it is never
  written anywhere nor kept in a cache (the encoder is called directly, not through search's
  query cache);
* a story scores its best (passage of the story, passage of the text) cosine; removed
  stories never come back;
* an empty text or one longer than MAX_LIKE_CHARS characters (after line endings are made
  "\n") is a SearchError, raised before anything is embedded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlite_utils

from mlopsmortem.errors import SearchError
from mlopsmortem.incidents.store import read_cards
from mlopsmortem.incidents.types import TRIGGERS
from mlopsmortem.passages.chunking import chunk_text, token_counter
from mlopsmortem.passages.embed import model_key
from mlopsmortem.passages.encoder import QueryEncoder, query_encoder
from mlopsmortem.passages.sync import SPECIAL_TOKENS
from mlopsmortem.search.keyword import removed_ids
from mlopsmortem.search.vectors import database_path, top_k, vector_index
from mlopsmortem.settings import Settings

MAX_LIKE_CHARS = 20_000
LIKE_RESULTS = 10
SHARED_SHOWN = 15  # components and triggers listed under "what they share"


@dataclass(frozen=True)
class LikeMatch:
    """A story near the text, the story's passage that matched best and its card's fields."""

    id: str
    title: str | None
    url: str
    publisher: str | None
    year: int | None
    link_status: str | None
    score: float
    passage_id: int
    passage: str
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    triggers: tuple[str, ...]
    summary: str | None
    resolution: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "publisher": self.publisher,
            "year": self.year,
            "link_status": self.link_status,
            "score": round(self.score, 4),
            "passage_id": self.passage_id,
            "passage": self.passage,
            "components": list(self.components),
            "impacts": list(self.impacts),
            "triggers": list(self.triggers),
            "summary": self.summary,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class LikeAnswer:
    """The nearest stories, best first; across them, each component and trigger with the
    number of them carrying it (most first); `passages`: how many passages the text made."""

    passages: int
    matches: tuple[LikeMatch, ...]
    components: tuple[tuple[str, int], ...]
    triggers: tuple[tuple[str, int], ...]

    @property
    def resolutions(self) -> tuple[LikeMatch, ...]:
        """The matches whose card states how the incident was resolved."""
        return tuple(m for m in self.matches if m.resolution)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passages": self.passages,
            "count": len(self.matches),
            "results": [m.to_dict() for m in self.matches],
            "shared": {
                "components": [{"value": v, "count": n} for v, n in self.components],
                "triggers": [
                    {"value": v, "label": TRIGGERS.get(v, v), "count": n} for v, n in self.triggers
                ],
            },
            "resolutions": [
                {"id": m.id, "title": m.title, "resolution": m.resolution} for m in self.resolutions
            ],
        }

    def text_lines(self, passage_chars: int = 240) -> list[str]:
        """The answer for people: the stories with their matched passage, then what they share
        and their resolutions."""
        if not self.matches:
            return ["No story is near this text yet."]
        lines = []
        for rank, m in enumerate(self.matches, 1):
            facts = " · ".join(str(f) for f in (m.publisher, m.year, m.link_status) if f)
            lines.append(f"{rank:>2}. {m.title or m.url}  ({m.score:.2f})")
            lines.append(f"    {m.url}" + (f"  {facts}" if facts else ""))
            lines.append(f"    id {m.id}: “{shorten(m.passage, passage_chars)}”")
        if self.components:
            counts = ", ".join(f"{v} ({n})" for v, n in self.components)
            lines += ["", f"Components among them: {counts}"]
        if self.triggers:
            counts = ", ".join(f"{TRIGGERS.get(v, v)} ({n})" for v, n in self.triggers)
            lines += ["", f"Triggers among them: {counts}"]
        if self.resolutions:
            lines += ["", "How they were resolved:"]
            lines.extend(f"  - {m.title or m.id}: {m.resolution}" for m in self.resolutions)
        return lines


def shorten(text: str, limit: int) -> str:
    """text on one line, cut at a word boundary to at most `limit` characters (with …)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0] if " " in flat[: limit - 1] else flat[: limit - 1]
    return cut.rstrip(" ,;:.") + "…"


def check_text(text: str | None, max_chars: int = MAX_LIKE_CHARS) -> str:
    """The text to embed: line endings made "\\n" (a browser sends a textarea's as "\\r\\n"),
    stripped. SearchError when it is empty or longer than max_chars characters."""
    clean = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not clean:
        raise SearchError("empty text: paste a draft postmortem or an alert text")
    if len(clean) > max_chars:
        raise SearchError(f"the text is {len(clean):,} characters long; the limit is {max_chars:,}")
    return clean


def embed_text(
    text: str,
    settings: Settings,
    *,
    encoder: QueryEncoder | None = None,
    db_path: str | None = None,
) -> np.ndarray:
    """The unit vectors (passages x dimension) of a checked text's passages, cut as stories
    are and embedded by `encoder` (default: the query encoder stored in the database file
    db_path, default settings.db_path)."""
    if encoder is None:
        path = str(settings.db_path) if db_path is None else db_path
        encoder = query_encoder(path, settings.model_name, settings.query_encoder)
    chunks = chunk_text(
        text,
        max_tokens=max(1, settings.passage_tokens - SPECIAL_TOKENS),
        overlap_tokens=settings.passage_overlap_tokens,
        count_tokens=token_counter(settings.model_name),
    )
    return np.vstack([encoder.embed(c.text) for c in chunks]).astype(np.float32)


def _strings(value: Any) -> tuple[str, ...]:
    try:
        data = json.loads(value) if value else []
    except (TypeError, json.JSONDecodeError):
        return ()
    return tuple(str(v) for v in data) if isinstance(data, list) else ()


def incidents_like(
    db: sqlite_utils.Database,
    text: str,
    *,
    settings: Settings,
    limit: int = LIKE_RESULTS,
    vectors: np.ndarray | None = None,
) -> LikeAnswer:
    """The `limit` live stories nearest to `text`, best first (see the module's guarantees).

    `vectors`: the text's passage vectors when the caller embedded them already (the plugin
    embeds off Datasette's SQL threads); else `embed_text` embeds it here. SearchError for an
    empty or over-long text, a knowledge base without embeddings for the model, or vectors
    of another dimension."""
    text = check_text(text)
    conn = db.conn
    model = model_key(settings.model_name)
    snapshot = vector_index(db, model).refresh(conn)
    if snapshot.size == 0:
        raise SearchError(
            f"no passage has an embedding for model {model!r} yet: run `mlopsmortem crawl` first"
        )
    if vectors is None:
        vectors = embed_text(text, settings, db_path=database_path(conn))
    if vectors.ndim != 2 or vectors.shape[1] != snapshot.matrix.shape[1]:
        raise SearchError(
            f"the text's vectors do not have the {snapshot.matrix.shape[1]} dimensions of the "
            f"stored embeddings of {model!r}"
        )
    best_of_row = np.einsum("ij,kj->ik", snapshot.matrix, vectors).max(axis=1)
    scores = np.maximum.reduceat(best_of_row, snapshot.starts)
    scores[~snapshot.story_mask(removed_ids(conn), exclude=True)] = -np.inf
    ranked = [
        (snapshot.story_ids[s], float(scores[s]), snapshot.best_row(int(s), best_of_row))
        for s in top_k(scores, max(0, limit)).tolist()
    ]
    matches = _hydrate(
        conn, [(sid, score, int(snapshot.passage_ids[row])) for sid, score, row in ranked]
    )
    components = Counter(c for m in matches for c in dict.fromkeys(m.components))
    triggers = Counter(t for m in matches for t in dict.fromkeys(m.triggers))
    return LikeAnswer(
        passages=len(vectors),
        matches=tuple(matches),
        components=tuple(sorted(components.items(), key=lambda kv: (-kv[1], kv[0].lower())))[
            :SHARED_SHOWN
        ],
        triggers=tuple(sorted(triggers.items(), key=lambda kv: (-kv[1], kv[0])))[:SHARED_SHOWN],
    )


def _hydrate(conn: Any, ranked: list[tuple[str, float, int]]) -> list[LikeMatch]:
    if not ranked:
        return []
    ids = [sid for sid, _, _ in ranked]
    marks = ",".join("?" * len(ids))
    stories = {
        r[0]: r
        for r in conn.execute(
            "SELECT s.id, s.title, s.url, s.publisher, s.year, pg.link_status, s.components,"
            f" s.impacts FROM stories s LEFT JOIN pages pg ON pg.story_id = s.id"
            f" WHERE s.id IN ({marks})",
            ids,
        )
    }
    passage_ids = [p for _, _, p in ranked]
    texts = dict(
        conn.execute(
            f"SELECT id, text FROM passages WHERE id IN ({','.join('?' * len(passage_ids))})",
            passage_ids,
        ).fetchall()
    )
    cards = read_cards(conn, ids)
    matches = []
    for sid, score, passage_id in ranked:
        row = stories[sid]
        card = cards.get(sid)
        matches.append(
            LikeMatch(
                id=sid,
                title=row[1],
                url=row[2],
                publisher=row[3],
                year=row[4],
                link_status=row[5],
                score=score,
                passage_id=passage_id,
                passage=texts.get(passage_id, ""),
                components=_strings(row[6]),
                impacts=_strings(row[7]),
                triggers=card.triggers if card else (),
                summary=card.summary if card else None,
                resolution=card.resolution if card else None,
            )
        )
    return matches
