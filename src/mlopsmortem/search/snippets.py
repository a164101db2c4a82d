"""Snippets and highlights of keyword matches: which passage a hit shows, FTS5 highlight()
spans, a window of text around the densest run of them, and the HTML that marks them.

A snippet is shown as plain text (`display_text`): the markdown the extractor writes (list
dashes, heading hashes, quote marks, table pipes and rulers, emphasis, links) and the stock
update lines of status pages are left out, and the highlight spans follow the text they
marked."""

from __future__ import annotations

import bisect
import html
import re
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlopsmortem.search.vectors import IndexSnapshot

SNIPPET_CHARS = 300
_MARK_OPEN = "\ue000"  # private-use characters as highlight() markers
_MARK_CLOSE = "\ue001"
_MARK_STAND_IN = "\ue002"  # for a marker character in the text itself
_WORD = re.compile(r"\S+")


def parse_highlighted(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """Split FTS5 highlight() output (private-use markers) into text and [start, end) spans."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    open_at = None
    for piece in re.split(f"([{_MARK_OPEN}{_MARK_CLOSE}])", marked):
        if piece == _MARK_OPEN:
            open_at = length
        elif piece == _MARK_CLOSE:
            if open_at is not None and length > open_at:
                spans.append((open_at, length))
            open_at = None
        else:
            plain.append(piece)
            length += len(piece)
    return "".join(plain), spans


# The text passages a keyword hit's snippet is chosen among: a story's first ones, enough
# for an article's opening pages, each cut to a length no real passage reaches. A crawled
# page split into thousands would otherwise be indexed anew on every search that shows it.
CHOICE_PASSAGES = 16
CHOICE_CHARS = 4_000


def _card_stories(conn: sqlite3.Connection, chosen: Mapping[str, int]) -> list[str]:
    """The stories whose chosen passage (story id -> passage id) is their card."""
    if not chosen:
        return []
    marks = ",".join("?" * len(chosen))
    cards = {
        row[0]
        for row in conn.execute(
            f"SELECT id FROM passages WHERE id IN ({marks}) AND kind = 'card'",
            list(chosen.values()),
        )
    }
    return [story_id for story_id, passage_id in chosen.items() if passage_id in cards]


def _card_stories_passages(
    conn: sqlite3.Connection, chosen: Mapping[str, int]
) -> dict[str, list[int]]:
    """For each story whose chosen passage is its card: the ids of its text passages."""
    stories = _card_stories(conn, chosen)
    ids: dict[str, list[int]] = {}
    if stories:
        for story_id, passage_id in conn.execute(
            f"SELECT story_id, id FROM passages WHERE story_id IN ({','.join('?' * len(stories))})"
            " AND kind = 'text'",
            stories,
        ):
            ids.setdefault(story_id, []).append(passage_id)
    return ids


def text_passages_for_cards(
    conn: sqlite3.Connection,
    chosen: Mapping[str, int],
    snapshot: IndexSnapshot | None,
    sims: np.ndarray | None,
) -> dict[str, int]:
    """The passage to show instead, for each story whose chosen passage (story id -> passage
    id) is its card: the card repeats the title and the lists' tags shown beside the hit
    anyway, while the reader wants what the story itself says. The story's text passage
    nearest to the query by meaning (`sims`: the query's cosine per row of `snapshot`); the
    highlights then mark whichever query words it has. A story without text (a dead link)
    keeps its card. A keyword search has no `sims`: see text_passages_with_words."""
    if snapshot is None or sims is None:
        return {}
    shown: dict[str, int] = {}
    for story_id, ids in _card_stories_passages(conn, chosen).items():
        story = snapshot.positions.get(story_id)
        if story is None:
            continue
        rows = np.arange(snapshot.starts[story], snapshot.ends[story])
        rows = rows[np.isin(snapshot.passage_ids[rows], ids)]
        if len(rows):
            shown[story_id] = int(snapshot.passage_ids[rows[np.argmax(sims[rows])]])
    return shown


class PassageWords:
    """The query's words in a few passages, found exactly as the search found them: by FTS5
    with the main index's tokenizer (`porter unicode61`: case and diacritics folded, Porter
    stems, a word such as `fluent-bit` the phrase of its tokens), in a scratch in-memory index
    of just these passages. The main index would read every passage holding a word (slow on a
    large table) and matches a passage through its story's title too; a Python copy of the
    tokenizer would disagree with FTS5 on some words (docs/search.md). Words are given as FTS5
    phrases (mlopsmortem.search.keyword.fts_phrase). Close it (contextlib.closing) when done."""

    def __init__(self, passages: Sequence[tuple[int, str]]) -> None:
        self._conn = sqlite3.connect(":memory:")
        self._conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
        # occurrences() counts the marker character highlight() inserts: crawled text (an
        # icon font's glyphs) may hold it already, so it becomes its neighbour, which
        # unicode61 reads the same way (both private-use: token characters)
        self._conn.executemany(
            "INSERT INTO t (rowid, text) VALUES (?, ?)",
            [
                (passage_id, text.replace(_MARK_OPEN, _MARK_STAND_IN))
                for passage_id, text in passages
            ],
        )

    def close(self) -> None:
        self._conn.close()

    def containing(self, phrases: Sequence[str]) -> dict[int, int]:
        """Per passage id containing any of `phrases`: how many of them it contains."""
        found: dict[int, int] = {}
        for phrase in dict.fromkeys(phrases):
            for (passage_id,) in self._conn.execute(
                "SELECT rowid FROM t WHERE t MATCH ?", [phrase]
            ):
                found[passage_id] = found.get(passage_id, 0) + 1
        return found

    def occurrences(self, phrases: Sequence[str], passage_ids: Sequence[int]) -> dict[int, int]:
        """Per one of `passage_ids`: how many matches of `phrases` it has, all together, as
        highlight() marks them (overlapping matches, "fluent bit" of fluent-bit and bit, count
        once)."""
        if not phrases or not passage_ids:
            return {}
        rows = self._conn.execute(
            f"SELECT rowid, highlight(t, 0, '{_MARK_OPEN}', '') FROM t WHERE t MATCH ?"
            f" AND rowid IN ({','.join('?' * len(passage_ids))})",
            [" OR ".join(dict.fromkeys(phrases)), *passage_ids],
        )
        return {passage_id: (marked or "").count(_MARK_OPEN) for passage_id, marked in rows}


def _first_text_passages(
    conn: sqlite3.Connection, story_ids: Sequence[str]
) -> dict[str, list[tuple[int, str]]]:
    """Each story's first CHOICE_PASSAGES text passages, in order, as (id, text) cut to
    CHOICE_CHARS."""
    texts: dict[str, list[tuple[int, str]]] = {}
    for story_id in story_ids:
        rows = conn.execute(
            "SELECT id, coalesce(substr(text, 1, ?), '') FROM passages"
            " WHERE story_id = ? AND kind = 'text' ORDER BY seq LIMIT ?",
            [CHOICE_CHARS + 1, story_id, CHOICE_PASSAGES],
        )
        texts[story_id] = [(passage_id, _cut(text)) for passage_id, text in rows]
    return texts


def _cut(text: str) -> str:
    """`text` (read to CHOICE_CHARS + 1) cut to CHOICE_CHARS, without the end of a word cut in
    two: "dns" of a cut "dnsmasq" would match the word dns."""
    if len(text) <= CHOICE_CHARS:
        return text
    end = CHOICE_CHARS
    while end and text[end].isalnum() and text[end - 1].isalnum():
        end -= 1  # a loop, not a regex: `\w+$` would be quadratic on a long run of letters
    return text[:end]


def text_passages_with_words(
    conn: sqlite3.Connection, chosen: Mapping[str, int], phrases: Sequence[str]
) -> dict[str, int]:
    """The keyword-search counterpart of text_passages_for_cards: for each story whose chosen
    passage is its card, the text passage (of its first CHOICE_PASSAGES) containing the most of
    the query's words (`phrases`, as PassageWords takes them), then the most occurrences of
    them, then the first; if none contains one, the card stays, as the only place the words
    are. What a story shows depends on that story alone, not on the other hits of the page.
    Reads at most a page of stories' first passages, so it costs the same at any database
    size."""
    stories = _card_stories(conn, chosen) if phrases else []
    if not stories:
        return {}
    texts = _first_text_passages(conn, stories)
    shown: dict[str, int] = {}
    with closing(PassageWords([p for passages in texts.values() for p in passages])) as words:
        found = words.containing(phrases)
        for story_id, passages in texts.items():
            counts = [found.get(passage_id, 0) for passage_id, _ in passages]
            most = max(counts, default=0)
            if not most:
                continue
            tied = [p for (p, _), count in zip(passages, counts, strict=True) if count == most]
            if len(tied) > 1:
                times = words.occurrences(phrases, tied)
                tied.sort(key=lambda passage_id: -times.get(passage_id, 0))  # stable: first wins
            shown[story_id] = tied[0]
    return shown


def highlight_spans(
    conn: sqlite3.Connection, match: str, texts: dict[int, str]
) -> dict[int, list[tuple[int, int]]]:
    """Per passage id of `texts`, the [start, end) spans of text that `match` matched."""
    spans: dict[int, list[tuple[int, int]]] = {}
    if not texts:
        return spans
    marks = ",".join("?" * len(texts))
    for rowid, marked in conn.execute(
        f"SELECT rowid, highlight(passages_fts, 0, '{_MARK_OPEN}', '{_MARK_CLOSE}')"
        f" FROM passages_fts WHERE passages_fts MATCH ? AND rowid IN ({marks})",
        [match, *texts],
    ):
        plain, found = parse_highlighted(marked or "")
        if plain == texts.get(rowid):
            spans[rowid] = found
    return spans


def make_snippet(
    text: str, spans: Sequence[tuple[int, int]], width: int = SNIPPET_CHARS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """About `width` characters of `text`, shown as `display_text` renders it, around the
    densest run of highlight spans (offsets into `text`).

    Whitespace is collapsed to single spaces, cuts fall between words and are shown as '…'.
    Returns the snippet and the spans that fall inside it, as offsets into the snippet; each
    covers exactly the displayed characters of the text its span marked."""
    text, spans = display_text(text, spans)
    a, b = 0, len(text)
    if len(text) > width:
        if spans:
            best_count, a = -1, 0
            for s, _ in spans:
                start = max(0, s - width // 4)
                inside = sum(1 for x, y in spans if x >= start and y <= start + width)
                if inside > best_count:
                    best_count, a = inside, start
        b = min(len(text), a + width)
        a = max(0, b - width)
        first = min((s for s, e in spans if s >= a and e <= b), default=b)
        last = max((e for s, e in spans if s >= a and e <= b), default=a)
        if a > 0:
            cut = text.find(" ", a, min(first, a + 40))
            a = cut + 1 if cut >= 0 else a
        if b < len(text):
            cut = text.rfind(" ", max(last, b - 40), b)
            b = cut if cut > 0 else b
    # collapse whitespace runs to one space; starts[k] is where word k begins in `text`,
    # placed[k] where it begins in the snippet
    words = [(m.start(), m.group()) for m in _WORD.finditer(text, a, b)]
    starts = [start for start, _ in words]
    placed = []
    length = 0
    for _, word in words:
        placed.append(length)
        length += len(word) + 1

    def position(i: int) -> int | None:
        """Where text[i] lands in the snippet body; None for whitespace (or outside)."""
        k = bisect.bisect_right(starts, i) - 1
        if k < 0 or i >= starts[k] + len(words[k][1]):
            return None
        return placed[k] + i - starts[k]

    prefix = "… " if a > 0 else ""
    body = " ".join(word for _, word in words)
    snippet = prefix + body + (" …" if b < len(text) else "")
    shifted = []
    for s, e in spans:
        if s >= a and e <= b:
            first_char, last_char = position(s), position(e - 1)
            if first_char is not None and last_char is not None:
                shifted.append((len(prefix) + first_char, len(prefix) + last_char + 1))
    return snippet, tuple(shifted)


# --------------------------------------------------------------------------- plain display

# Statuspage's stock update lines ("Resolved — This incident has been resolved."), shown on
# every incident page above the text that says what happened.
_STATUS_WORDS = (
    r"(?:resolved|monitoring|identified|investigating|update|updated|scheduled|in progress"
    r"|verifying|completed|postmortem)"
)
_STOCK_UPDATES = (
    "this incident has been resolved",
    "a fix has been implemented and we are monitoring",
    "the issue has been identified and a fix is being implemented",
    "we are currently investigating this issue",
    "we are continuing to investigate this issue",
    "we are continuing to monitor for any further issues",
    "the scheduled maintenance has been completed",
)
_STATUS_LINE = re.compile(
    rf"^\s*(?:[-*+•]\s+)?{_STATUS_WORDS}\s*[—–:-]\s*(?:{'|'.join(map(re.escape, _STOCK_UPDATES))})",
    re.IGNORECASE,
)
_BANNER_LINES = frozenset(
    ("updates", "subscribe to updates", "powered by atlassian statuspage", "powered by statuspage")
)
# a table's ruler row: | --- | :---: |
_TABLE_RULER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
# a line's block marker: heading hashes, quote marks, list bullets and numbers
_BLOCK_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|(?:>\s?)+|[-*+•]\s+|\d{1,3}[.)]\s+)")
# inline markup: a link's brackets and target, bold and code marks, a table cell's pipe
# (`__` and single `*` stay: identifiers such as __init__ and arithmetic use them)
_INLINE = re.compile(
    r"(?P<link>\[(?P<label>[^\]\n]{1,300})\]\([^)\s]{1,2000}\))"
    r"|(?P<emphasis>\*\*|`)"
    r"|(?P<pipe>\s*\|\s*)"
)
CELL_SEPARATOR = " · "  # between the cells of a table row


def _hidden_line(body: str) -> bool:
    """A line a snippet leaves out: a status page's stock update or banner, a table ruler."""
    return bool(
        _STATUS_LINE.match(body)
        or body.strip().lower().rstrip(":") in _BANNER_LINES
        or _TABLE_RULER.match(body)
    )


def display_text(
    text: str, spans: Sequence[tuple[int, int]] = ()
) -> tuple[str, list[tuple[int, int]]]:
    """`text` as a reader should see it in a snippet, and `spans` ([start, end) offsets into
    `text`) moved onto it.

    Left out: status pages' stock update lines ("Resolved — This incident has been
    resolved.") and banner lines ("Updates"), table rulers, block markers at the start of a
    line (`#`, `>`, `-`, `*`, `1.`), bold and code marks (`**`, a backtick) and a link's
    brackets and target (its label stays). A table row's pipes become " · " between its
    cells. A span keeps the displayed characters of the text it marked (from the first to
    the last of them); a span of left-out characters only is dropped. Linear in the text."""
    out: list[str] = []
    origin: list[int] = []  # per output character: its offset in `text` (non-decreasing)

    def keep(start: int, end: int) -> None:
        out.append(text[start:end])
        origin.extend(range(start, end))

    def insert(value: str, at: int) -> None:
        out.append(value)
        origin.extend([at] * len(value))

    position = 0
    for line in text.splitlines(keepends=True):
        start, end = position, position + len(line)
        position = end
        body = line.rstrip("\r\n")
        line_end = start + len(body)
        if _hidden_line(body):
            insert("\n", start)  # a line break still separates its neighbours
            continue
        marker = _BLOCK_MARKER.match(body)
        cursor = line_start = start + (marker.end() if marker else 0)
        row = body.lstrip().startswith("|")
        for found in _INLINE.finditer(text, cursor, line_end):
            keep(cursor, found.start())
            if found.group("link"):
                keep(found.start("label"), found.end("label"))
            elif found.group("pipe") is not None:
                if not row:
                    keep(found.start(), found.end())  # a pipe in prose stays
                elif line_start < found.start() and found.end() < line_end:
                    insert(CELL_SEPARATOR, found.start())
            cursor = found.end()
        keep(cursor, end)  # the rest of the line and its break
    moved = []
    for s, e in spans:
        first, last = bisect.bisect_left(origin, s), bisect.bisect_left(origin, e)
        while first < last and origin[first] < s:
            first += 1
        if first < last:
            moved.append((first, last))
    return "".join(out), moved


def mark_snippet(snippet: str, highlights: Sequence[tuple[int, int]]) -> str:
    """HTML-escape a snippet, wrapping each highlight span in <mark>…</mark>."""
    parts = []
    position = 0
    for s, e in sorted(highlights):
        if s < position:
            continue
        parts.append(html.escape(snippet[position:s]))
        parts.append(f"<mark>{html.escape(snippet[s:e])}</mark>")
        position = e
    parts.append(html.escape(snippet[position:]))
    return "".join(parts)
