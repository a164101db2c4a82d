"""The tagging stage: `tag_stories` decides which stories to re-tag, runs the three methods
on each (`tag_story`) and writes the results in batches."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import sqlite_utils

from mlopsmortem.passages.embed import model_key
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import (
    UNCALIBRATED,
    Calibration,
    calibration_path,
    load_calibration,
    stale_calibration_warnings,
)
from mlopsmortem.tagging.inputs import StoryInput, chunks, live_story_ids, load_inputs
from mlopsmortem.tagging.listtags import list_tags
from mlopsmortem.tagging.rules import find_story_mentions, mentioned_keys, rule_tags
from mlopsmortem.tagging.semantic import SemanticRun, SemanticScores, semantic_tags
from mlopsmortem.tagging.store import (
    META_ENTRIES_PREFIX,
    META_TAXONOMY_VERSION,
    read_meta,
    record_taxonomy,
    revalidate_stories,
    run_key,
    stored_states,
    taxonomy_change,
    write_batch,
)
from mlopsmortem.tagging.tags import StoryTags
from mlopsmortem.tagging.taxonomy import Taxonomy, load_taxonomy

STORIES_PER_TRANSACTION = 100


class TagProgress(Protocol):
    """What `tag_stories` reports progress to (`progress.ProgressBar` fits)."""

    def start(self, total: int) -> None: ...

    def advance(self, *, error: bool = False) -> None: ...


@dataclass(frozen=True)
class TagReport:
    stories: int  # live stories looked at
    tagged: int  # re-tagged in this run
    unchanged: int  # skipped: same inputs, same taxonomy version
    revalidated: int  # taxonomy changed but not in a way that touches the story: version bumped
    tags: int  # rows written
    free: int  # of which free list tags
    by_method: dict[str, int]  # a plain dict: the pipeline runs dataclasses.asdict on reports
    semantic_pending: int  # stories with text passages but no current embedding yet
    without_text: int  # re-tagged stories without any text passage (list and title only)
    taxonomy_version: str
    previous_taxonomy_version: str | None
    full_retag_reason: str | None
    warnings: tuple[str, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_method"] = dict(self.by_method)
        data["warnings"] = list(self.warnings)
        return data


def tag_story(
    taxonomy: Taxonomy,
    calibration: Calibration,
    story: StoryInput,
    *,
    scores: SemanticScores | None,
    passage_texts: Mapping[int, str],
    semantic_on: bool,
) -> StoryTags:
    found = find_story_mentions(taxonomy, story)
    tags = [
        *list_tags(taxonomy, story),
        *rule_tags(story, found, calibration.component_min_mentions),
    ]
    if not semantic_on:
        state: Literal["done", "no-text", "pending", "off"] = "off"
    elif not story.text_passages and not story.summary_text:
        state = "no-text"
    elif scores is None:
        state = "pending"
    else:
        state = "done"
        mentioned = {
            name: len(matches) for (kind, name), matches in found.text.items() if kind == "impact"
        }
        tagged = {t.tag for t in tags if t.kind == "impact" and not t.free}
        tags.extend(
            semantic_tags(
                scores,
                calibration,
                passage_texts,
                mentioned,
                tagged=tagged,
                exclusive=taxonomy.exclusive_impacts,
            )
        )
    return StoryTags(tuple(tags), frozenset(mentioned_keys(taxonomy, story, found)), state)


def tag_batch(
    db: sqlite_utils.Database,
    taxonomy: Taxonomy,
    calibration: Calibration,
    semantic: SemanticRun,
    story_ids: Sequence[str],
    model: str,
    semantic_on: bool,
) -> dict[str, StoryTags]:
    """The tags of these stories under `calibration`, computed and not written (`tag_stories`
    writes them; the benchmark tags held-out stories with calibrations fitted without them)."""
    full = load_inputs(db, story_ids, model, with_text=True)
    scored = semantic.story_scores(db, full, model) if semantic_on else {}
    results: dict[str, StoryTags] = {}
    for sid in story_ids:
        if sid not in full:
            continue
        scores, texts = scored.get(sid, (None, {}))
        results[sid] = tag_story(
            taxonomy, calibration, full[sid], scores=scores, passage_texts=texts,
            semantic_on=semantic_on,
        )  # fmt: skip
    return results


def tag_stories(
    db: sqlite_utils.Database,
    settings: Settings,
    *,
    rebuild: bool = False,
    story_ids: Iterable[str] | None = None,
    progress: TagProgress | None = None,
) -> TagReport:
    """Tag live stories whose inputs or relevant taxonomy entries changed (all with `rebuild`,
    only `story_ids` when given). Raises TaxonomyError / TaggingError on bad data files."""
    started = time.perf_counter()
    taxonomy = load_taxonomy(settings.taxonomy_file)
    model = model_key(settings.model_name)
    path = calibration_path(settings)
    if path.exists():
        calibration = load_calibration(path)
        warnings, semantic_on = stale_calibration_warnings(taxonomy, calibration, model)
    else:
        # Without a calibration there is no threshold to trust: list and rule tags only (the
        # demo crawl that produces the calibration data runs this stage too).
        calibration = UNCALIBRATED
        warnings, semantic_on = [f"{path} not found: semantic impacts off"], False
    previous = read_meta(db, META_TAXONOMY_VERSION)
    key = run_key(taxonomy, calibration, model)

    ids = live_story_ids(db, story_ids)
    states = stored_states(db)
    inputs = load_inputs(db, ids, model, with_text=False)
    fingerprints = {sid: inputs[sid].fingerprint(key) for sid in ids if sid in inputs}
    todo: list[str] = []
    by_version: dict[str, list[str]] = {}
    unchanged = 0
    for sid in fingerprints:
        state = states.get(sid)
        if rebuild or state is None or state.fingerprint != fingerprints[sid]:
            todo.append(sid)
        elif state.taxonomy_version == taxonomy.version:
            unchanged += 1
        else:
            by_version.setdefault(state.taxonomy_version, []).append(sid)

    full_reason = "rebuild" if rebuild else None
    revalidate: list[str] = []
    for version, sids in by_version.items():
        stored = read_meta(db, META_ENTRIES_PREFIX + version)
        change = taxonomy_change(json.loads(stored) if stored else None, taxonomy)
        if change is None:
            full_reason = full_reason or f"taxonomy {version} unknown or reordered"
            todo.extend(sids)
            continue
        for part in chunks(sids, STORIES_PER_TRANSACTION):  # texts in bounded batches
            texts = load_inputs(db, part, model, with_text=True)
            for sid in part:
                if sid in texts and change.touches(texts[sid], states[sid].mentions):
                    todo.append(sid)
                else:
                    revalidate.append(sid)

    semantic = SemanticRun(taxonomy, calibration.impacts, settings)
    by_method: Counter[str] = Counter()
    written = free = pending = without_text = 0
    if progress is not None:
        progress.start(len(todo))
    for i in range(0, len(todo), STORIES_PER_TRANSACTION):
        part = todo[i : i + STORIES_PER_TRANSACTION]
        results = tag_batch(db, taxonomy, calibration, semantic, part, model, semantic_on)
        for result in results.values():
            by_method.update(t.method for t in result.tags)
            written += len(result.tags)
            free += sum(t.free for t in result.tags)
            pending += result.semantic == "pending"
            without_text += result.semantic == "no-text"
            if progress is not None:
                progress.advance()
        write_batch(db, taxonomy.version, results, fingerprints)
    if revalidate:
        revalidate_stories(db, revalidate, taxonomy.version)
    record_taxonomy(db, taxonomy)
    return TagReport(
        stories=len(fingerprints),
        tagged=len(todo),
        unchanged=unchanged,
        revalidated=len(revalidate),
        tags=written,
        free=free,
        by_method=dict(by_method),
        semantic_pending=pending,
        without_text=without_text,
        taxonomy_version=taxonomy.version,
        previous_taxonomy_version=previous,
        full_retag_reason=full_reason,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
    )
