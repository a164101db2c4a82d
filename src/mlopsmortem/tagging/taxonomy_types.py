"""The taxonomy's data types: components, impacts and the tag matches found in text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TagKind = Literal["component", "impact"]


@dataclass(frozen=True)
class Component:
    """A piece of technology (or a named condition like "CPU throttling") a story involves."""

    name: str
    category: str
    aliases: tuple[str, ...] = ()
    case_sensitive_aliases: tuple[str, ...] = ()
    list_only_aliases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> TagKind:
        return "component"

    @property
    def tag(self) -> str:
        return self.name


@dataclass(frozen=True)
class Impact:
    """A kind of consequence; `description` is written for embedding similarity; `statements`
    are regular expressions (as written in the file, placeholders unexpanded) for sentences
    that state the impact happened, such as "three engineers spent two days" (see
    mlopsmortem.tagging.impact_statements)."""

    id: str
    name: str
    description: str
    aliases: tuple[str, ...] = ()
    case_sensitive_aliases: tuple[str, ...] = ()
    list_only_aliases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    statement_exclude: tuple[str, ...] = ()  # a statement in a sentence matching one is dropped
    exclusive_with: tuple[str, ...] = ()  # impact ids a story cannot also have (outage vs partial)

    @property
    def kind(self) -> TagKind:
        return "impact"

    @property
    def tag(self) -> str:
        return self.id


@dataclass(frozen=True)
class TagMatch:
    """One canonical tag found in text: `alias` is the taxonomy alias that matched at
    `text[start:end]`."""

    kind: TagKind
    tag: str
    alias: str
    start: int
    end: int


__all__ = ["Component", "Impact", "TagKind", "TagMatch"]
