"""Impact statements: regular expressions in the taxonomy for sentences that say an impact
happened ("three engineers spent most of two days", "the API was down for 38 minutes").

An impact's `statements` are matched case-insensitively anywhere in the text (patterns keep
their gaps inside one sentence: `[^.;\\n]{0,40}`, not `.*`); a match is dropped when the
sentence around it matches one of the impact's `statement_exclude` patterns (planned downtime,
an SLO budget, a staging cluster, one replica of many). Placeholders keep the patterns
readable; `STATEMENT_PLACEHOLDERS` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mlopsmortem.tagging.taxonomy_types import Impact, TagMatch

STATEMENT_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "<COUNT>": r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|several|many"
        r"|multiple|a few|dozens of|hundreds of)",
        "<PEOPLE>": r"(?:engineers?|developers?|researchers?|people|SREs?|team members?"
        r"|data scientists?|of us|teams|staff)",
        "<SPAN>": r"(?:hours?|days?|weeks?|months?|nights?|weekends?|evenings?|sprints?"
        r"|quarters?)",
        "<DURATION>": r"(?:about\s+|roughly\s+|around\s+|nearly\s+|almost\s+|over\s+"
        r"|more than\s+|approximately\s+|~\s*)?\d+(?:[.,]\d+)?\s*"
        r"(?:h|hrs?|hours?|min|mins|minutes?|days?)\b",
    }
)
_PLACEHOLDER = re.compile("|".join(re.escape(k) for k in STATEMENT_PLACEHOLDERS))
# Where a sentence ends, for `statement_exclude`: a full stop, ! or ? before a space, or a line
# break (list items and table cells are sentences of their own).
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def statement_regex(source: str) -> re.Pattern[str]:
    """A statement (or exclusion) as a compiled pattern; raises re.error when not valid."""
    expanded = _PLACEHOLDER.sub(lambda m: STATEMENT_PLACEHOLDERS[m.group(0)], source)
    return re.compile(expanded, re.IGNORECASE)


@dataclass(frozen=True)
class StatementRule:
    """One statement of an impact, with the impact's exclusions."""

    impact: str
    pattern: re.Pattern[str]
    exclude: tuple[re.Pattern[str], ...] = ()


def statement_rules(impacts: Iterable[Impact]) -> tuple[StatementRule, ...]:
    rules = []
    for impact in impacts:
        exclude = tuple(statement_regex(source) for source in impact.statement_exclude)
        for source in impact.statements:
            rules.append(StatementRule(impact.id, statement_regex(source), exclude))
    return tuple(rules)


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence (or line) holding text[start:end]."""
    left = 0
    for boundary in _SENTENCE_END.finditer(text, 0, start):
        left = boundary.end()
    right = _SENTENCE_END.search(text, end)
    return text[left : right.start() if right else len(text)]


def find_statements(rules: Iterable[StatementRule], text: str) -> list[TagMatch]:
    """Every impact statement in text, in text order; `alias` is the matched text."""
    found = []
    for rule in rules:
        for m in rule.pattern.finditer(text):
            if rule.exclude:
                sentence = sentence_around(text, m.start(), m.end())
                if any(x.search(sentence) for x in rule.exclude):
                    continue
            found.append(TagMatch("impact", rule.impact, m.group(0), m.start(), m.end()))
    return sorted(found, key=lambda m: (m.start, m.end, m.tag))


def check_patterns(sources: Iterable[str], what: str) -> str | None:
    """Why these patterns cannot be used (`what` names them in the message), or None."""
    for number, source in enumerate(sources, 1):
        try:
            pattern = statement_regex(source)
        except re.error as exc:
            return f"{what} {number} is not a valid regular expression: {exc}"
        if pattern.search(""):
            return f"{what} {number} matches the empty string"
    return None


# --- impact sections ------------------------------------------------------------------------

#: A line that labels what follows as the impact: "Impact:", "**Customer impact**:", "- Impact:".
_IMPACT_LABEL = re.compile(
    r"^[ \t]*(?:[-*+][ \t]+)?(?:\*\*|__)?(?:[\w-]+[ \t]+)?impacts?(?:\*\*|__)?[ \t]*:(?:\*\*|__)?",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+)$", re.MULTILINE)
#: A short line of its own naming the impact ("Incident Impact", "## Customer impact").
_IMPACT_TITLE = re.compile(
    r"^[ \t]{0,3}(?:#{1,6}[ \t]+)?(?:\*\*)?(?:[\w-]+[ \t]+){0,2}impacts?(?:\*\*)?[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_THEN_TEXT = re.compile(r"\n[ \t]*\n(?![ \t]*(?:[-*+]|\d+[.)])[ \t])")
#: How far an impact section reaches at most: the impact is stated near its label.
IMPACT_SECTION_CHARS = 1500


def impact_spans(text: str) -> list[tuple[int, int]]:
    """Where a text states its impact, as (start, end) spans in text order: every Markdown
    heading line, the rest of an "Impact:" line (with the list or paragraph that follows an
    empty one), and the body of a section titled "Impact" up to the next heading. Each span
    is capped at IMPACT_SECTION_CHARS."""
    spans: list[tuple[int, int]] = []
    headings = [m.start() for m in _HEADING.finditer(text)]
    for m in _HEADING.finditer(text):
        spans.append((m.start(1), m.end(1)))
    for m in _IMPACT_LABEL.finditer(text):
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end < 0 else line_end
        if text[m.end() : line_end].strip(" \t*_"):
            spans.append((m.end(), line_end))
        else:
            spans.append((m.end(), _section_end(text, m.end(), headings, paragraph=True)))
    for m in _IMPACT_TITLE.finditer(text):
        spans.append((m.end(), _section_end(text, m.end(), headings, paragraph=False)))
    return sorted(set(spans))


def _section_end(text: str, start: int, headings: list[int], *, paragraph: bool) -> int:
    """The end of the block opened at `start`: the next heading (with `paragraph`, also the
    first paragraph break after some text), at most IMPACT_SECTION_CHARS away."""
    end = min(len(text), start + IMPACT_SECTION_CHARS)
    following = next((h for h in headings if h > start), None)
    if following is not None:
        end = min(end, following)
    if not paragraph:
        return end
    body = text[start:end]
    first = len(body) - len(body.lstrip())
    found = _BLANK_THEN_TEXT.search(body, first + 1)
    if found is not None and text[start : start + found.start()].strip():
        # "**Impact**:\n- a\n- b\n\nNext paragraph": the list belongs to the label
        end = start + found.start()
    return end


def in_spans(spans: Iterable[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in spans)
