"""Story inputs: everything the three methods read about a story, loaded in chunks of ids,
and the fingerprint of it that tells whether a story needs re-tagging."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class PassageRef:
    id: int
    seq: int
    kind: str
    start: int | None
    end: int | None
    text_hash: str
    embedded: bool  # has an embedding of the current text for the settings' model


@dataclass(frozen=True)
class StoryInput:
    """Everything the three methods read about one story."""

    story_id: str
    title: str
    document_title: str
    text: str
    text_hash: str
    involved: tuple[str, ...]
    impact_items: tuple[str, ...]
    passages: tuple[PassageRef, ...]
    summary: str = ""  # the list's one-paragraph summary (danluu), "" when none

    @property
    def summary_text(self) -> str:
        """The text the methods read for a story without a document: the list's summary. Empty
        when the story has a document (its text is read instead) or no summary."""
        return "" if self.text_hash else self.summary

    @property
    def body(self) -> str:
        """What the text methods read: the document text, or the list's summary when the
        story has no document (a list entry that was not crawled)."""
        return self.text or self.summary_text

    @property
    def titles(self) -> tuple[str, ...]:
        """The list's title; the page's only when the list gave none, because a page title
        often carries the site's name ("... | Datadog Engineering"), which would tag every
        post of that site."""
        return tuple(t for t in (self.title or self.document_title,) if t.strip())

    @property
    def card_passage_id(self) -> int | None:
        return next((p.id for p in self.passages if p.kind == "card"), None)

    @property
    def text_passages(self) -> tuple[PassageRef, ...]:
        return tuple(p for p in self.passages if p.kind == "text")

    def fingerprint(self, run_key: str) -> str:
        payload = json.dumps(
            [
                run_key,
                self.title,
                self.document_title,
                self.text_hash,
                self.involved,
                self.impact_items,
                [[p.id, p.text_hash, p.embedded] for p in self.text_passages],
                self.card_passage_id,
                self.summary,
            ]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _json_items(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return [value]  # not JSON: one item, as written
    if not isinstance(data, list):
        data = [data]
    return [str(v) for v in data if v is not None and str(v).strip()]


def _unique_items(items: Iterable[str]) -> tuple[str, ...]:
    """First spelling wins among items equal up to case and whitespace (as on the card)."""
    seen: dict[str, str] = {}
    for item in items:
        key = " ".join(item.split()).casefold()
        if key and key not in seen:
            seen[key] = item.strip()
    return tuple(seen.values())


def chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_inputs(
    db: sqlite_utils.Database, story_ids: Sequence[str], model: str, *, with_text: bool
) -> dict[str, StoryInput]:
    """Inputs of these stories. Without `with_text` the document text is left empty (the
    fingerprint needs only its hash; a missing hash is computed from the text)."""
    conn = db.conn
    result: dict[str, StoryInput] = {}
    for part in chunks(list(story_ids)):
        marks = ",".join("?" * len(part))
        stories = {
            row[0]: (row[1] or "", " ".join((row[2] or "").split()))
            for row in conn.execute(
                f"SELECT id, title, summary FROM stories WHERE id IN ({marks})", part
            )
        }
        documents: dict[str, tuple[str, str, str]] = {}
        for sid, title, text_hash, text in conn.execute(
            "SELECT story_id, title, text_hash,"
            f" CASE WHEN ? OR text_hash IS NULL THEN text END FROM documents"
            f" WHERE story_id IN ({marks})",
            [int(with_text), *part],
        ):
            body = text or ""
            digest = text_hash or hashlib.sha256(body.encode("utf-8")).hexdigest()
            documents[sid] = (title or "", digest if body or text_hash else "", body)
        involved: dict[str, list[str]] = {}
        impact: dict[str, list[str]] = {}
        for sid, list_involved, list_impact in conn.execute(
            "SELECT story_id, list_involved, list_impact FROM story_sources"
            f" WHERE story_id IN ({marks}) AND removed_at IS NULL"
            " ORDER BY story_id, source_id, occurrence",
            part,
        ):
            involved.setdefault(sid, []).extend(_json_items(list_involved))
            impact.setdefault(sid, []).extend(_json_items(list_impact))
        passages: dict[str, list[PassageRef]] = {}
        for row in conn.execute(
            'SELECT p.story_id, p.id, p.seq, p.kind, p.start, p."end", p.text_hash,'
            " e.passage_id IS NOT NULL FROM passages p LEFT JOIN embeddings e"
            " ON e.passage_id = p.id AND e.model = ? AND e.text_hash = p.text_hash"
            f" WHERE p.story_id IN ({marks}) ORDER BY p.story_id, p.seq",
            [model, *part],
        ):
            passages.setdefault(row[0], []).append(
                PassageRef(row[1], row[2], row[3], row[4], row[5], row[6] or "", bool(row[7]))
            )
        for sid in part:
            if sid not in stories:
                continue
            doc_title, doc_hash, body = documents.get(sid, ("", "", ""))
            result[sid] = StoryInput(
                story_id=sid,
                title=stories[sid][0],
                document_title=doc_title,
                text=body if with_text else "",
                text_hash=doc_hash,
                involved=_unique_items(involved.get(sid, [])),
                impact_items=_unique_items(impact.get(sid, [])),
                passages=tuple(passages.get(sid, [])),
                summary=stories[sid][1],
            )
    return result


def live_story_ids(db: sqlite_utils.Database, story_ids: Iterable[str] | None) -> list[str]:
    live = [r[0] for r in db.conn.execute("SELECT id FROM stories WHERE removed_at IS NULL")]
    if story_ids is None:
        return live
    wanted = set(story_ids)
    return [sid for sid in live if sid in wanted]
