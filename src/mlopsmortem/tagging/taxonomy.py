"""The tagging taxonomy: canonical components and impacts, and the matcher that finds them.

`data/taxonomy.toml` holds `[[component]]` and `[[impact]]` tables. This module loads it into a
frozen `Taxonomy` and maps text onto canonical tags; it touches no database.

The matching rules are in `mlopsmortem.tagging.alias_matcher`, impact statements in
`mlopsmortem.tagging.impact_statements`, the data types in `mlopsmortem.tagging.taxonomy_types`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.tagging.alias_matcher import Matcher, alias_key, tag_aliases
from mlopsmortem.tagging.impact_statements import (
    StatementRule,
    check_patterns,
    statement_rules,
)
from mlopsmortem.tagging.taxonomy_types import Component, Impact, TagMatch

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

_COMPONENT_KEYS = frozenset(
    {"name", "category", "aliases", "case_sensitive_aliases", "list_only_aliases", "exclude"}
    | {"description"}
)
_IMPACT_KEYS = frozenset(
    {"id", "name", "description", "aliases", "case_sensitive_aliases", "list_only_aliases"}
    | {"exclude", "statements", "statement_exclude", "exclusive_with"}
)
_IMPACT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class TaxonomyError(MlopsmortemError):
    """The taxonomy file is missing, is not valid TOML, or breaks a rule; names the file."""


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

    @cached_property
    def exclusive_impacts(self) -> Mapping[str, frozenset[str]]:
        """Impact id -> the impacts a story cannot also have (`exclusive_with`, both ways)."""
        pairs: dict[str, set[str]] = {}
        for impact in self.impacts:
            for other in impact.exclusive_with:
                pairs.setdefault(impact.id, set()).add(other)
                pairs.setdefault(other, set()).add(impact.id)
        return MappingProxyType({k: frozenset(v) for k, v in pairs.items()})

    @cached_property
    def statement_rules(self) -> tuple[StatementRule, ...]:
        """Every impact statement, compiled with its impact's exclusions, in file order."""
        return statement_rules(self.impacts)


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
        statements=_patterns(where, entry, "statements", "statement"),
        statement_exclude=_patterns(where, entry, "statement_exclude", "statement exclusion"),
        exclusive_with=_strings(where, entry, "exclusive_with"),
    )


def _patterns(where: str, entry: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise TaxonomyError(f"{where}: `{key}` must be a list of non-empty strings")
    problem = check_patterns(value, what)
    if problem:
        raise TaxonomyError(f"{where}: {problem}")
    return tuple(value)


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
    for impact in impacts:
        for other in impact.exclusive_with:
            if other not in ids or other == impact.id:
                raise TaxonomyError(
                    f"{path}: impact {impact.id!r}: exclusive_with names {other!r}, "
                    "which is not another impact id"
                )
    owners: dict[str, tuple[str, str, str]] = {}
    for tag in (*components, *impacts):
        for spec in tag_aliases(tag):
            if spec.exclude:
                continue
            key = alias_key(spec.alias)
            owner = owners.setdefault(key, (tag.kind, tag.tag, spec.alias))
            if owner[:2] != (tag.kind, tag.tag):
                raise TaxonomyError(
                    f"{path}: alias {spec.alias!r} of {tag.kind} {tag.tag!r} is already claimed "
                    f"by {owner[0]} {owner[1]!r} (as {owner[2]!r})"
                )
