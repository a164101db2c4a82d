"""Site chrome across pages: text blocks that repeat verbatim on several pages of one host.

Per-page extraction (`htmltext`) cannot tell a status page's component list, its "Subscribe to
updates" box or a resolved-banner from the incident itself: on one page they look like text.
Across the pages of one host they give themselves away by repeating word for word. These are
pure functions over extracted texts; `mlopsmortem.crawl.sitechrome` applies them per host.

A *block* is what the extractors separate by blank lines (a paragraph, a heading, a list, a
table); blocks are compared after whitespace normalisation. The rules, and why:

* a block is chrome when it occurs on at least `min_pages` distinct pages of the host
  (`Settings.chrome_min_pages`); a host with fewer pages is never filtered;
* pages whose longest block is the same are versions of one article (an AMP copy, a second
  URL) and count once, so duplicates never turn an article into "chrome";
* a block that is the page's title, or holds more than half of the page's text, is kept;
* a repeated heading-like block (one line of at most `HEADING_WORDS` words, not ending in a
  period) is dropped only when its section (the blocks up to the next repeated heading) lost
  everything, or it ends the page. Postmortem templates share "Timeline", "Impact", "Where
  we got lucky": those headings are structure that passages and the impact tagger read,
  while "Affected components" over the component list, "Updates" over the canned status
  updates and a trailing "Subscribe to updates" head nothing of the page's own. Template
  headings such as "What we are doing about it" run to six words, hence six rather than
  three. The cost: a short repeated line just before the page's own text ("Back to all
  posts") stays;
* a page that would lose every block keeps its text whole.

Everything is deterministic: the result depends on the set of texts, not on their order.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# A one-line block of at most this many words, not ending in a period, reads as a heading
# (see the module docstring).
HEADING_WORDS = 6

_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def split_blocks(text: str) -> list[str]:
    """The blocks of a text, in order, as written (blank lines separate blocks)."""
    return [block.strip() for block in _BLANK_LINES.split(text) if block.strip()]


def normalise(block: str) -> str:
    """A block's comparison form: runs of whitespace become one space."""
    return " ".join(block.split())


def block_hash(normalised: str) -> str:
    """First 16 hex digits of the SHA-256 of a normalised block."""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:16]


def _page_identity(blocks: list[str]) -> str:
    """What makes two pages one page: their longest block (the first of equal length)."""
    return max(blocks, key=len, default="")


def chrome_blocks(texts: Iterable[str | None], min_pages: int) -> dict[str, int]:
    """Normalised blocks found on at least `min_pages` distinct pages of one host, with the
    number of pages holding each. `texts` are the extracted texts of every page of the host
    (None for a page without text). Pages sharing their longest block count once."""
    pages: dict[str, set[str]] = defaultdict(set)
    for text in texts:
        if not text:
            continue
        blocks = [normalise(b) for b in split_blocks(text)]
        identity = _page_identity(blocks)
        for block in set(blocks):
            pages[block].add(identity)
    return {block: len(ids) for block, ids in pages.items() if len(ids) >= max(1, min_pages)}


def _heading_like(block: str) -> bool:
    return "\n" not in block and len(block.split()) <= HEADING_WORDS and block[-1:] != "."


@dataclass(frozen=True)
class Stripped:
    """A page's text without its site chrome, and the blocks dropped (as written)."""

    text: str
    dropped: tuple[str, ...]


def strip_chrome(text: str, chrome: Mapping[str, int], title: str | None = None) -> Stripped:
    """Drop the blocks of `text` that are site chrome (`chrome` as `chrome_blocks` returns it),
    under the module's safeguards. The text comes back unchanged (same string) when nothing
    is dropped; otherwise the kept blocks are joined by one blank line."""
    blocks = split_blocks(text)
    norms = [normalise(b) for b in blocks]
    if not any(n in chrome for n in norms):
        return Stripped(text, ())
    own_title = normalise(title or "")
    total = sum(len(n) for n in norms)
    candidate = [n in chrome and n != own_title and 2 * len(n) <= total for n in norms]
    drop = [False] * len(blocks)
    # backwards, so that each repeated heading knows whether its section kept anything: the
    # section runs to the next repeated heading (a unique heading is part of it)
    section_empty, section_dropped, next_heading_dropped = True, True, True
    for i in range(len(blocks) - 1, -1, -1):
        if candidate[i] and _heading_like(norms[i]):
            drop[i] = next_heading_dropped if section_empty else section_dropped
            section_empty, section_dropped, next_heading_dropped = True, True, drop[i]
        else:
            drop[i] = candidate[i]
            section_empty, section_dropped = False, section_dropped and drop[i]
    if not any(drop) or all(drop):
        return Stripped(text, ())
    kept = [b for b, gone in zip(blocks, drop, strict=True) if not gone]
    dropped = tuple(b for b, gone in zip(blocks, drop, strict=True) if gone)
    return Stripped("\n\n".join(kept), dropped)
