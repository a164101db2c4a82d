"""What tagging keeps in the database: `tags` rows, the `stories.components` /
`stories.impacts` arrays, per-story input state in `tag_inputs`, and the taxonomy versions in
`meta` with the comparison that decides which stories a taxonomy change touches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.tagging.alias_matcher import Matcher
from mlopsmortem.tagging.calibration import Calibration, descriptions_digest
from mlopsmortem.tagging.impact_statements import (
    STATEMENT_PLACEHOLDERS,
    StatementRule,
    find_statements,
    statement_rules,
)
from mlopsmortem.tagging.inputs import StoryInput, chunks
from mlopsmortem.tagging.tags import StoryTags, Tag
from mlopsmortem.tagging.taxonomy import Taxonomy
from mlopsmortem.tagging.taxonomy_types import Component, Impact, TagKind

#: Bump when what a method outputs for the same input changes: every story is re-tagged.
METHOD_VERSION = "2"
#: Tags below this confidence are not copied into stories.components / stories.impacts.
CONFIDENCE_CUT = 0.5
INPUTS_TABLE = "tag_inputs"
META_TAXONOMY_VERSION = "taxonomy_version"
META_ENTRIES_PREFIX = "tagging_taxonomy:"


def facet_values(tags: Iterable[Tag], kind: TagKind) -> list[str]:
    """The sorted canonical tags of one kind that go into stories.components / .impacts."""
    values = {
        t.tag for t in tags if t.kind == kind and not t.free and t.confidence >= CONFIDENCE_CUT
    }
    return sorted(values, key=lambda v: (v.casefold(), v))


def _entry_key(entry: Component | Impact) -> str:
    return f"{entry.kind}:{entry.tag}"


def taxonomy_entries(taxonomy: Taxonomy) -> dict[str, Any]:
    """What `meta` keeps of a taxonomy version: entry order and a hash per entry."""
    order = [_entry_key(e) for e in (*taxonomy.components, *taxonomy.impacts)]
    hashes = {
        _entry_key(e): hashlib.sha256(
            json.dumps(asdict(e), sort_keys=True).encode("utf-8")
        ).hexdigest()[:16]
        for e in (*taxonomy.components, *taxonomy.impacts)
    }
    return {"order": order, "entries": hashes}


@dataclass(frozen=True)
class TaxonomyChange:
    """Entries that differ between two versions, a matcher for the new side's aliases and
    exclusions (as aliases: a new exclusion can hide an old mention), and the new side's
    impact statements."""

    keys: frozenset[str]
    matcher: Matcher | None
    statements: tuple[StatementRule, ...] = ()  # of the changed impacts

    def touches(self, story: StoryInput, mentioned: Iterable[str]) -> bool:
        if self.keys.intersection(mentioned):
            return True
        if self.matcher is None:
            return False  # nothing changed that a text can match
        for text in (*story.titles, story.body):
            if self.matcher.scan(text):
                return True
        if find_statements(self.statements, story.body):
            return True
        return any(self.matcher.map_item(item) for item in (*story.involved, *story.impact_items))


def taxonomy_change(old: Mapping[str, Any] | None, taxonomy: Taxonomy) -> TaxonomyChange | None:
    """The change from a stored version to `taxonomy`; None when every story must be re-tagged
    (the old version is unknown, or entries were reordered)."""
    if old is None:
        return None
    new = taxonomy_entries(taxonomy)
    old_entries: Mapping[str, str] = old.get("entries", {})
    old_order = [k for k in old.get("order", []) if k in new["entries"]]
    new_order = [k for k in new["order"] if k in old_entries]
    if old_order != new_order:
        return None
    keys = {k for k in new["entries"] if old_entries.get(k) != new["entries"][k]}
    keys |= set(old_entries) - set(new["entries"])
    changed = [
        replace(e, aliases=(*e.aliases, *e.exclude), exclude=())
        for e in (*taxonomy.components, *taxonomy.impacts)
        if _entry_key(e) in keys
    ]
    changed_impacts = [e for e in taxonomy.impacts if _entry_key(e) in keys]
    return TaxonomyChange(
        frozenset(keys),
        Matcher.build(changed) if changed else None,
        statement_rules(changed_impacts),
    )


@dataclass(frozen=True)
class StoredState:
    fingerprint: str
    taxonomy_version: str
    mentions: frozenset[str]


def read_meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def stored_states(db: sqlite_utils.Database) -> dict[str, StoredState]:
    return {
        row[0]: StoredState(row[1], row[2], frozenset(json.loads(row[3] or "[]")))
        for row in db.conn.execute(
            f"SELECT story_id, fingerprint, taxonomy_version, mentions FROM {INPUTS_TABLE}"
        )
    }


def run_key(taxonomy: Taxonomy, calibration: Calibration, model: str) -> str:
    """What every story's tags depend on beyond its own inputs and mentions: a change re-tags
    every story. Impact exclusivity is here (not in the per-entry change detection) because it
    changes what the semantic step decides for stories that name neither impact; the statement
    placeholders because they change what every statement matches."""
    exclusive = sorted((k, sorted(v)) for k, v in taxonomy.exclusive_impacts.items())
    return json.dumps(
        [
            METHOD_VERSION,
            calibration.digest,
            model,
            descriptions_digest(taxonomy),
            exclusive,
            sorted(STATEMENT_PLACEHOLDERS.items()),
        ]
    )


def write_batch(
    db: sqlite_utils.Database,
    version: str,
    results: Mapping[str, StoryTags],
    fingerprints: Mapping[str, str],
) -> None:
    conn = db.conn
    now = utcnow()
    ids = list(results)
    with conn:
        for part in chunks(ids):
            conn.execute(
                f"DELETE FROM tags WHERE story_id IN ({','.join('?' * len(part))})", list(part)
            )
        rows = [t.row(sid, version) for sid, r in results.items() for t in r.tags]
        if rows:
            columns = list(rows[0])
            conn.executemany(
                f"INSERT INTO tags ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [[r[c] for c in columns] for r in rows],
            )
        conn.executemany(
            "UPDATE stories SET components = ?, impacts = ? WHERE id = ?",
            [
                (
                    json.dumps(facet_values(r.tags, "component")),
                    json.dumps(facet_values(r.tags, "impact")),
                    sid,
                )
                for sid, r in results.items()
            ],
        )
        conn.executemany(
            f"INSERT OR REPLACE INTO {INPUTS_TABLE}"
            " (story_id, fingerprint, taxonomy_version, mentions, tagged_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (sid, fingerprints[sid], version, json.dumps(sorted(r.mentions)), now)
                for sid, r in results.items()
            ],
        )


def revalidate_stories(db: sqlite_utils.Database, story_ids: Sequence[str], version: str) -> None:
    with db.conn:
        for part in chunks(story_ids):
            marks = ",".join("?" * len(part))
            db.conn.execute(
                f"UPDATE tags SET taxonomy_version = ? WHERE story_id IN ({marks})",
                [version, *part],
            )
            db.conn.execute(
                f"UPDATE {INPUTS_TABLE} SET taxonomy_version = ? WHERE story_id IN ({marks})",
                [version, *part],
            )


def record_taxonomy(db: sqlite_utils.Database, taxonomy: Taxonomy) -> None:
    """Store the current version and its entries; drop entries of versions no story uses."""
    with db.conn:
        db.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [META_TAXONOMY_VERSION, taxonomy.version],
        )
        db.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [META_ENTRIES_PREFIX + taxonomy.version, json.dumps(taxonomy_entries(taxonomy))],
        )
        used = {
            r[0] for r in db.conn.execute(f"SELECT DISTINCT taxonomy_version FROM {INPUTS_TABLE}")
        }
        used.add(taxonomy.version)
        for (key,) in db.conn.execute(
            "SELECT key FROM meta WHERE key LIKE ?", [META_ENTRIES_PREFIX + "%"]
        ).fetchall():
            if key[len(META_ENTRIES_PREFIX) :] not in used:
                db.conn.execute("DELETE FROM meta WHERE key = ?", [key])


def story_tag_rows(db: sqlite_utils.Database, story_id: str) -> list[dict[str, Any]]:
    """The stored tags of one story, for display and tests."""
    cursor = db.conn.execute(
        "SELECT kind, tag, method, free, original, confidence, evidence, passage_id,"
        " taxonomy_version FROM tags WHERE story_id = ? ORDER BY kind, tag, method, id",
        [story_id],
    )
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]
