"""The rule method: taxonomy mentions in the titles and the story's body (the document text,
or the list's summary for a story without a document). A title mention tags a component or an
impact. Body mentions tag a component from `Calibration.component_min_mentions` on in a
document, from one mention in a summary (a one-paragraph summary names what failed, not what
was merely used). An impact is tagged from the body only where the text states it: one of its
`statements` ("three engineers spent two days", "was down for 3 hours"), or an alias inside a
heading or an impact section ("Impact: ~38% of log lines lost"); never from alias mentions in
running text (a postmortem names latency, errors and outages while explaining its cause)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlopsmortem.tagging.impact_statements import find_statements, impact_spans, in_spans
from mlopsmortem.tagging.inputs import StoryInput
from mlopsmortem.tagging.tags import Tag
from mlopsmortem.tagging.taxonomy import Taxonomy, find_mentions, map_list_item
from mlopsmortem.tagging.taxonomy_types import TagKind, TagMatch

SNIPPET_CHARS = 100  # each side of a rule mention
TITLE_COMPONENT_CONFIDENCE = 0.95
TITLE_IMPACT_CONFIDENCE = 0.9
# Text-only component mentions: 0.5 + 0.1 per mention, capped below a title hit.
TEXT_CONFIDENCE_BASE = 0.5
TEXT_CONFIDENCE_STEP = 0.1
TEXT_CONFIDENCE_MAX = 0.9
STATEMENT_CONFIDENCE = 0.85
SECTION_CONFIDENCE = 0.8
#: A summary is one paragraph: one mention of a component there is what a document's
#: `component_min_mentions` are.
SUMMARY_MIN_MENTIONS = 1


def snippet(text: str, start: int, end: int, chars: int = SNIPPET_CHARS) -> str:
    """text[start:end] with up to `chars` characters of context each side, on one line."""
    left = max(0, start - chars)
    right = min(len(text), end + chars)
    body = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + body + ("…" if right < len(text) else "")


def _passage_at(story: StoryInput, offset: int) -> int | None:
    for passage in story.text_passages:
        if passage.start is not None and passage.end is not None:
            if passage.start <= offset < passage.end:
                return passage.id
    return None


@dataclass(frozen=True)
class Mentions:
    """Where the rule tagger found each tag: in a title, every text match, and the impact
    statements in the text."""

    title: Mapping[tuple[TagKind, str], tuple[str, TagMatch]]
    text: Mapping[tuple[TagKind, str], tuple[TagMatch, ...]]
    statements: Mapping[tuple[TagKind, str], tuple[TagMatch, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: impact alias mentions inside headings and impact sections of the body
    sections: Mapping[tuple[TagKind, str], tuple[TagMatch, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    from_summary: bool = False  # the body read was the list's summary, not a document

    def count(self, key: tuple[TagKind, str]) -> int:
        return len(self.text.get(key, ()))

    def min_mentions(self, document_min: int) -> int:
        """Body mentions that make a component: `document_min` in a document, fewer in a
        summary."""
        return min(document_min, SUMMARY_MIN_MENTIONS) if self.from_summary else document_min

    def components(self, document_min: int) -> set[str]:
        """Components the rule tags with this document mention count."""
        wanted = self.min_mentions(document_min)
        found = {name for kind, name in self.title if kind == "component"}
        found.update(
            name
            for (kind, name), ms in self.text.items()
            if kind == "component" and len(ms) >= wanted
        )
        return found

    def impacts(self) -> set[str]:
        """Impacts the rule tags: from titles, statements and impact sections."""
        keys = {*self.title, *self.statements, *self.sections}
        return {name for kind, name in keys if kind == "impact"}


def find_story_mentions(taxonomy: Taxonomy, story: StoryInput) -> Mentions:
    title: dict[tuple[TagKind, str], tuple[str, TagMatch]] = {}
    for heading in story.titles:
        for match in find_mentions(taxonomy, heading):
            title.setdefault((match.kind, match.tag), (heading, match))
    body = story.body
    from_summary = not story.text and bool(body)
    # a list's summary is as a whole the list's account of what happened: its impact section
    spans = [(0, len(body))] if from_summary else impact_spans(body)
    text: dict[tuple[TagKind, str], list[TagMatch]] = {}
    sections: dict[tuple[TagKind, str], list[TagMatch]] = {}
    for match in find_mentions(taxonomy, body):
        text.setdefault((match.kind, match.tag), []).append(match)
        if match.kind == "impact" and in_spans(spans, match.start, match.end):
            sections.setdefault((match.kind, match.tag), []).append(match)
    statements: dict[tuple[TagKind, str], list[TagMatch]] = {}
    for match in find_statements(taxonomy.statement_rules, body):
        statements.setdefault((match.kind, match.tag), []).append(match)
    return Mentions(
        MappingProxyType(title),
        MappingProxyType({k: tuple(v) for k, v in text.items()}),
        MappingProxyType({k: tuple(v) for k, v in statements.items()}),
        MappingProxyType({k: tuple(v) for k, v in sections.items()}),
        from_summary=from_summary,
    )


def rule_tags(story: StoryInput, mentions: Mentions, min_mentions: int) -> list[Tag]:
    tags: list[Tag] = []
    body = story.body
    wanted = mentions.min_mentions(min_mentions)
    for key in sorted(set(mentions.title) | set(mentions.text) | set(mentions.statements)):
        kind, name = key
        n = mentions.count(key)
        if key in mentions.title:
            heading, match = mentions.title[key]
            confidence = (
                TITLE_COMPONENT_CONFIDENCE if kind == "component" else TITLE_IMPACT_CONFIDENCE
            )
            tags.append(
                Tag(kind, name, "rule", confidence, f"title: {heading}", story.card_passage_id)
            )
        elif kind == "component" and n >= wanted:
            first = mentions.text[key][0]
            confidence = min(TEXT_CONFIDENCE_MAX, TEXT_CONFIDENCE_BASE + TEXT_CONFIDENCE_STEP * n)
            evidence = f"{n} mentions; first: {snippet(body, first.start, first.end)}"
            tags.append(
                Tag(kind, name, "rule", confidence, evidence, _where(story, mentions, first))
            )
        elif kind == "impact" and key in mentions.statements:
            first = mentions.statements[key][0]
            evidence = f"statement: {snippet(body, first.start, first.end)}"
            tags.append(
                Tag(
                    kind,
                    name,
                    "rule",
                    STATEMENT_CONFIDENCE,
                    evidence,
                    _where(story, mentions, first),
                )
            )
        elif kind == "impact" and key in mentions.sections:
            first = mentions.sections[key][0]
            evidence = f"impact section: {snippet(body, first.start, first.end)}"
            tags.append(
                Tag(
                    kind, name, "rule", SECTION_CONFIDENCE, evidence, _where(story, mentions, first)
                )
            )
    return tags


def _where(story: StoryInput, mentions: Mentions, match: TagMatch) -> int | None:
    """The passage holding a body match: the card for a summary."""
    if mentions.from_summary:
        return story.card_passage_id
    return _passage_at(story, match.start)


def mentioned_keys(taxonomy: Taxonomy, story: StoryInput, mentions: Mentions) -> set[str]:
    """Every tag the story's titles, text or list items touch, whatever the count: the stories
    a taxonomy entry's edit can affect."""
    keys = {
        f"{kind}:{tag}" for kind, tag in (*mentions.title, *mentions.text, *mentions.statements)
    }
    for item in (*story.involved, *story.impact_items):
        keys.update(f"{m.kind}:{m.tag}" for m in map_list_item(taxonomy, item))
    return keys
