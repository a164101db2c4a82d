"""The tagging taxonomy: canonical components and impacts, and the matcher that finds them.

`data/taxonomy.toml` holds `[[component]]` and `[[impact]]` tables. This module loads it into a
frozen `Taxonomy` and maps text onto canonical tags; it touches no database.

Matching rules (the same for components and impacts):

* Every tag's canonical name (and an impact's id) is an alias of it, besides its `aliases`.
* Aliases match on word boundaries; hyphens, underscores and whitespace inside an alias are
  interchangeable and optional, so "fluent bit" also finds "fluent-bit", "fluentbit" and
  "Fluent Bit". A trailing plural "s"/"es" is accepted ("GPUs", "Ingresses"). An apostrophe may
  be straight, curly or missing ("Let's", "Let’s", "Lets").
* Aliases are case-insensitive, except those listed in `case_sensitive_aliases` and any alias of
  at most three letters or digits ("DNS", "S3", "GKE", "dbt"): those match only with the case
  as written. So "Spark" (case-sensitive) never hits "sparked", "sparkling" or "spark plug".
* `list_only_aliases` are too ambiguous for running text ("Ray", "Go", "scheduler", "slow"); they
  match only inside curated list items (`map_list_item`), never in `find_mentions`, and even
  there only as a fallback when no ordinary alias of the same kind matched the item. Bare "Ray"
  and "Go" are therefore found in prose only through multi-word aliases such as "Ray cluster",
  "Ray Train", "Golang", "Go runtime", "written in Go"; "X-Ray" is its own component.
* `exclude` lists phrases that contain an alias but are not a mention ("at the helm",
  "tip of the iceberg", "OpenAI Triton"). An exclusion claims its span like an alias does and
  yields no tag, so every shorter overlapping match is dropped.
* Where matches overlap, the longest wins ("Argo Workflows" over "Argo", "Ray Serve" over "Ray",
  "AWS VPC CNI" over "CNI"); among equally long ones the leftmost.
* Nothing inside an http(s):// or www. link is tagged: links are references, not mentions.
* In `map_list_item`, an item that is as a whole an alias ("Ray", "`OOMKill`", "Go") maps to
  that tag whatever its case, wrapping backticks, quotes and --flag dashes aside.

Known, accepted ambiguity: a sentence-initial capitalised common word that is also a
case-sensitive alias ("Feast your eyes", "Vault 7", "a Spark of genius") still matches, and
"Loki" also names a Norse god; the corpus is about infrastructure, so these are rare.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from mlopsmortem.errors import MlopsmortemError

TagKind = Literal["component", "impact"]

CATEGORIES: tuple[str, ...] = (
    "logging and observability",
    "orchestration and containers",
    "networking and DNS",
    "ML pipelines and orchestration",
    "feature stores",
    "model serving",
    "experiment tracking and registries",
    "data stores and queues",
    "data processing",
    "cloud services",
    "CI/CD and infrastructure as code",
    "security and certificates",
    "hardware",
    "languages and runtimes",
    "ML frameworks",
)

#: Aliases this short (counting letters and digits) are case-sensitive without being listed.
SHORT_ALIAS_CHARS = 3

_COMPONENT_KEYS = frozenset(
    {"name", "category", "aliases", "case_sensitive_aliases", "list_only_aliases", "exclude"}
    | {"description"}
)
_IMPACT_KEYS = frozenset(
    {"id", "name", "description", "aliases", "case_sensitive_aliases", "list_only_aliases"}
    | {"exclude"}
)
_IMPACT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
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


class TaxonomyError(MlopsmortemError):
    """The taxonomy file is missing, is not valid TOML, or breaks a rule; names the file."""


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
    """A kind of consequence; `description` is written for embedding similarity."""

    id: str
    name: str
    description: str
    aliases: tuple[str, ...] = ()
    case_sensitive_aliases: tuple[str, ...] = ()
    list_only_aliases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

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
            for spec in _tag_aliases(tag):
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


def _tag_aliases(tag: Component | Impact) -> list[_Alias]:
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


@dataclass(frozen=True)
class Taxonomy:
    """A loaded taxonomy. `version` is the first 12 hex digits of the file's sha256."""

    path: Path
    version: str
    components: tuple[Component, ...]
    impacts: tuple[Impact, ...]

    @cached_property
    def matcher(self) -> Matcher:
        """Built on first use and kept on this instance (not shared between taxonomies)."""
        return Matcher.build((*self.components, *self.impacts))

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES

    def component(self, name: str) -> Component | None:
        """The component with this canonical name (case-insensitive), if any."""
        wanted = name.casefold()
        return next((c for c in self.components if c.name.casefold() == wanted), None)

    def impact(self, impact_id: str) -> Impact | None:
        return next((i for i in self.impacts if i.id == impact_id), None)


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and validate a taxonomy file; raise `TaxonomyError` naming the file on any problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TaxonomyError(f"{path}: taxonomy is not UTF-8: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{path}: invalid TOML: {exc}") from exc

    unknown = set(data) - {"component", "impact"}
    if unknown:
        raise TaxonomyError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown))}")
    components = tuple(
        _component(path, n, entry) for n, entry in enumerate(_tables(path, data, "component"), 1)
    )
    impacts = tuple(
        _impact(path, n, entry) for n, entry in enumerate(_tables(path, data, "impact"), 1)
    )
    _check_unique(path, components, impacts)
    return Taxonomy(
        path=path,
        version=hashlib.sha256(raw).hexdigest()[:12],
        components=components,
        impacts=impacts,
    )


def map_list_item(taxonomy: Taxonomy, text: str) -> list[TagMatch]:
    """Canonical tags for one free-text item of a curated list ("AWS CNI Plugin",
    "`--kube-api-qps`", "partial production outage"): several, one or none.

    An item that is, as a whole, an alias of a tag (any case) maps to that tag alone. Otherwise
    the item is scanned like running text with list-only aliases enabled, but those count only
    as a fallback: a list-only alias ("scheduler", "delay", "lost") tags the item only if no
    ordinary alias of the same kind did ("airflow 1.10 scheduler" is Airflow alone). Each tag
    is reported once, at its first occurrence.
    """
    return taxonomy.matcher.map_item(text)


def find_mentions(taxonomy: Taxonomy, text: str) -> list[TagMatch]:
    """Every occurrence of a tag's alias in running text, in text order (list-only aliases
    excluded; overlaps resolved longest first)."""
    return taxonomy.matcher.scan(text)


# --- validation -----------------------------------------------------------------------------


def _tables(path: Path, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TaxonomyError(f"{path}: `{key}` must be an array of tables ([[{key}]])")
    return tables


def _where(path: Path, kind: str, number: int, entry: dict[str, Any]) -> str:
    label = entry.get("name") or entry.get("id")
    return f"{path}: {kind} #{number}" + (f" ({label!r})" if isinstance(label, str) else "")


def _string(where: str, entry: dict[str, Any], key: str, *, required: bool) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise TaxonomyError(f"{where}: `{key}` must be a non-empty string")
    return value.strip()


def _strings(where: str, entry: dict[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise TaxonomyError(f"{where}: `{key}` must be a list of non-empty strings")
    result = tuple(v.strip() for v in value)
    for alias in result:
        if not alias[0].isalnum():
            raise TaxonomyError(f"{where}: {key} entry {alias!r} must start with a letter or digit")
    return result


def _check_keys(where: str, entry: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise TaxonomyError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")


def _component(path: Path, number: int, entry: dict[str, Any]) -> Component:
    where = _where(path, "component", number, entry)
    _check_keys(where, entry, _COMPONENT_KEYS)
    name = _string(where, entry, "name", required=True)
    category = _string(where, entry, "category", required=True)
    if category not in CATEGORIES:
        raise TaxonomyError(
            f"{where}: unknown category {category!r}; use one of: {', '.join(CATEGORIES)}"
        )
    if not name[0].isalnum():
        raise TaxonomyError(f"{where}: name {name!r} must start with a letter or digit")
    return Component(
        name=name,
        category=category,
        aliases=_strings(where, entry, "aliases"),
        case_sensitive_aliases=_strings(where, entry, "case_sensitive_aliases"),
        list_only_aliases=_strings(where, entry, "list_only_aliases"),
        exclude=_strings(where, entry, "exclude"),
        description=_string(where, entry, "description", required=False),
    )


def _impact(path: Path, number: int, entry: dict[str, Any]) -> Impact:
    where = _where(path, "impact", number, entry)
    _check_keys(where, entry, _IMPACT_KEYS)
    impact_id = _string(where, entry, "id", required=True)
    if not _IMPACT_ID.match(impact_id):
        raise TaxonomyError(f"{where}: id {impact_id!r} must be lowercase words joined by '-'")
    name = _string(where, entry, "name", required=True)
    if not name[0].isalnum():
        raise TaxonomyError(f"{where}: name {name!r} must start with a letter or digit")
    return Impact(
        id=impact_id,
        name=name,
        description=_string(where, entry, "description", required=True),
        aliases=_strings(where, entry, "aliases"),
        case_sensitive_aliases=_strings(where, entry, "case_sensitive_aliases"),
        list_only_aliases=_strings(where, entry, "list_only_aliases"),
        exclude=_strings(where, entry, "exclude"),
    )


def _check_unique(
    path: Path, components: tuple[Component, ...], impacts: tuple[Impact, ...]
) -> None:
    names: dict[str, str] = {}
    for component in components:
        folded = component.name.casefold()
        if folded in names:
            raise TaxonomyError(
                f"{path}: duplicate component name {component.name!r} "
                f"(already defined as {names[folded]!r})"
            )
        names[folded] = component.name
    ids: set[str] = set()
    for impact in impacts:
        if impact.id in ids:
            raise TaxonomyError(f"{path}: duplicate impact id {impact.id!r}")
        ids.add(impact.id)
    owners: dict[str, tuple[str, str, str]] = {}
    for tag in (*components, *impacts):
        for spec in _tag_aliases(tag):
            if spec.exclude:
                continue
            key = alias_key(spec.alias)
            owner = owners.setdefault(key, (tag.kind, tag.tag, spec.alias))
            if owner[:2] != (tag.kind, tag.tag):
                raise TaxonomyError(
                    f"{path}: alias {spec.alias!r} of {tag.kind} {tag.tag!r} is already claimed "
                    f"by {owner[0]} {owner[1]!r} (as {owner[2]!r})"
                )
