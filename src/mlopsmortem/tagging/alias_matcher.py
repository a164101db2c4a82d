"""The alias matcher: one compiled regex per first character over every tag's aliases.

Matching rules (the same for components and impacts; docs/tagging.md has examples):

* A tag's canonical name (and an impact's id) is one of its aliases. Aliases match on word
  boundaries; hyphens, underscores and spaces inside them are interchangeable and optional, a
  trailing plural "s"/"es" is accepted, an apostrophe may be straight, curly or missing.
* Aliases are case-insensitive, except `case_sensitive_aliases` and any alias of at most three
  letters or digits ("DNS", "S3"), which match only with the case as written.
* `list_only_aliases` (too ambiguous for prose: "Ray", "Go") match only in list items
  (`map_list_item`), and there only when no ordinary alias of the same kind matched.
* `exclude` phrases ("at the helm") claim their span like an alias and yield no tag.
* Overlapping matches: the longest wins, then the leftmost. Nothing inside a link is tagged.
* In `map_list_item`, an item that is as a whole an alias maps to that tag whatever its case,
  wrapping backticks, quotes and --flag dashes aside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mlopsmortem.tagging.taxonomy_types import Component, Impact, TagKind, TagMatch

#: Aliases this short (counting letters and digits) are case-sensitive without being listed.
SHORT_ALIAS_CHARS = 3
_SEPARATORS = re.compile(r"[\s\-_]+")
_APOSTROPHES = re.compile(r"['’]")
_WORD_START = re.compile(r"(?<!\w)\w")
# Links are references, not mentions: nothing inside one is tagged.
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]\"'`]+")
# Between the words of an alias: nothing, one hyphen or underscore, or a little whitespace,
# possibly with the backticks, quotes and asterisks of Markdown ("`latest` tag"). Bounded, so
# a long run of blanks can neither join two far-apart words nor cost quadratic time.
_GAP = r"(?:[-_]|[`\"*]{0,2}\s{1,8}[`\"*]{0,2}|[`\"*]{1,2})?"
# What a curated list wraps items in: `code`, "quotes", *emphasis*, --flag dashes, a full stop.
_ITEM_WRAPPING = " \t\r\n`\"'“”‘’*_.,;:-"


@dataclass(frozen=True)
class _Alias:
    kind: TagKind
    tag: str
    alias: str
    case_sensitive: bool
    list_only: bool
    exclude: bool = False  # a phrase that claims its span and yields no tag


def alias_key(text: str) -> str:
    """The form two aliases are compared in: casefolded, without separators or apostrophes."""
    return _SEPARATORS.sub("", _APOSTROPHES.sub("", text)).casefold()


def _is_short(alias: str) -> bool:
    return sum(ch.isalnum() for ch in alias) <= SHORT_ALIAS_CHARS


def _alias_regex(alias: str, case_sensitive: bool) -> str:
    tokens = [t for t in _SEPARATORS.split(alias.strip()) if t]
    parts = [_APOSTROPHES.sub("['’]?", re.escape(t).replace("’", "'")) for t in tokens]
    body = _GAP.join(parts)
    if alias[-1].isalpha():
        body += "(?:e?s)?"
    elif alias[-1].isdigit():
        body += "s?"  # "A100s", "H100s"
    if alias[-1].isalnum() or alias[-1] == "_":
        body += r"(?!\w)"
    return body if case_sensitive else f"(?i:{body})"


@dataclass(frozen=True)
class Matcher:
    """Compiled alias patterns for one taxonomy, dispatched on the (casefolded) first character
    of a word so each position tries only the aliases that can start there."""

    aliases: tuple[_Alias, ...]
    text_patterns: Mapping[str, re.Pattern[str]]
    list_patterns: Mapping[str, re.Pattern[str]]
    whole_items: Mapping[str, int]  # alias_key -> index into `aliases`

    @classmethod
    def build(cls, tags: Iterable[Component | Impact]) -> Matcher:
        aliases: list[_Alias] = []
        for tag in tags:
            for spec in tag_aliases(tag):
                aliases.append(spec)
        whole: dict[str, int] = {}
        for index, spec in enumerate(aliases):
            if not spec.exclude:
                whole.setdefault(alias_key(spec.alias), index)
        return cls(
            aliases=tuple(aliases),
            text_patterns=_compile(aliases, with_list_only=False),
            list_patterns=_compile(aliases, with_list_only=True),
            whole_items=MappingProxyType(whole),
        )

    def scan(self, text: str, *, list_mode: bool = False) -> list[TagMatch]:
        """Non-overlapping matches in `text`, longest first then leftmost, in text order."""
        return [
            TagMatch(spec.kind, spec.tag, spec.alias, start, end)
            for spec, start, end in self._scan(text, list_mode=list_mode)
            if not spec.exclude
        ]

    def _scan(self, text: str, *, list_mode: bool) -> list[tuple[_Alias, int, int]]:
        patterns = self.list_patterns if list_mode else self.text_patterns
        candidates: list[tuple[int, int, int]] = []
        for word in _WORD_START.finditer(text):
            pattern = patterns.get(word.group().casefold())
            if pattern is None:
                continue
            found = pattern.match(text, word.start())
            if found is not None and found.lastgroup is not None:
                candidates.append((found.start(), found.end(), int(found.lastgroup[1:])))
        candidates.sort(key=lambda c: (c[0] - c[1], c[0]))
        taken = bytearray(len(text))
        for url in _URL.finditer(text):
            taken[url.start() : url.end()] = b"\x01" * (url.end() - url.start())
        chosen: list[tuple[int, int, int]] = []
        for start, end, index in candidates:
            if any(taken[start:end]):
                continue
            taken[start:end] = b"\x01" * (end - start)
            chosen.append((start, end, index))
        chosen.sort()
        return [(self.aliases[index], start, end) for start, end, index in chosen]

    def map_item(self, text: str) -> list[TagMatch]:
        """`map_list_item` on this matcher: whole-item alias first, else a list-mode scan in
        which list-only aliases are a fallback per kind; one match per tag."""
        whole = self.whole_item(text)
        if whole is not None:
            return [whole]
        found = [hit for hit in self._scan(text, list_mode=True) if not hit[0].exclude]
        specific = {spec.kind for spec, _, _ in found if not spec.list_only}
        result: list[TagMatch] = []
        seen: set[tuple[str, str]] = set()
        for spec, start, end in found:
            if spec.list_only and spec.kind in specific:
                continue
            if (spec.kind, spec.tag) not in seen:
                seen.add((spec.kind, spec.tag))
                result.append(TagMatch(spec.kind, spec.tag, spec.alias, start, end))
        return result

    def whole_item(self, text: str) -> TagMatch | None:
        """The tag whose alias is the entire item, wrapping quotes and backticks aside."""
        stripped = text.strip(_ITEM_WRAPPING)
        if not stripped:
            return None
        index = self.whole_items.get(alias_key(stripped))
        if index is None:
            return None
        spec = self.aliases[index]
        start = text.index(stripped)
        return TagMatch(spec.kind, spec.tag, spec.alias, start, start + len(stripped))


def tag_aliases(tag: Component | Impact) -> list[_Alias]:
    sensitive = set(tag.case_sensitive_aliases)
    list_only = set(tag.list_only_aliases)
    names = [tag.name] + ([tag.id] if isinstance(tag, Impact) else [])
    ordered = [*names, *tag.aliases, *tag.case_sensitive_aliases, *tag.list_only_aliases]
    seen: set[str] = set()
    result: list[_Alias] = []
    for alias in ordered:
        if alias in seen:
            continue
        seen.add(alias)
        result.append(
            _Alias(
                kind=tag.kind,
                tag=tag.tag,
                alias=alias,
                case_sensitive=alias in sensitive or _is_short(alias),
                list_only=alias in list_only,
            )
        )
    for phrase in tag.exclude:
        result.append(_Alias(tag.kind, tag.tag, phrase, False, False, exclude=True))
    return result


def _compile(aliases: list[_Alias], *, with_list_only: bool) -> Mapping[str, re.Pattern[str]]:
    by_first: dict[str, list[int]] = {}
    for index, spec in enumerate(aliases):
        if spec.list_only and not with_list_only:
            continue
        by_first.setdefault(spec.alias[0].casefold(), []).append(index)
    patterns: dict[str, re.Pattern[str]] = {}
    for first, indexes in by_first.items():
        indexes.sort(key=lambda i: (-len(alias_key(aliases[i].alias)), i))
        alternation = "|".join(
            f"(?P<a{i}>{_alias_regex(aliases[i].alias, aliases[i].case_sensitive)})"
            for i in indexes
        )
        patterns[first] = re.compile(alternation)
    return MappingProxyType(patterns)


__all__ = ["SHORT_ALIAS_CHARS", "Matcher", "alias_key", "tag_aliases"]
