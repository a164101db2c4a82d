"""The rule method: taxonomy mentions in the titles and the document text. A title mention
tags a component or an impact; text mentions tag a component from
`Calibration.component_min_mentions` on, never an impact (a postmortem names latency, errors
and outages while explaining its cause); an impact's `statements` in the text, sentences that
say it happened ("three engineers spent two days", "was down for 3 hours"), tag it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlopsmortem.tagging.impact_statements import find_statements
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

    def count(self, key: tuple[TagKind, str]) -> int:
        return len(self.text.get(key, ()))


def find_story_mentions(taxonomy: Taxonomy, story: StoryInput) -> Mentions:
    title: dict[tuple[TagKind, str], tuple[str, TagMatch]] = {}
    for heading in story.titles:
        for match in find_mentions(taxonomy, heading):
            title.setdefault((match.kind, match.tag), (heading, match))
    text: dict[tuple[TagKind, str], list[TagMatch]] = {}
    for match in find_mentions(taxonomy, story.text):
        text.setdefault((match.kind, match.tag), []).append(match)
    statements: dict[tuple[TagKind, str], list[TagMatch]] = {}
    for match in find_statements(taxonomy.statement_rules, story.text):
        statements.setdefault((match.kind, match.tag), []).append(match)
    return Mentions(
        MappingProxyType(title),
        MappingProxyType({k: tuple(v) for k, v in text.items()}),
        MappingProxyType({k: tuple(v) for k, v in statements.items()}),
    )


def rule_tags(story: StoryInput, mentions: Mentions, min_mentions: int) -> list[Tag]:
    tags: list[Tag] = []
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
        elif kind == "component" and n >= min_mentions:
            first = mentions.text[key][0]
            confidence = min(TEXT_CONFIDENCE_MAX, TEXT_CONFIDENCE_BASE + TEXT_CONFIDENCE_STEP * n)
            evidence = f"{n} mentions; first: {snippet(story.text, first.start, first.end)}"
            tags.append(
                Tag(kind, name, "rule", confidence, evidence, _passage_at(story, first.start))
            )
        elif kind == "impact" and key in mentions.statements:
            first = mentions.statements[key][0]
            evidence = f"statement: {snippet(story.text, first.start, first.end)}"
            tags.append(
                Tag(
                    kind,
                    name,
                    "rule",
                    STATEMENT_CONFIDENCE,
                    evidence,
                    _passage_at(story, first.start),
                )
            )
    return tags


def mentioned_keys(taxonomy: Taxonomy, story: StoryInput, mentions: Mentions) -> set[str]:
    """Every tag the story's titles, text or list items touch, whatever the count: the stories
    a taxonomy entry's edit can affect."""
    keys = {
        f"{kind}:{tag}" for kind, tag in (*mentions.title, *mentions.text, *mentions.statements)
    }
    for item in (*story.involved, *story.impact_items):
        keys.update(f"{m.kind}:{m.tag}" for m in map_list_item(taxonomy, item))
    return keys
