"""A postmortem's text as sections: headings recognised by shape, classified by name.

Extracted text keeps headings as short lines of their own ("Root Cause Analysis", "What
happened?:"), so a heading is a short line without a closing full stop that stands apart (a
blank line around it) or ends with a colon. Its kind comes from the usual postmortem names
(Summary, Impact, Timeline, Root cause, Detection, Resolution, Action items, Lessons learned);
any other heading opens an `other` section. Offsets index the original text exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Section kinds, from the heading's words (lower case, punctuation stripped); first match wins.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "action_items",
            r"^(action items?|follow[- ]?ups?|next steps|remediation items|"
            r"corrective (actions|measures)|preventi(ve|on)|what we.re doing|"
            r"how (are )?we.{0,12}prevent|"
            r"(short|long|medium)[- ]term|improvements|immediate actions)",
        ),
        (
            "lessons",
            r"^(lessons?( learn(ed|t))?|what went (well|wrong)|where we got lucky|"
            r"learnings|takeaways|retrospective)",
        ),
        ("timeline", r"(timeline|chronology|sequence of events)"),
        (
            "root_cause",
            r"^(root[- ]?causes?|causes?|contributing factors?|why did|how did (it|this) happen|"
            r"what went wrong|the underlying (issue|problem)|technical (details|analysis)|"
            r"analysis|trigger)",
        ),
        ("detection", r"^(detection|how (we|it was) (found|detected|noticed))"),
        (
            "resolution",
            r"^(resolution|mitigation|recovery|remediation|the fix|fix|"
            r"how we fixed|response|resolution and recovery|workaround)",
        ),
        ("impact", r"^((customer|user|business) )?impact"),
        ("summary", r"^(summary|incident summary|executive summary|tl;?dr|overview|abstract)"),
        (
            "what_happened",
            r"^(what happened|description|incident description|the incident|"
            r"details|background|the problem|problem|symptoms?)",
        ),
    )
)

_HEADING_MAX_WORDS = 8
_HEADING_MAX_CHARS = 70
_COLON_HEADING_MAX_WORDS = 5
_INTRO_MAX_CHARS = 300
_BULLET_LINE = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.MULTILINE)
_NOT_HEADING_START = re.compile(r"^(\||[-*+•] |\d+[.)] |```|\{|<)")


@dataclass(frozen=True)
class Section:
    kind: str  # one of _KINDS' names, "lead" before the first heading, or "other"
    heading: str
    start: int  # of the body, after the heading line
    end: int


def heading_kind(line: str) -> str:
    """The section kind a heading line names ("other" when none)."""
    words = re.sub(r"[^a-z0-9;' -]+", " ", line.lower().replace("’", "'")).strip()
    words = re.sub(r"\s+", " ", words)
    for kind, pattern in _KINDS:
        if pattern.search(words):
            return kind
    return "other"


def _is_heading(line: str, blank_before: bool, blank_after: bool) -> bool:
    text = line.strip().strip("*#_ ").strip()
    if not text or _NOT_HEADING_START.match(line.strip()):
        return False
    if len(text) > _HEADING_MAX_CHARS or len(text.split()) > _HEADING_MAX_WORDS:
        return False
    if text.endswith((".", ",", ";")) or re.match(r"^[\d:./ -]+$", text):
        return False  # a sentence, or a bare date or time (a timeline's stamp)
    if not (text[0].isupper() or text[0].isdigit()):
        return False
    if text.endswith(":"):  # "What happened?:"; a longer line ending in ":" opens a list
        return len(text.split()) <= _COLON_HEADING_MAX_WORDS
    return blank_before and blank_after


def split_sections(text: str) -> list[Section]:
    """The text's sections in order; the part before the first heading is `lead`, and the
    first line (the title) is not a section of its own."""
    lines: list[tuple[int, int, str]] = []
    position = 0
    for line in text.split("\n"):
        lines.append((position, position + len(line), line))
        position += len(line) + 1
    sections: list[Section] = []
    kind, heading, body_start = "lead", "", 0
    for index, (start, end, line) in enumerate(lines):
        if index == 0:
            body_start = end + 1  # the title line
            continue
        blank_before = index == 0 or not lines[index - 1][2].strip()
        blank_after = index + 1 >= len(lines) or not lines[index + 1][2].strip()
        if _is_heading(line, blank_before, blank_after):
            sections.append(Section(kind, heading, body_start, max(body_start, start)))
            named = heading_kind(line)
            # an unnamed sub-heading ("Technical improvements" under "Action items", whose
            # body is an intro line at most) stays in the section it subdivides
            parent = text[body_start:start]
            subdivided = len(parent) < _INTRO_MAX_CHARS and not _BULLET_LINE.search(parent)
            inherit = named == "other" and kind not in ("lead", "other") and subdivided
            kind = kind if inherit else named
            heading, body_start = line.strip(), min(end + 1, len(text))
    sections.append(Section(kind, heading, body_start, len(text)))
    return [s for s in sections if text[s.start : s.end].strip() or s.heading]


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


def sentences(text: str, start: int, end: int) -> list[Sentence]:
    """The sentences of text[start:end]: each line is split at sentence ends; a line is never
    joined to the next (headings, bullets and table rows stay apart)."""
    found: list[Sentence] = []
    position = start
    for line in text[start:end].split("\n"):
        line_start = position
        position += len(line) + 1
        cursor = 0
        for match in [*_SENTENCE_END.finditer(line), None]:
            piece_end = match.start() if match else len(line)
            piece = line[cursor:piece_end]
            stripped = piece.strip()
            if stripped:
                offset = line_start + cursor + (len(piece) - len(piece.lstrip()))
                found.append(Sentence(offset, offset + len(stripped), stripped))
            if match:
                cursor = match.end()
    return found
