"""The list method: each item a curated list wrote under `involved:` / `impact:` goes through
`taxonomy.map_list_item`; an item that matches nothing is kept as a free tag."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mlopsmortem.tagging.inputs import StoryInput
from mlopsmortem.tagging.tags import Tag
from mlopsmortem.tagging.taxonomy import Taxonomy, map_list_item
from mlopsmortem.tagging.taxonomy_types import TagKind

LIST_CONFIDENCE = 1.0

_FREE_WRAPPING = " \t\r\n`\"'“”‘’*_.,;:"
_LINE_KIND: Mapping[str, TagKind] = MappingProxyType({"involved": "component", "impact": "impact"})


def normalise_free_tag(item: str) -> str:
    """A free list item as a tag: wrapping quotes/backticks/punctuation off, whitespace collapsed,
    lower case unless the item has capitals after its first letter ("AWS CNI Plugin")."""
    text = " ".join(item.split()).strip(_FREE_WRAPPING)
    if not any(ch.isupper() for ch in text[1:]):
        text = text.lower()
    return text


def list_tags(taxonomy: Taxonomy, story: StoryInput) -> list[Tag]:
    """One row per (item, canonical tag); a free row for an item that maps to nothing."""
    tags: list[Tag] = []
    for line, items in (("involved", story.involved), ("impact", story.impact_items)):
        for item in items:
            matches = map_list_item(taxonomy, item)
            evidence = f"{line}: {item}"
            if not matches:
                free = normalise_free_tag(item)
                if free:
                    tags.append(
                        Tag(_LINE_KIND[line], free, "list", LIST_CONFIDENCE, evidence,
                            story.card_passage_id, free=True, original=item)
                    )  # fmt: skip
                continue
            for match in matches:
                tags.append(
                    Tag(match.kind, match.tag, "list", LIST_CONFIDENCE, evidence,
                        story.card_passage_id, original=item)
                )  # fmt: skip
    return tags
