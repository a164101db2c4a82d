"""Markdown failure-story lists to `ListEntry` records.

Parsing walks markdown-it-py tokens (never line regexes over raw markdown), so nested lists,
URLs with balanced parentheses, code spans and emphasis are understood as markdown means them.
Four formats are known; `detect_format` picks one when a source does not name it:

- ``afs``: awful-mlops / k8s.af, ``* [Title - Publisher - kind year](url)`` with nested
  ``* involved: a, b`` and ``* impact: ...`` items.
- ``danluu``: paragraphs ``[Publisher](url). Summary.`` under ``## Section`` headings.
- ``resources``: ``- *tag*: "Title" [Publisher; type; date](url)`` and
  ``- [Name](url) - description`` items under headings.
- ``generic``: every link in a list item or paragraph, with its heading path as section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlopsmortem.lists.markdown_blocks import (
    Block,
    Link,
    candidate_section,
    inline_links,
    markdown_parser,
    read_blocks,
    render_text,
    section_name,
    skipped_section,
    source_lines,
    story_links,
    unsupported_link,
    walk_items,
)

FORMATS = ("afs", "danluu", "resources", "generic")
FAILURE_STORY = "failure story"
RESOURCE = "resource"

# Sections of a failure-story list that hold background reading rather than incidents.
_RESOURCE_SECTION = re.compile(
    r"\b(analysis|further reading|reading|books?|resources|background|talks about)\b",
    re.IGNORECASE,
)
_PROFILE_HOSTS = re.compile(
    r"^https?://(www\.)?(twitter\.com|x\.com|mastodon\.social|linkedin\.com/in|"
    r"github\.com|gitlab\.com|codeberg\.org)/[^/?#]+/?$",
    re.IGNORECASE,
)
_YEAR_TAIL = re.compile(r"^(?P<kind>.*?)[\s,]*\b(?P<year>(?:19|20)\d{2})(?:-\d{1,2}){0,2}$")
_YEAR_ANY = re.compile(r"\b((?:19|20)\d{2})\b")
_TAG_LINE = re.compile(r"^\s*(?P<key>involved|impact)\s*:\s*(?P<value>.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ListEntry:
    """One story as a list wrote it."""

    url: str  # exactly as written in the list
    line: int  # 1-based line of the entry
    section: str | None  # heading path, "Part > Subpart"
    category: str  # FAILURE_STORY | RESOURCE
    title: str | None
    publisher: str | None = None
    kind: str | None = None
    year: int | None = None
    summary: str | None = None
    involved: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()
    tag: str | None = None  # a resource list's *tag*
    list_title: str | None = None  # the entry's own link text, as written
    list_text: str = ""  # the entry's source lines, as written


@dataclass(frozen=True)
class CandidateSource:
    """A link to another list, found under a heading such as "Other lists of postmortems"."""

    url: str
    line: int
    section: str | None
    label: str


@dataclass(frozen=True)
class ParseProblem:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class ParsedList:
    format: str
    entries: tuple[ListEntry, ...]
    candidates: tuple[CandidateSource, ...]
    problems: tuple[ParseProblem, ...]


def split_items(text: str) -> tuple[str, ...]:
    """Split a hand-written "a, b, `c, d`" tag line on commas outside quotes and code."""
    items: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in '`"':
            quote = char
            current.append(char)
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return tuple(item.strip() for item in items if item.strip())


def normalise_kind(raw: str | None, url: str = "") -> str | None:
    """Map a list's own words for a story's form to a small vocabulary."""
    text = (raw or "").lower()
    if re.search(r"post[- ]?mortem", text):
        return "postmortem"
    if "incident" in text:
        return "incident report"
    if "paper" in text:
        return "paper"
    if re.search(
        r"kubecon|conference|\bconf\b|meetup|summit|days\b|talk|slides|webinar|youtube|video",
        text,
    ) or re.search(r"youtube\.com|youtu\.be|vimeo\.com", url):
        return "talk"
    if "podcast" in text:
        return "podcast"
    if re.search(r"tweet|twitter|thread", text):
        return "tweet thread"
    if "blog" in text:
        return "blog post"
    if "article" in text:
        return "article"
    return text.strip() or None


def _split_title(text: str) -> tuple[str, str | None, str | None, int | None]:
    """'Title - Publisher - kind year' -> (title, publisher, raw kind, year)."""
    parts = [p.strip() for p in re.split(r"\s+[-–—]\s+", text)]
    if len(parts) >= 3:
        title, publisher, tail = " - ".join(parts[:-2]), parts[-2], parts[-1]
        match = _YEAR_TAIL.match(tail)
        if match:
            return title, publisher, match.group("kind").strip() or None, int(match.group("year"))
        return title, publisher, tail, None
    if len(parts) == 2:
        title, tail = parts
        match = _YEAR_TAIL.match(tail)
        if match:  # "Title - Publisher 2019": no kind written
            return title, match.group("kind").strip() or None, None, int(match.group("year"))
        return title, tail, None, None
    return text.strip(), None, None, None


class _Builder:
    """Collects entries, candidates and problems for one list."""

    def __init__(self, name: str, lines: list[str]) -> None:
        self.name = name
        self.lines = lines
        self.entries: list[ListEntry] = []
        self.candidates: list[CandidateSource] = []
        self.problems: list[ParseProblem] = []

    def problem(self, line: int, reason: str) -> None:
        self.problems.append(ParseProblem(self.name, line, reason))

    def candidate(self, block: Block, link: Link) -> None:
        self.candidates.append(
            CandidateSource(link.href, block.line, section_name(block.section), link.text)
        )


def _parse_afs(blocks: list[Block], out: _Builder) -> None:
    for block in blocks:
        if skipped_section(block.section) or block.kind != "item" or block.inline is None:
            continue
        links = story_links(block.inline)
        if candidate_section(block.section):
            for _, _, link in links:
                out.candidate(block, link)
            continue
        if not links:
            text = render_text(block.inline.children or [])
            foreign = unsupported_link(block.inline)
            if foreign:
                scheme, link = foreign
                out.problem(block.line, f"unsupported scheme {scheme}: {link.href[:80]!r}")
            elif text:
                out.problem(block.line, f"list item has no link: {text[:60]!r}")
            continue
        start, end, link = links[0]
        if not link.text:
            out.problem(block.line, "link has no title text")
            continue
        title, publisher, raw_kind, year = _split_title(link.text)
        trailing = render_text((block.inline.children or [])[end:]).strip(" .")
        involved: tuple[str, ...] = ()
        impact: tuple[str, ...] = ()
        for child in block.children:
            raw = child.inline.content if child.inline is not None else ""
            match = _TAG_LINE.match(raw.replace("\n", " "))
            if not match:
                out.problem(child.line, "nested item is neither 'involved:' nor 'impact:'")
                continue
            values = split_items(match.group("value"))
            if match.group("key").lower() == "involved":
                involved += values
            else:
                impact += values
        out.entries.append(
            ListEntry(
                url=link.href,
                line=block.line,
                section=section_name(block.section),
                category=FAILURE_STORY,
                title=title,
                publisher=publisher,
                kind=normalise_kind(raw_kind, link.href),
                year=year,
                summary=trailing or None,
                involved=involved,
                impact=impact,
                list_title=link.text,
                list_text=source_lines(out.lines, block),
            )
        )


def _first_sentence(text: str, limit: int = 110) -> str:
    sentence = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0] + "…"
    return sentence.rstrip(".")


def _parse_danluu(blocks: list[Block], out: _Builder) -> None:
    for block in blocks:
        if skipped_section(block.section) or block.inline is None:
            continue
        children = block.inline.children or []
        links = story_links(block.inline)
        if not links:
            continue
        if candidate_section(block.section):
            out.candidate(block, links[0][2])
            continue
        start, end, link = links[0]
        if render_text(children[:start]):
            out.problem(block.line, "entry does not start with a link; skipped")
            continue
        summary = re.sub(r"^[\s.:,;–—-]+", "", render_text(children[end:])) or None
        section = section_name(block.section)
        is_resource = any(_RESOURCE_SECTION.search(s) for s in block.section)
        if is_resource:
            title = link.text
        else:
            title = f"{link.text}: {_first_sentence(summary)}" if summary else link.text
        year_match = _YEAR_ANY.search(summary or "")
        out.entries.append(
            ListEntry(
                url=link.href,
                line=block.line,
                section=section,
                category=RESOURCE if is_resource else FAILURE_STORY,
                title=title,
                publisher=None if is_resource else link.text,
                year=int(year_match.group(1)) if year_match and not is_resource else None,
                summary=summary,
                list_title=link.text,
                list_text=source_lines(out.lines, block),
            )
        )


def _parse_resources(blocks: list[Block], out: _Builder) -> None:
    for block in walk_items(blocks):
        if skipped_section(block.section) or block.inline is None:
            continue
        children = block.inline.children or []
        links = story_links(block.inline)
        if not links:
            continue
        if candidate_section(block.section):
            for _, _, link in links:
                out.candidate(block, link)
            continue
        section = section_name(block.section)
        tag = None
        before_tokens = children[: links[0][0]]
        if len(before_tokens) >= 3 and before_tokens[0].type == "em_open":
            tag = render_text(before_tokens[1:2])
            before_tokens = before_tokens[3:]
        before = render_text(before_tokens).lstrip(":").strip()
        for index, (_, end, link) in enumerate(links):
            publisher = kind = None
            year = None
            summary = None
            title = link.text
            if index == 0 and ";" in link.text:
                meta = [m.strip() for m in link.text.split(";")]
                publisher = meta[0] or None
                kind = normalise_kind(meta[1] if len(meta) > 1 else None, link.href)
                year_match = _YEAR_ANY.search(meta[2] if len(meta) > 2 else "")
                year = int(year_match.group(1)) if year_match else None
                title = before.strip().strip('"“”').strip() or link.text
            elif index == 0 and re.fullmatch(r'["“].+["”]', before):
                # '"Title" [Publisher](url)': the quoted text names the work, the link its home.
                title, publisher = before.strip('"“”').strip(), link.text or None
            elif index == 0:
                following = links[1][0] if len(links) > 1 else len(children)
                summary = re.sub(r"^[\s:–—-]+", "", render_text(children[end:following]))
                summary = summary.strip(" ,") or None
                if before:
                    summary = f"{before} {summary or ''}".strip()
            out.entries.append(
                ListEntry(
                    url=link.href,
                    line=block.line,
                    section=section,
                    category=RESOURCE,
                    title=title or None,
                    publisher=publisher,
                    kind=kind,
                    year=year,
                    summary=summary,
                    tag=tag if index == 0 else None,
                    list_title=link.text,
                    list_text=source_lines(out.lines, block),
                )
            )


def _parse_generic(blocks: list[Block], out: _Builder, category: str) -> None:
    for block in walk_items(blocks):
        if skipped_section(block.section) or block.inline is None:
            continue
        links = [link for _, _, link in story_links(block.inline)]
        for link in links:
            if candidate_section(block.section):
                out.candidate(block, link)
                continue
            if _PROFILE_HOSTS.match(link.href):
                continue
            text = render_text(block.inline.children or [])
            out.entries.append(
                ListEntry(
                    url=link.href,
                    line=block.line,
                    section=section_name(block.section),
                    category=category,
                    title=link.text or None,
                    summary=text if text != link.text else None,
                    list_title=link.text,
                    list_text=source_lines(out.lines, block),
                )
            )


def detect_format(blocks: list[Block]) -> str:
    """The format most of the list's entries are written in."""
    afs = danluu = resources = 0
    for block in blocks:
        if block.inline is None or skipped_section(block.section):
            continue
        children = block.inline.children or []
        links = inline_links(block.inline)
        if block.kind == "item":
            if any(
                child.inline is not None and _TAG_LINE.match(child.inline.content)
                for child in block.children
            ):
                afs += 2
            elif links and links[0][0] == 0 and _split_title(links[0][2].text)[3] is not None:
                afs += 1
            for item in walk_items([block]):
                if item.inline is None:
                    continue
                item_links = inline_links(item.inline)
                first = (item.inline.children or [None])[0]
                if (first is not None and first.type == "em_open") or any(
                    ";" in link.text for _, _, link in item_links
                ):
                    resources += 1
        elif links and not render_text(children[: links[0][0]]):
            rest = render_text(children[links[0][1] :])
            if rest.startswith("."):
                danluu += 1
    scores = {"afs": afs, "danluu": danluu, "resources": resources}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 2 else "generic"


def parse_list(
    text: str, *, name: str, format: str | None = None, category: str | None = None
) -> ParsedList:
    """Parse a markdown list. `name` is used in problem messages (FILE:LINE: reason)."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown list format {format!r}; known: {', '.join(FORMATS)}")
    tokens = markdown_parser().parse(text)
    blocks = list(read_blocks(tokens))
    chosen = format or detect_format(blocks)
    out = _Builder(name, text.splitlines())
    if chosen == "afs":
        _parse_afs(blocks, out)
    elif chosen == "danluu":
        _parse_danluu(blocks, out)
    elif chosen == "resources":
        _parse_resources(blocks, out)
    else:
        _parse_generic(blocks, out, category or RESOURCE)
    return ParsedList(chosen, tuple(out.entries), tuple(out.candidates), tuple(out.problems))
