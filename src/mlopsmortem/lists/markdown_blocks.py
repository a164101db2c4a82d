"""Markdown lists as blocks: the list items and paragraphs of a document, with their links,
heading path and source lines, read from markdown-it-py tokens.

`formats` turns these blocks into entries, format by format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Sections whose links are about the list itself, not stories.
SKIP_SECTION = re.compile(
    r"\b(contents|contributors?|contributing|thanks|credits|licen[cs]e|authors?|sponsors?|"
    r"acknowledg\w*|maintainers?|code of conduct)\b",
    re.IGNORECASE,
)
# Sections that point at other lists: recorded as candidate sources.
CANDIDATE_SECTION = re.compile(
    r"\b(other (lists|collections|resources)|more lists|related lists|similar lists|"
    r"lists of (post-?mortems|incidents))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Link:
    href: str
    text: str
    has_image: bool


@dataclass
class Block:
    """A list item or a top-level paragraph, with what its inline content says."""

    kind: str  # "item" | "para"
    line: int  # 1-based
    end_line: int  # 1-based, inclusive
    depth: int
    section: tuple[str, ...]
    inline: Token | None = None
    children: list[Block] = field(default_factory=list)


def markdown_parser() -> MarkdownIt:
    return MarkdownIt("commonmark")


def render_text(children: list[Token]) -> str:
    """Plain text of inline tokens: link text kept, markup dropped."""
    parts: list[str] = []
    for tok in children:
        if tok.type in ("text", "code_inline", "html_inline"):
            parts.append(tok.content if tok.type != "html_inline" else "")
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif tok.type == "image":
            parts.append("")
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def inline_links(inline: Token) -> list[tuple[int, int, Link]]:
    """(start index, end index, link) for each link among the inline's children."""
    found: list[tuple[int, int, Link]] = []
    children = inline.children or []
    i = 0
    while i < len(children):
        tok = children[i]
        if tok.type == "link_open":
            depth, j = 1, i + 1
            while j < len(children) and depth:
                if children[j].type == "link_open":
                    depth += 1
                elif children[j].type == "link_close":
                    depth -= 1
                j += 1
            inner = children[i + 1 : j - 1]
            link = Link(
                href=str(tok.attrGet("href") or "").strip(),
                text=render_text(inner),
                has_image=any(t.type == "image" for t in inner),
            )
            found.append((i, j, link))
            i = j
        else:
            i += 1
    return found


def read_blocks(tokens: list[Token]) -> Iterator[Block]:
    """Top-level blocks in document order; nested list items hang under their parents."""
    section: list[tuple[int, str]] = []
    stack: list[Block] = []
    in_heading: int | None = None
    for tok in tokens:
        if tok.type == "heading_open":
            in_heading = int(tok.tag[1])
        elif tok.type == "heading_close":
            in_heading = None
        elif tok.type == "inline" and in_heading is not None:
            while section and section[-1][0] >= in_heading:
                section.pop()
            section.append((in_heading, render_text(tok.children or [])))
        elif tok.type == "list_item_open":
            start, end = tok.map or (0, 0)
            block = Block("item", start + 1, end, len(stack), tuple(s for _, s in section))
            if stack:
                stack[-1].children.append(block)
            stack.append(block)
        elif tok.type == "list_item_close":
            block = stack.pop()
            if not stack:
                yield block
        elif tok.type == "inline":
            if stack:
                if stack[-1].inline is None:
                    stack[-1].inline = tok
            else:
                start, end = tok.map or (0, 0)
                yield Block("para", start + 1, end, 0, tuple(s for _, s in section), tok)


def section_name(section: tuple[str, ...]) -> str | None:
    return " > ".join(s for s in section if s) or None


def skipped_section(section: tuple[str, ...]) -> bool:
    return any(SKIP_SECTION.search(s) for s in section)


def candidate_section(section: tuple[str, ...]) -> bool:
    return any(CANDIDATE_SECTION.search(s) for s in section)


def is_story_link(link: Link) -> bool:
    """Links worth a story: http(s), not an in-page anchor, not a badge image."""
    return (
        bool(re.match(r"^https?://", link.href, re.IGNORECASE))
        and not link.has_image
        and not link.href.startswith("#")
    )


_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def unsupported_link(inline: Token) -> tuple[str, Link] | None:
    """(scheme, link) of the inline's first link with a URL scheme other than http(s), such as
    `ftp`: the reason an item whose links are all like it has no story."""
    for _, _, link in inline_links(inline):
        match = _SCHEME.match(link.href)
        if match and match.group(1).lower() not in ("http", "https") and not link.has_image:
            return match.group(1).lower(), link
    return None


def walk_items(blocks: list[Block]) -> Iterator[Block]:
    for block in blocks:
        yield block
        yield from walk_items(block.children)


def source_lines(lines: list[str], block: Block) -> str:
    return "\n".join(lines[block.line - 1 : block.end_line]).rstrip()


def story_links(inline: Token) -> list[tuple[int, int, Link]]:
    """The inline's links that can be stories, with their token positions."""
    return [(start, end, link) for start, end, link in inline_links(inline) if is_story_link(link)]
