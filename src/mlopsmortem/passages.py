"""Passages: the units that are embedded and full-text indexed.

Every live story gets one *card* passage (seq 0: title, publisher, kind, year, the list's summary
and tags) followed by *text* passages (seq 1..n) cut from its extracted document.

Chunking (`chunk_text`) is pure: it needs only a token counter, never the embedding model. The
default counter (`token_counter`) loads the model's `tokenizer.json` with the Rust `tokenizers`
library (milliseconds, no torch) and falls back to `approx_token_count` (about 1.3 tokens per
word or punctuation mark) when a model has no local tokenizer file. Counts exclude the [CLS]/[SEP]
special tokens; `sync_passages` reserves those two out of `settings.passage_tokens`, so the model
never silently truncates a passage.

Offsets are exact: `text[chunk.start:chunk.end] == chunk.text` (no normalisation; a chunk keeps
the newlines inside it). Chunks start and end on non-whitespace, and every non-whitespace
character of the input belongs to at least one chunk.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlite_utils

from mlopsmortem.settings import DEFAULT_MODEL, Settings

TokenCounter = Callable[[str], int]

SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the model around every passage
SYNC_STORIES_PER_TRANSACTION = 100

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence ends after . ! ? or … (plus closing quotes/brackets) followed by whitespace, or at a
# line break: extracted web text puts list items, headings and table rows on their own lines.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_WORD = re.compile(r"\S+")
_APPROX_PIECE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ListTags:
    """The hand-written 'involved' and 'impact' items of a story's list entries."""

    involved: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncCounts:
    stories: int = 0  # live stories looked at
    changed_stories: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- token counting


def approx_token_count(text: str) -> int:
    """Cheap WordPiece estimate: 1.3 tokens per word or punctuation mark, rounded up.

    Subadditive (the count of a concatenation never exceeds the sum of the counts), which is what
    the chunker needs to keep its limit."""
    return math.ceil(len(_APPROX_PIECE.findall(text)) * 1.3)


class TokenizerCounter:
    """Counts WordPiece tokens (without special tokens) with a model's `tokenizer.json`."""

    def __init__(self, tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # the shipped tokenizer.json truncates and pads to 128: counting needs neither
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.tokenizer_file = tokenizer_file

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@lru_cache(maxsize=8)
def token_counter(model_name: str = DEFAULT_MODEL) -> TokenCounter:
    """The token counter for `model_name`, cached per process and name (the only cache here).

    Uses the model's local tokenizer.json when there is one, else `approx_token_count`."""
    from mlopsmortem.embed import resolve_model_path

    path = resolve_model_path(model_name)
    if path is not None and (path / "tokenizer.json").is_file():
        return TokenizerCounter(path / "tokenizer.json")
    return approx_token_count


# --------------------------------------------------------------------------- chunking


@dataclass(frozen=True)
class _Unit:
    """A piece of text the chunker never cuts: a sentence, or part of an over-long one."""

    start: int
    end: int
    tokens: int
    paragraph: int


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _paragraphs(text: str) -> list[tuple[int, int]]:
    spans = []
    position = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append(_trimmed(text, position, match.start()))
        position = match.end()
    spans.append(_trimmed(text, position, len(text)))
    return [(s, e) for s, e in spans if e > s]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    position = start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append(_trimmed(text, position, match.end()))
        position = match.end()
    spans.append(_trimmed(text, position, end))
    return [(s, e) for s, e in spans if e > s]


def _split_long_word(
    text: str, start: int, end: int, max_tokens: int, count: TokenCounter
) -> list[tuple[int, int, int]]:
    """Cut a single over-long 'word' (a URL, a base64 blob) at character positions."""
    pieces = []
    while start < end:
        # binary search for the longest prefix that fits
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        pieces.append((start, lo, count(text[start:lo])))
        start = lo
    return pieces


def _split_long_sentence(
    text: str, start: int, end: int, max_tokens: int, count: TokenCounter
) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence between words into pieces of at most max_tokens."""
    words: list[tuple[int, int, int]] = []
    for match in _WORD.finditer(text, start, end):
        n = count(match.group())
        if n > max_tokens:
            words.extend(_split_long_word(text, match.start(), match.end(), max_tokens, count))
        else:
            words.append((match.start(), match.end(), n))
    pieces: list[tuple[int, int, int]] = []
    piece_start, piece_end, piece_tokens = words[0]
    for w_start, w_end, n in words[1:]:
        if piece_tokens + n <= max_tokens:
            piece_end, piece_tokens = w_end, piece_tokens + n
        else:
            pieces.append((piece_start, piece_end, piece_tokens))
            piece_start, piece_end, piece_tokens = w_start, w_end, n
    pieces.append((piece_start, piece_end, piece_tokens))
    return pieces


def _units(text: str, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    units = []
    for paragraph, (p_start, p_end) in enumerate(_paragraphs(text)):
        for s_start, s_end in _sentences(text, p_start, p_end):
            n = count(text[s_start:s_end])
            if n <= max_tokens:
                units.append(_Unit(s_start, s_end, n, paragraph))
                continue
            for start, end, tokens in _split_long_sentence(text, s_start, s_end, max_tokens, count):
                units.append(_Unit(start, end, tokens, paragraph))
    return units


def _overlap(
    text: str,
    units: Sequence[_Unit],
    first_index: int,
    end_index: int,
    overlap_tokens: int,
    count: TokenCounter,
) -> tuple[int, int] | None:
    """Start offset and token count of the tail of the chunk units[first_index:end_index] to
    repeat at the start of the next chunk.

    Whole trailing sentences when they fit in overlap_tokens (never more than the chunk's own
    units, so chunks start strictly after one another), else the trailing words of the last one.
    None when nothing fits."""
    if overlap_tokens <= 0 or end_index <= first_index:
        return None
    tokens = 0
    start = None
    i = end_index - 1
    paragraph = units[i].paragraph
    while (
        i > first_index
        and units[i].paragraph == paragraph
        and tokens + units[i].tokens <= overlap_tokens
    ):
        tokens += units[i].tokens
        start = units[i].start
        i -= 1
    if start is not None:
        return start, tokens
    last = units[end_index - 1]
    words = list(_WORD.finditer(text, last.start, last.end))
    for match in reversed(words[1:]):  # never the whole unit: it did not fit
        n = count(match.group())
        if tokens + n > overlap_tokens:
            break
        tokens += n
        start = match.start()
    return (start, tokens) if start is not None else None


def chunk_text(
    text: str,
    *,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Split text into passages of at most max_tokens tokens with exact character offsets.

    Sentences (and lines) are packed greedily; a chunk prefers to end at a paragraph break when
    that keeps it at least half full. A sentence longer than the limit is cut between words (a
    word longer than the limit, between characters). When a chunk ends inside a paragraph the
    next one repeats up to overlap_tokens tokens of its tail (whole sentences when they fit);
    after a paragraph break there is no overlap. count_tokens defaults to the bundled model's
    tokenizer (`token_counter()`, itself `approx_token_count` when that is not installed).
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    count = count_tokens or token_counter()
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    units = _units(text, max_tokens, count)
    spans: list[tuple[int, int, list[_Unit]]] = []  # (start, end, units it was built from)
    i = 0
    carry: tuple[int, int] | None = None  # overlap (start offset, tokens) from the previous chunk
    while i < len(units):
        if carry is not None and carry[1] + units[i].tokens > max_tokens:
            carry = None
        total = carry[1] if carry else 0
        j = i
        while j < len(units) and total + units[j].tokens <= max_tokens:
            total += units[j].tokens
            j += 1
        if j < len(units) and units[j].paragraph == units[j - 1].paragraph:
            # prefer the last paragraph break inside the chunk if it leaves it half full
            running = carry[1] if carry else 0
            best = None
            for b in range(i + 1, j):
                running += units[b - 1].tokens
                if units[b].paragraph != units[b - 1].paragraph and running >= max_tokens / 2:
                    best = b
            if best is not None:
                j = best
        start = carry[0] if carry else units[i].start
        spans.append((start, units[j - 1].end, units[i:j]))
        paragraph_break = j < len(units) and units[j].paragraph != units[j - 1].paragraph
        carry = None if paragraph_break else _overlap(text, units, i, j, overlap_tokens, count)
        i = j
    chunks: list[Chunk] = []
    for start, end, members in spans:
        if count is approx_token_count or count(text[start:end]) <= max_tokens:
            chunks.append(Chunk(text[start:end], start, end))
        else:  # a tokenizer that is not additive across the cut: fall back to single units
            chunks.extend(Chunk(text[u.start : u.end], u.start, u.end) for u in members)
    return chunks


# --------------------------------------------------------------------------- cards


def _json_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        text = " ".join(item.split())
        if text and text.lower() not in seen:
            seen[text.lower()] = text
    return list(seen.values())


def card_text(story: Mapping[str, Any], list_tags: ListTags | None = None) -> str:
    """The card passage of a story: what the lists say about it, one fact per line."""
    lines = []
    title = " ".join(str(story.get("title") or story.get("url") or "").split())
    if title:
        lines.append(title)
    meta = [
        str(v).strip()
        for v in (story.get("publisher"), story.get("kind"), story.get("year"))
        if v is not None and str(v).strip()
    ]
    if meta:
        lines.append(" · ".join(meta))
    summary = " ".join(str(story.get("summary") or "").split())
    if summary:
        lines.append(summary)
    tags = list_tags or ListTags()
    for label, items in (
        ("Involved", tags.involved),
        ("Impact", tags.impact),
        ("Components", _json_list(story.get("components"))),
        ("Impacts", _json_list(story.get("impacts"))),
    ):
        values = _unique(items)
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    return "\n".join(lines)


def list_tags_for(db: sqlite_utils.Database, story_id: str) -> ListTags:
    """Merge the involved/impact items of every live list entry of a story (first spelling wins)."""
    involved: list[str] = []
    impact: list[str] = []
    rows = db.execute(
        "SELECT list_involved, list_impact FROM story_sources"
        " WHERE story_id = ? AND removed_at IS NULL ORDER BY source_id, occurrence",
        [story_id],
    ).fetchall()
    for list_involved, list_impact in rows:
        involved.extend(_json_list(list_involved))
        impact.extend(_json_list(list_impact))
    return ListTags(tuple(_unique(involved)), tuple(_unique(impact)))


# --------------------------------------------------------------------------- sync


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Passage:
    seq: int
    kind: str
    text: str
    start: int | None
    end: int | None
    text_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_hash", text_hash(self.text))


def build_passages(
    story: Mapping[str, Any],
    list_tags: ListTags,
    document_text: str | None,
    *,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: TokenCounter,
) -> list[_Passage]:
    passages = [_Passage(0, "card", card_text(story, list_tags), None, None)]
    for seq, chunk in enumerate(
        chunk_text(
            document_text or "",
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
            count_tokens=count_tokens,
        ),
        start=1,
    ):
        passages.append(_Passage(seq, "text", chunk.text, chunk.start, chunk.end))
    return passages


def _delete_passages(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    for i in range(0, len(ids), 500):
        part = list(ids[i : i + 500])
        marks = ",".join("?" * len(part))
        conn.execute(f"DELETE FROM embeddings WHERE passage_id IN ({marks})", part)
        conn.execute(f"DELETE FROM passages_fts WHERE rowid IN ({marks})", part)
        conn.execute(f"DELETE FROM passages WHERE id IN ({marks})", part)


def _sync_story(
    conn: sqlite3.Connection, story_id: str, title: str, wanted: Sequence[_Passage]
) -> tuple[int, int, int, int]:
    """Apply the wanted passages of one story; returns (inserted, updated, deleted, unchanged)."""
    existing = {
        row[1]: row
        for row in conn.execute(
            'SELECT id, seq, text_hash, start, "end" FROM passages WHERE story_id = ?', [story_id]
        )
    }
    inserted = updated = unchanged = 0
    title_checked = False
    for passage in wanted:
        row = existing.pop(passage.seq, None)
        if row is None:
            cursor = conn.execute(
                'INSERT INTO passages (story_id, seq, kind, text, start, "end", text_hash)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [story_id, passage.seq, passage.kind, passage.text, passage.start, passage.end,
                 passage.text_hash],
            )  # fmt: skip
            conn.execute(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, ?)",
                [cursor.lastrowid, passage.text, title],
            )
            inserted += 1
        elif row[2] != passage.text_hash:
            conn.execute(
                'UPDATE passages SET kind = ?, text = ?, start = ?, "end" = ?, text_hash = ?'
                " WHERE id = ?",
                [passage.kind, passage.text, passage.start, passage.end, passage.text_hash, row[0]],
            )
            conn.execute(
                "UPDATE passages_fts SET text = ?, title = ? WHERE rowid = ?",
                [passage.text, title, row[0]],
            )
            updated += 1
            if passage.seq == 0 and not title_checked:
                # the title is part of the card: only a changed card can mean a changed title
                title_checked = True
                conn.execute(
                    "UPDATE passages_fts SET title = ? WHERE rowid IN"
                    " (SELECT id FROM passages WHERE story_id = ?) AND title IS NOT ?",
                    [title, story_id, title],
                )
        else:
            if (row[3], row[4]) != (passage.start, passage.end):
                conn.execute(
                    'UPDATE passages SET start = ?, "end" = ? WHERE id = ?',
                    [passage.start, passage.end, row[0]],
                )
            unchanged += 1
    surplus = [row[0] for row in existing.values()]
    if surplus:
        _delete_passages(conn, surplus)
    return inserted, updated, len(surplus), unchanged


def sync_passages(
    db: sqlite_utils.Database,
    story_ids: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    count_tokens: TokenCounter | None = None,
) -> SyncCounts:
    """Bring `passages` and `passages_fts` in line with stories, list entries and documents.

    Looks at every live story (or only `story_ids`), compares the wanted passages with the stored
    ones by (seq, text_hash), inserts new ones, updates changed ones in place (their old
    embedding stays until `embed_passages` notices the hash differs), deletes surplus ones with
    their embeddings and FTS rows. Passages and FTS rows change in the same transaction; one
    transaction per 100 stories. An unchanged story causes no write at all. Removed stories are
    skipped (their passages stay, search hides them).
    """
    settings = settings or Settings()
    count = count_tokens or token_counter(settings.model_name)
    max_tokens = max(1, settings.passage_tokens - SPECIAL_TOKENS)
    overlap = settings.passage_overlap_tokens
    conn = db.conn
    if story_ids is None:
        ids = [r[0] for r in conn.execute("SELECT id FROM stories WHERE removed_at IS NULL")]
    else:
        wanted_ids = list(dict.fromkeys(story_ids))
        ids = []
        for i in range(0, len(wanted_ids), 500):
            part = wanted_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            ids.extend(
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM stories WHERE removed_at IS NULL AND id IN ({marks})", part
                )
            )
    totals = [0, 0, 0, 0, 0]  # changed stories, inserted, updated, deleted, unchanged
    for i in range(0, len(ids), SYNC_STORIES_PER_TRANSACTION):
        part = ids[i : i + SYNC_STORIES_PER_TRANSACTION]
        marks = ",".join("?" * len(part))
        stories = {
            row["id"]: row for row in db.query(f"SELECT * FROM stories WHERE id IN ({marks})", part)
        }
        documents = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                f"SELECT story_id, text, title FROM documents WHERE story_id IN ({marks})", part
            )
        }
        with conn:
            for story_id in part:
                story = stories[story_id]
                doc_text, doc_title = documents.get(story_id, (None, None))
                title = story.get("title") or doc_title or story.get("url") or ""
                wanted = build_passages(
                    {**story, "title": title},
                    list_tags_for(db, story_id),
                    doc_text,
                    max_tokens=max_tokens,
                    overlap_tokens=overlap,
                    count_tokens=count,
                )
                ins, upd, dele, same = _sync_story(conn, story_id, title, wanted)
                totals[0] += bool(ins or upd or dele)
                for k, v in enumerate((ins, upd, dele, same), start=1):
                    totals[k] += v
    return SyncCounts(len(ids), *totals)
