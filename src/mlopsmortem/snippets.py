"""Snippets and highlights of keyword matches: which passage a hit shows, FTS5 highlight()
spans, a window of text around the densest run of them, and the HTML that marks them."""

from __future__ import annotations

import bisect
import html
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import snowballstemmer

if TYPE_CHECKING:
    from mlopsmortem.vector_index import IndexSnapshot

SNIPPET_CHARS = 300
_MARK_OPEN = "\ue000"  # private-use characters as highlight() markers
_MARK_CLOSE = "\ue001"
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[^\W_]+")  # unicode61: runs of letters and digits


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


def _card_stories_text(
    conn: sqlite3.Connection, chosen: Mapping[str, int], *, with_text: bool
) -> dict[str, list[tuple[int, str]]]:
    """For each story whose chosen passage (story id -> passage id) is its card: its text
    passages in order, as (id, text) (text "" unless `with_text`)."""
    if not chosen:
        return {}
    marks = ",".join("?" * len(chosen))
    cards = {
        row[0]
        for row in conn.execute(
            f"SELECT id FROM passages WHERE id IN ({marks}) AND kind = 'card'",
            list(chosen.values()),
        )
    }
    stories = [story_id for story_id, passage_id in chosen.items() if passage_id in cards]
    if not stories:
        return {}
    texts: dict[str, list[tuple[int, str]]] = {}
    column = "text" if with_text else "''"
    for story_id, passage_id, text in conn.execute(
        f"SELECT story_id, id, {column} FROM passages"
        f" WHERE story_id IN ({','.join('?' * len(stories))}) AND kind = 'text' ORDER BY seq",
        stories,
    ):
        texts.setdefault(story_id, []).append((passage_id, text or ""))
    return texts


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
    for story_id, passages in _card_stories_text(conn, chosen, with_text=False).items():
        story = snapshot.positions.get(story_id)
        if story is None:
            continue
        ids = [passage_id for passage_id, _ in passages]
        rows = np.arange(snapshot.starts[story], snapshot.ends[story])
        rows = rows[np.isin(snapshot.passage_ids[rows], ids)]
        if len(rows):
            shown[story_id] = int(snapshot.passage_ids[rows[np.argmax(sims[rows])]])
    return shown


class WordMatcher:
    """Finds the query's words in text as FTS5's `porter unicode61` tokenizer matches them:
    case-folded tokens of letters and digits, compared by their Porter stems, a word such as
    `fluent-bit` as the phrase of its tokens. For choosing a passage among a few stories'
    text without another FTS5 query; FTS5 highlight() still marks the one shown. Snowball's
    "porter" is the original algorithm, FTS5's has a later rule (-bli -> -ble): on the demo
    corpus, 1,359 words x every passage, the two disagree on 4 pairs, all "reproducibly"."""

    def __init__(self, words: Sequence[str]) -> None:
        # a stemmer object keeps state between calls: one per matcher, never shared by threads
        self._stemmer = snowballstemmer.stemmer("porter")
        self._stems: dict[str, str] = {}
        self._terms: list[tuple[str, re.Pattern[str], list[str], list[str]]] = []
        for word in words:
            tokens = [t.lower() for t in _TOKEN.findall(word)]
            if not tokens:
                continue
            stems = [self._stem(t) for t in tokens]
            prefixes = [_stem_prefix(stem) for stem in stems]
            parts = [re.escape(prefix) + r"[^\W_]*" for prefix in prefixes]
            # no look-behind for the word start: it would cost re its literal-prefix search (16x)
            pattern = re.compile(r"[\W_]+".join(parts))
            self._terms.append((prefixes[0], pattern, tokens, stems))

    def _stem(self, token: str) -> str:
        stem = self._stems.get(token)
        if stem is None:  # 20 us a word: each distinct word is stemmed once
            # FTS5's porter tokenizer leaves words under 3 or over 64 characters as they are
            short_or_long = len(token) < 3 or len(token) > 64
            stem = token if short_or_long else self._stemmer.stemWord(token)
            self._stems[token] = stem
        return stem

    def count(self, text: str) -> tuple[int, int]:
        """(how many of the query's words `text` contains, how many times in all)."""
        distinct = total = 0
        folded = text.lower()
        for prefix, pattern, tokens, stems in self._terms:
            found = 0
            if prefix not in folded:  # a substring test is 20x faster than the scan
                continue
            for match in pattern.finditer(folded):
                start = match.start()
                if start and _TOKEN.match(folded, start - 1):
                    continue  # inside a word
                seen = _TOKEN.findall(match.group())
                if seen == tokens or [self._stem(t) for t in seen] == stems:
                    found += 1
            distinct += found > 0
            total += found
        return distinct, total


def _stem_prefix(stem: str) -> str:
    """The start every word with this Porter stem begins with. Porter only rewrites a word's
    end, and all but three rewrites leave the stem a prefix of the word: y -> i (retry:
    retri), an added e (filing: file), -bility -> -bl (sensibility: sensibl)."""
    return stem[:-1] if len(stem) > 1 and stem[-1] in "iel" else stem


def text_passages_with_words(
    conn: sqlite3.Connection, chosen: Mapping[str, int], words: Sequence[str]
) -> dict[str, int]:
    """The keyword-search counterpart of text_passages_for_cards: for each story whose chosen
    passage is its card, the text passage containing the most of the query's `words` (then the
    most occurrences, then the first), if any contains one; otherwise the card stays, as the
    only place the words are. Reads the text of at most a page of stories (a few passages
    each), so it costs the same at any database size; an FTS5 query restricted to those
    passages cost 5-28 ms at 100k passages."""
    cards = _card_stories_text(conn, chosen, with_text=True) if words else {}
    if not cards:
        return {}
    matcher = WordMatcher(words)
    shown: dict[str, int] = {}
    for story_id, passages in cards.items():
        best, best_count = None, (0, 0)
        for passage_id, text in passages:
            count = matcher.count(text)
            if count > best_count:
                best, best_count = passage_id, count
        if best is not None:
            shown[story_id] = best
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
    """About `width` characters of text around the densest run of highlight spans.

    Whitespace is collapsed to single spaces, cuts fall between words and are shown as '…'.
    Returns the snippet and the spans that fall inside it, as offsets into the snippet."""
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


__all__ = [
    "SNIPPET_CHARS",
    "WordMatcher",
    "highlight_spans",
    "make_snippet",
    "mark_snippet",
    "parse_highlighted",
    "text_passages_for_cards",
    "text_passages_with_words",
]
