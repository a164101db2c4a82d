"""Chunking: text cut into passages of at most N model tokens, with exact character offsets.

Chunking (`chunk_text`) is pure: it needs only a token counter, never the embedding model. The
default counter (`token_counter`) loads the model's `tokenizer.json` with the Rust `tokenizers`
library (fast, no torch) and falls back to `approx_token_count` (about 1.3 tokens per
word or punctuation mark) when a model has no local tokenizer file. Counts exclude the [CLS]/[SEP]
special tokens; `sync_passages` reserves those two out of `settings.passage_tokens`, so the model
never silently truncates a passage.

Offsets are exact: `text[chunk.start:chunk.end] == chunk.text` (no normalisation; a chunk keeps
the newlines inside it). Chunks start and end on non-whitespace, and every non-whitespace
character of the input belongs to at least one chunk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlopsmortem.settings import DEFAULT_MODEL

TokenCounter = Callable[[str], int]

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
    from mlopsmortem.passages.embed import resolve_model_path

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
