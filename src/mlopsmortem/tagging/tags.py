"""What every tagging method produces: `Tag` rows and one story's `StoryTags`; the package's
error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.tagging.taxonomy_types import TagKind

Method = Literal["list", "rule", "semantic"]


class TaggingError(MlopsmortemError):
    """The calibration file is missing or invalid, or stored vectors do not fit the model."""


@dataclass(frozen=True)
class Tag:
    """One row of `tags`, before it has a story and a taxonomy version."""

    kind: TagKind
    tag: str
    method: Method
    confidence: float
    evidence: str
    passage_id: int | None = None
    free: bool = False
    original: str | None = None

    def row(self, story_id: str, taxonomy_version: str) -> dict[str, Any]:
        return {
            "story_id": story_id,
            "kind": self.kind,
            "tag": self.tag,
            "method": self.method,
            "free": int(self.free),
            "original": self.original,
            "confidence": round(self.confidence, 4),
            "evidence": self.evidence,
            "passage_id": self.passage_id,
            "taxonomy_version": taxonomy_version,
        }


@dataclass(frozen=True)
class StoryTags:
    """One story's tags from all three methods, the `kind:tag` keys its inputs mention (kept in
    `tag_inputs` for incremental re-tagging) and what the semantic step did."""

    tags: tuple[Tag, ...]
    mentions: frozenset[str]
    semantic: Literal["done", "no-text", "pending", "off"]
