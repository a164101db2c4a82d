"""Snippets and highlights of keyword matches: FTS5 highlight() spans, a window of text around
the densest run of them, and the HTML that marks them."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Sequence

SNIPPET_CHARS = 300
_MARK_OPEN = "\ue000"  # private-use characters as highlight() markers
_MARK_CLOSE = "\ue001"


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
    out: list[str] = []
    position: dict[int, int] = {}
    previous_space = True
    for i in range(a, b):
        ch = text[i]
        if ch.isspace():
            if not previous_space:
                out.append(" ")
            previous_space = True
            continue
        position[i] = len(out)
        out.append(ch)
        previous_space = False
    while out and out[-1] == " ":
        out.pop()
    prefix = "… " if a > 0 else ""
    body = "".join(out)
    snippet = prefix + body + (" …" if b < len(text) else "")
    shifted = []
    for s, e in spans:
        if s >= a and e <= b and s in position and (e - 1) in position:
            shifted.append((len(prefix) + position[s], len(prefix) + position[e - 1] + 1))
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
    "highlight_spans",
    "make_snippet",
    "mark_snippet",
    "parse_highlighted",
]
