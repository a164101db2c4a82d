"""Tagging: every story gets canonical components and impacts, from three methods.

* **list**: each item a curated list wrote under `involved:` / `impact:` goes through
  `taxonomy.map_list_item`. A match becomes a canonical tag (confidence 1.0); an item that
  matches nothing is kept as a *free* tag (`free` = 1, `tag` = the item lightly normalised,
  kind from the line it was on). Every row keeps the item as written in `original`.
* **rule**: `taxonomy.find_mentions` over the title (the list's; the page's only when the list
  has none) and the document text. A component counts when the title names it, or the text
  names it at least `component_min_mentions` times (2, measured on the demo gold tags: list |
  rule precision 0.99 / recall 0.92, against 0.89 / 0.97 at 1 and 1.00 / 0.85 at 3; see
  `calibrate`). Impacts count only from the title: their aliases are everyday words
  ("timeouts", "rolled back", "overload"), which measured 0.49 precision in running text
  against 1.0 (4 of 4) in titles.
* **semantic**: impacts from the stored passage embeddings. Each impact's description is split
  into sentences and embedded once per run; a passage's similarity to an impact is its best
  cosine with those sentences, minus the passage's mean similarity to all semantic impacts
  (a passage that resembles every impact says little about any). A story's score is the maximum
  over its text passages, standardised per impact with the calibration corpus's mean and
  standard deviation (z). The story's best-ranked impact is tagged when z >= `top`, any other
  when z >= `other`. Both thresholds, the statistics and `component_min_mentions` live in
  `data/tagging_calibration.json`, fitted by `calibrate` on the demo corpus's gold tags with
  leave-one-story-out figures beside the in-sample ones (impact F1 0.70 in-sample, 0.67
  held out; one threshold per impact fitted better in-sample, 0.73, but held out worse, 0.58).
  An impact without a positive example there (no-user-impact) is not tagged semantically.
  Card passages are not used: a card lists the story's own tags, which would feed the tagger
  its previous output; stories without text passages get list and title tags only.

`tag_stories` writes `tags` rows, then fills `stories.components` / `stories.impacts` with the
sorted canonical (non-free) tags of any method whose confidence reaches `CONFIDENCE_CUT`, for
Datasette's `_facet_array`. Every row and `meta.taxonomy_version` carry the taxonomy version.

Incremental: `tag_inputs` (migration 5) keeps per story a fingerprint of
what the methods read (list items, titles, document text hash, text passages and whether each
has a current embedding, calibration, impact descriptions, model, `METHOD_VERSION`), the
taxonomy version the story was tagged under and every tag its text or list items *mention*
(whatever the count). A story whose fingerprint changed is re-tagged. When only the taxonomy
changed, its entries are compared with those of the story's version (kept in `meta` under
`tagging_taxonomy:<version>`): a story is re-tagged only if it mentioned a changed entry or
its text or list items match a changed entry's new aliases or exclusions; the others just get
the new version stamped on their rows. An impact description change alters the fingerprint of
every story (it moves every semantic score); a reordering of the taxonomy re-tags every story
too (order breaks ties between aliases).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import sqlite_utils

from mlopsmortem.db import utcnow
from mlopsmortem.embed import decode_matrix, encode_texts, load_model, model_key
from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.settings import Settings
from mlopsmortem.taxonomy import (
    Component,
    Impact,
    Matcher,
    TagKind,
    TagMatch,
    Taxonomy,
    find_mentions,
    load_taxonomy,
    map_list_item,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Method = Literal["list", "rule", "semantic"]

#: Bump when what a method outputs for the same input changes: every story is re-tagged.
METHOD_VERSION = "2"
#: Tags below this confidence are not copied into stories.components / stories.impacts.
CONFIDENCE_CUT = 0.5
CALIBRATION_FILE = "tagging_calibration.json"
CALIBRATION_FORMAT = 1
INPUTS_TABLE = "tag_inputs"
META_TAXONOMY_VERSION = "taxonomy_version"
META_ENTRIES_PREFIX = "tagging_taxonomy:"
STORIES_PER_TRANSACTION = 100
SNIPPET_CHARS = 100  # each side of a rule mention
SEMANTIC_SNIPPET_CHARS = 240

LIST_CONFIDENCE = 1.0
TITLE_COMPONENT_CONFIDENCE = 0.95
TITLE_IMPACT_CONFIDENCE = 0.9
# Text-only component mentions: 0.5 + 0.1 per mention, capped below a title hit.
TEXT_CONFIDENCE_BASE = 0.5
TEXT_CONFIDENCE_STEP = 0.1
TEXT_CONFIDENCE_MAX = 0.9
# Semantic confidence: a logistic of (z - threshold), so exactly 0.5 at the threshold.
SEMANTIC_CONFIDENCE_SLOPE = 2.0

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_FREE_WRAPPING = " \t\r\n`\"'“”‘’*_.,;:"
_LINE_KIND: Mapping[str, TagKind] = MappingProxyType({"involved": "component", "impact": "impact"})


class TaggingError(MlopsmortemError):
    """The calibration file is missing or invalid, or stored vectors do not fit the model."""


class TagProgress(Protocol):
    """What `tag_stories` reports progress to (`progress.ProgressBar` fits)."""

    def start(self, total: int) -> None: ...

    def advance(self, *, error: bool = False) -> None: ...


# --------------------------------------------------------------------------- tags


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


def normalise_free_tag(item: str) -> str:
    """A free list item as a tag: wrapping quotes/backticks/punctuation off, whitespace collapsed,
    lower case unless the item has capitals after its first letter ("AWS CNI Plugin")."""
    text = " ".join(item.split()).strip(_FREE_WRAPPING)
    if not any(ch.isupper() for ch in text[1:]):
        text = text.lower()
    return text


def facet_values(tags: Iterable[Tag], kind: TagKind) -> list[str]:
    """The sorted canonical tags of one kind that go into stories.components / .impacts."""
    values = {
        t.tag for t in tags if t.kind == kind and not t.free and t.confidence >= CONFIDENCE_CUT
    }
    return sorted(values, key=lambda v: (v.casefold(), v))


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Thresholds fitted on labelled stories (see `calibrate`); `digest` identifies the file."""

    model: str
    impacts: tuple[str, ...]  # impacts tagged semantically, in centring order
    mean: Mapping[str, float]
    std: Mapping[str, float]
    top: float  # z threshold for a story's best-ranked impact
    other: float  # z threshold for its other impacts
    component_min_mentions: int
    descriptions_digest: str  # of the impact descriptions the statistics were measured with
    derivation: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "model": self.model,
            "component_min_mentions": self.component_min_mentions,
            "semantic": {
                "impacts": list(self.impacts),
                "thresholds": {"top": self.top, "other": self.other},
                "mean": dict(self.mean),
                "std": dict(self.std),
                "descriptions_digest": self.descriptions_digest,
            },
            "derivation": dict(self.derivation),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, digest: str = "") -> Calibration:
        semantic = data["semantic"]
        impacts = tuple(str(i) for i in semantic["impacts"])
        mean = {i: float(semantic["mean"][i]) for i in impacts}
        std = {i: float(semantic["std"][i]) for i in impacts}
        if any(not s > 0 for s in std.values()):
            raise ValueError("every standard deviation must be positive")
        minimum = int(data["component_min_mentions"])
        if minimum < 1:
            raise ValueError("component_min_mentions must be at least 1")
        return cls(
            model=str(data["model"]),
            impacts=impacts,
            mean=MappingProxyType(mean),
            std=MappingProxyType(std),
            top=float(semantic["thresholds"]["top"]),
            other=float(semantic["thresholds"]["other"]),
            component_min_mentions=minimum,
            descriptions_digest=str(semantic.get("descriptions_digest", "")),
            derivation=MappingProxyType(dict(data.get("derivation", {}))),
            digest=digest,
        )


#: Used when there is no calibration file: no semantic step, the measured mention count.
UNCALIBRATED = Calibration(
    model="",
    impacts=(),
    mean=MappingProxyType({}),
    std=MappingProxyType({}),
    top=math.inf,
    other=math.inf,
    component_min_mentions=2,
    descriptions_digest="",
    digest="uncalibrated",
)


def calibration_path(settings: Settings) -> Path:
    return settings.data_dir / CALIBRATION_FILE


def load_calibration(path: Path) -> Calibration:
    """Read the calibration file; TaggingError naming the file when missing or malformed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaggingError(
            f"{path}: cannot read the tagging calibration ({exc.strerror or exc}); "
            "regenerate it with: python bench/tagging.py --write-calibration"
        ) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"unsupported format {data.get('format')!r}")
        return Calibration.from_json(data, digest=hashlib.sha256(raw).hexdigest()[:16])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TaggingError(f"{path}: invalid tagging calibration: {exc}") from exc


def write_calibration(path: Path, calibration: Calibration) -> None:
    path.write_text(json.dumps(calibration.to_json(), indent=2, sort_keys=False) + "\n")


def descriptions_digest(taxonomy: Taxonomy) -> str:
    text = json.dumps([[i.id, i.description] for i in taxonomy.impacts])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- story inputs


@dataclass(frozen=True)
class PassageRef:
    id: int
    seq: int
    kind: str
    start: int | None
    end: int | None
    text_hash: str
    embedded: bool  # has an embedding of the current text for the settings' model


@dataclass(frozen=True)
class StoryInput:
    """Everything the three methods read about one story."""

    story_id: str
    title: str
    document_title: str
    text: str
    text_hash: str
    involved: tuple[str, ...]
    impact_items: tuple[str, ...]
    passages: tuple[PassageRef, ...]

    @property
    def titles(self) -> tuple[str, ...]:
        """The list's title; the page's only when the list gave none, because a page title
        often carries the site's name ("... | Datadog Engineering"), which would tag every
        post of that site."""
        return tuple(t for t in (self.title or self.document_title,) if t.strip())

    @property
    def card_passage_id(self) -> int | None:
        return next((p.id for p in self.passages if p.kind == "card"), None)

    @property
    def text_passages(self) -> tuple[PassageRef, ...]:
        return tuple(p for p in self.passages if p.kind == "text")

    def fingerprint(self, run_key: str) -> str:
        payload = json.dumps(
            [
                run_key,
                self.title,
                self.document_title,
                self.text_hash,
                self.involved,
                self.impact_items,
                [[p.id, p.text_hash, p.embedded] for p in self.text_passages],
                self.card_passage_id,
            ]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _json_items(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return [value]  # not JSON: one item, as written
    if not isinstance(data, list):
        data = [data]
    return [str(v) for v in data if v is not None and str(v).strip()]


def _unique_items(items: Iterable[str]) -> tuple[str, ...]:
    """First spelling wins among items equal up to case and whitespace (as on the card)."""
    seen: dict[str, str] = {}
    for item in items:
        key = " ".join(item.split()).casefold()
        if key and key not in seen:
            seen[key] = item.strip()
    return tuple(seen.values())


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_inputs(
    db: sqlite_utils.Database, story_ids: Sequence[str], model: str, *, with_text: bool
) -> dict[str, StoryInput]:
    """Inputs of these stories. Without `with_text` the document text is left empty (the
    fingerprint needs only its hash; a missing hash is computed from the text)."""
    conn = db.conn
    result: dict[str, StoryInput] = {}
    for part in _chunks(list(story_ids)):
        marks = ",".join("?" * len(part))
        stories = {
            row[0]: row[1] or ""
            for row in conn.execute(f"SELECT id, title FROM stories WHERE id IN ({marks})", part)
        }
        documents: dict[str, tuple[str, str, str]] = {}
        for sid, title, text_hash, text in conn.execute(
            "SELECT story_id, title, text_hash,"
            f" CASE WHEN ? OR text_hash IS NULL THEN text END FROM documents"
            f" WHERE story_id IN ({marks})",
            [int(with_text), *part],
        ):
            body = text or ""
            digest = text_hash or hashlib.sha256(body.encode("utf-8")).hexdigest()
            documents[sid] = (title or "", digest if body or text_hash else "", body)
        involved: dict[str, list[str]] = {}
        impact: dict[str, list[str]] = {}
        for sid, list_involved, list_impact in conn.execute(
            "SELECT story_id, list_involved, list_impact FROM story_sources"
            f" WHERE story_id IN ({marks}) AND removed_at IS NULL"
            " ORDER BY story_id, source_id, occurrence",
            part,
        ):
            involved.setdefault(sid, []).extend(_json_items(list_involved))
            impact.setdefault(sid, []).extend(_json_items(list_impact))
        passages: dict[str, list[PassageRef]] = {}
        for row in conn.execute(
            'SELECT p.story_id, p.id, p.seq, p.kind, p.start, p."end", p.text_hash,'
            " e.passage_id IS NOT NULL FROM passages p LEFT JOIN embeddings e"
            " ON e.passage_id = p.id AND e.model = ? AND e.text_hash = p.text_hash"
            f" WHERE p.story_id IN ({marks}) ORDER BY p.story_id, p.seq",
            [model, *part],
        ):
            passages.setdefault(row[0], []).append(
                PassageRef(row[1], row[2], row[3], row[4], row[5], row[6] or "", bool(row[7]))
            )
        for sid in part:
            if sid not in stories:
                continue
            doc_title, doc_hash, body = documents.get(sid, ("", "", ""))
            result[sid] = StoryInput(
                story_id=sid,
                title=stories[sid],
                document_title=doc_title,
                text=body if with_text else "",
                text_hash=doc_hash,
                involved=_unique_items(involved.get(sid, [])),
                impact_items=_unique_items(impact.get(sid, [])),
                passages=tuple(passages.get(sid, [])),
            )
    return result


# --------------------------------------------------------------------------- list and rule


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
    """Where the rule tagger found each tag: in a title, and every text match."""

    title: Mapping[tuple[TagKind, str], tuple[str, TagMatch]]
    text: Mapping[tuple[TagKind, str], tuple[TagMatch, ...]]

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
    return Mentions(
        MappingProxyType(title), MappingProxyType({k: tuple(v) for k, v in text.items()})
    )


def rule_tags(story: StoryInput, mentions: Mentions, min_mentions: int) -> list[Tag]:
    tags: list[Tag] = []
    for key in sorted(set(mentions.title) | set(mentions.text)):
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
    return tags


def mentioned_keys(taxonomy: Taxonomy, story: StoryInput, mentions: Mentions) -> set[str]:
    """Every tag the story's titles, text or list items touch, whatever the count: the stories
    a taxonomy entry's edit can affect."""
    keys = {f"{kind}:{tag}" for kind, tag in (*mentions.title, *mentions.text)}
    for item in (*story.involved, *story.impact_items):
        keys.update(f"{m.kind}:{m.tag}" for m in map_list_item(taxonomy, item))
    return keys


# --------------------------------------------------------------------------- semantic


@dataclass(frozen=True)
class ImpactPrototypes:
    """Sentence embeddings of the semantic impacts' descriptions; `owner[j]` is the index into
    `impacts` of sentence j (sentences of one impact are contiguous)."""

    impacts: tuple[str, ...]
    vectors: np.ndarray
    owner: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return np.searchsorted(self.owner, np.arange(len(self.impacts)))


def description_sentences(description: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_BREAK.split(description) if s.strip()]


def impact_prototypes(
    taxonomy: Taxonomy, impacts: Sequence[str], model: SentenceTransformer, *, batch_size: int = 32
) -> ImpactPrototypes:
    texts: list[str] = []
    owner: list[int] = []
    kept: list[str] = []
    for impact_id in impacts:
        impact = taxonomy.impact(impact_id)
        if impact is None:
            continue  # calibrated for an impact the taxonomy has since dropped
        sentences = description_sentences(impact.description)
        texts.extend(sentences)
        owner.extend([len(kept)] * len(sentences))
        kept.append(impact_id)
    vectors = encode_texts(model, texts, batch_size=batch_size) if texts else np.zeros((0, 0))
    return ImpactPrototypes(tuple(kept), vectors, np.asarray(owner, dtype=np.int64))


@dataclass(frozen=True)
class SemanticScores:
    """Per impact (in `ImpactPrototypes.impacts` order): the centred score and the passage
    that gave it."""

    impacts: tuple[str, ...]
    raw: np.ndarray
    passage_ids: tuple[int, ...]


def semantic_scores(
    matrix: np.ndarray, passage_ids: Sequence[int], prototypes: ImpactPrototypes
) -> SemanticScores:
    """Score one story from its passage vectors (rows of `matrix`, L2-normalised)."""
    sims = matrix @ prototypes.vectors.T  # passages x sentences
    per_impact = np.maximum.reduceat(sims, prototypes.starts, axis=1)  # passages x impacts
    centred = per_impact - per_impact.mean(axis=1, keepdims=True)
    best = centred.argmax(axis=0)
    return SemanticScores(
        prototypes.impacts,
        centred.max(axis=0),
        tuple(int(passage_ids[i]) for i in best),
    )


def standardise(scores: SemanticScores, calibration: Calibration) -> dict[str, float]:
    return {
        impact: (float(raw) - calibration.mean[impact]) / calibration.std[impact]
        for impact, raw in zip(scores.impacts, scores.raw, strict=True)
        if impact in calibration.mean
    }


def semantic_decisions(z: Mapping[str, float], top: float, other: float) -> dict[str, float]:
    """The impacts to tag, each with the threshold it passed: the best-ranked one against `top`,
    the rest against `other`."""
    ranked = sorted(z, key=lambda i: (-z[i], i))
    chosen: dict[str, float] = {}
    for rank, impact in enumerate(ranked):
        threshold = top if rank == 0 else other
        if z[impact] >= threshold:
            chosen[impact] = threshold
    return chosen


def semantic_tags(
    scores: SemanticScores,
    calibration: Calibration,
    passage_texts: Mapping[int, str],
) -> list[Tag]:
    z = standardise(scores, calibration)
    where = dict(zip(scores.impacts, scores.passage_ids, strict=True))
    tags = []
    for impact, threshold in sorted(
        semantic_decisions(z, calibration.top, calibration.other).items()
    ):
        confidence = 1.0 / (1.0 + math.exp(-SEMANTIC_CONFIDENCE_SLOPE * (z[impact] - threshold)))
        text = " ".join(passage_texts.get(where[impact], "").split())
        if len(text) > SEMANTIC_SNIPPET_CHARS:
            text = text[:SEMANTIC_SNIPPET_CHARS].rstrip() + "…"
        evidence = f"z {z[impact]:.2f} >= {threshold:.2f}: {text}"
        tags.append(Tag("impact", impact, "semantic", confidence, evidence, where[impact]))
    return tags


@dataclass
class _SemanticRun:
    """The model and prototypes of one run, loaded on first need (a run that re-tags nothing,
    or only stories without embeddings, never loads the model)."""

    taxonomy: Taxonomy
    impacts: tuple[str, ...]
    settings: Settings
    _prototypes: ImpactPrototypes | None = None

    def prototypes(self) -> ImpactPrototypes:
        if self._prototypes is None:
            model = load_model(self.settings.model_name)
            self._prototypes = impact_prototypes(
                self.taxonomy, self.impacts, model, batch_size=self.settings.batch_size
            )
        return self._prototypes


def _load_vectors(
    db: sqlite_utils.Database, story_ids: Sequence[str], model: str
) -> dict[str, tuple[list[int], list[bytes], list[str]]]:
    """Current embeddings and texts of the stories' text passages, by story."""
    found: dict[str, tuple[list[int], list[bytes], list[str]]] = {}
    for part in _chunks(list(story_ids)):
        marks = ",".join("?" * len(part))
        for sid, pid, text, blob in db.conn.execute(
            "SELECT p.story_id, p.id, p.text, e.vector FROM passages p JOIN embeddings e"
            " ON e.passage_id = p.id AND e.model = ? AND e.text_hash = p.text_hash"
            f" WHERE p.kind = 'text' AND p.story_id IN ({marks}) ORDER BY p.story_id, p.seq",
            [model, *part],
        ):
            ids, blobs, texts = found.setdefault(sid, ([], [], []))
            ids.append(pid)
            blobs.append(blob)
            texts.append(text)
    return found


def story_semantic_scores(
    story_vectors: tuple[list[int], list[bytes], list[str]], prototypes: ImpactPrototypes
) -> SemanticScores:
    ids, blobs, _ = story_vectors
    dimension = prototypes.vectors.shape[1]
    try:
        matrix = decode_matrix(blobs, dimension)
    except ValueError as exc:
        raise TaggingError(
            f"stored passage vectors do not have the model's dimension {dimension}: re-embed"
        ) from exc
    return semantic_scores(matrix, ids, prototypes)


# --------------------------------------------------------------------------- one story


@dataclass(frozen=True)
class StoryTags:
    tags: tuple[Tag, ...]
    mentions: frozenset[str]
    semantic: Literal["done", "no-text", "pending", "off"]


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
    elif not story.text_passages:
        state = "no-text"
    elif scores is None:
        state = "pending"
    else:
        state = "done"
        tags.extend(semantic_tags(scores, calibration, passage_texts))
    return StoryTags(tuple(tags), frozenset(mentioned_keys(taxonomy, story, found)), state)


# --------------------------------------------------------------------------- taxonomy changes


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
    """Entries that differ between two versions, and a matcher for the new side's aliases and
    exclusions (as aliases: a new exclusion can hide an old mention)."""

    keys: frozenset[str]
    matcher: Matcher | None

    def touches(self, story: StoryInput, mentioned: Iterable[str]) -> bool:
        if self.keys.intersection(mentioned):
            return True
        if self.matcher is None:
            return False
        for text in (*story.titles, story.text):
            if self.matcher.scan(text):
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
    return TaxonomyChange(frozenset(keys), Matcher.build(changed) if changed else None)


# --------------------------------------------------------------------------- the run


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


@dataclass(frozen=True)
class _State:
    fingerprint: str
    taxonomy_version: str
    mentions: frozenset[str]


def _meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _states(db: sqlite_utils.Database) -> dict[str, _State]:
    return {
        row[0]: _State(row[1], row[2], frozenset(json.loads(row[3] or "[]")))
        for row in db.conn.execute(
            f"SELECT story_id, fingerprint, taxonomy_version, mentions FROM {INPUTS_TABLE}"
        )
    }


def _run_key(taxonomy: Taxonomy, calibration: Calibration, model: str) -> str:
    return json.dumps([METHOD_VERSION, calibration.digest, model, descriptions_digest(taxonomy)])


def _write_batch(
    db: sqlite_utils.Database,
    version: str,
    results: Mapping[str, StoryTags],
    fingerprints: Mapping[str, str],
) -> None:
    conn = db.conn
    now = utcnow()
    ids = list(results)
    with conn:
        for part in _chunks(ids):
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


def _revalidate(db: sqlite_utils.Database, story_ids: Sequence[str], version: str) -> None:
    with db.conn:
        for part in _chunks(story_ids):
            marks = ",".join("?" * len(part))
            db.conn.execute(
                f"UPDATE tags SET taxonomy_version = ? WHERE story_id IN ({marks})",
                [version, *part],
            )
            db.conn.execute(
                f"UPDATE {INPUTS_TABLE} SET taxonomy_version = ? WHERE story_id IN ({marks})",
                [version, *part],
            )


def _record_taxonomy(db: sqlite_utils.Database, taxonomy: Taxonomy) -> None:
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


def _live_story_ids(db: sqlite_utils.Database, story_ids: Iterable[str] | None) -> list[str]:
    live = [r[0] for r in db.conn.execute("SELECT id FROM stories WHERE removed_at IS NULL")]
    if story_ids is None:
        return live
    wanted = set(story_ids)
    return [sid for sid in live if sid in wanted]


def _stale_calibration_warnings(
    taxonomy: Taxonomy, calibration: Calibration, model: str
) -> tuple[list[str], bool]:
    warnings = []
    semantic_on = True
    if calibration.model != model:
        warnings.append(
            f"semantic impacts off: the calibration is for model {calibration.model!r}, "
            f"not {model!r}"
        )
        semantic_on = False
    missing = [i for i in calibration.impacts if taxonomy.impact(i) is None]
    if missing:
        warnings.append(f"calibrated impacts no longer in the taxonomy: {', '.join(missing)}")
    if calibration.descriptions_digest != descriptions_digest(taxonomy):
        warnings.append(
            "impact descriptions changed since calibration: recalibrate "
            "(python bench/tagging.py --write-calibration)"
        )
    return warnings, semantic_on


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
        warnings, semantic_on = _stale_calibration_warnings(taxonomy, calibration, model)
    else:
        # Without a calibration there is no threshold to trust: list and rule tags only (the
        # demo crawl that produces the calibration data runs this stage too).
        calibration = UNCALIBRATED
        warnings, semantic_on = [f"{path} not found: semantic impacts off"], False
    previous = _meta(db, META_TAXONOMY_VERSION)
    run_key = _run_key(taxonomy, calibration, model)

    ids = _live_story_ids(db, story_ids)
    states = _states(db)
    inputs = load_inputs(db, ids, model, with_text=False)
    fingerprints = {sid: inputs[sid].fingerprint(run_key) for sid in ids if sid in inputs}
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
        stored = _meta(db, META_ENTRIES_PREFIX + version)
        change = taxonomy_change(json.loads(stored) if stored else None, taxonomy)
        if change is None:
            full_reason = full_reason or f"taxonomy {version} unknown or reordered"
            todo.extend(sids)
            continue
        for part in _chunks(sids, STORIES_PER_TRANSACTION):  # texts in bounded batches
            texts = load_inputs(db, part, model, with_text=True)
            for sid in part:
                if sid in texts and change.touches(texts[sid], states[sid].mentions):
                    todo.append(sid)
                else:
                    revalidate.append(sid)

    semantic = _SemanticRun(taxonomy, calibration.impacts, settings)
    by_method: Counter[str] = Counter()
    written = free = pending = without_text = 0
    if progress is not None:
        progress.start(len(todo))
    for i in range(0, len(todo), STORIES_PER_TRANSACTION):
        part = todo[i : i + STORIES_PER_TRANSACTION]
        full = load_inputs(db, part, model, with_text=True)
        vectors = _load_vectors(db, part, model) if semantic_on else {}
        results: dict[str, StoryTags] = {}
        for sid in part:
            story = full[sid]
            scores = None
            texts: dict[int, str] = {}
            if sid in vectors:
                scores = story_semantic_scores(vectors[sid], semantic.prototypes())
                texts = dict(zip(vectors[sid][0], vectors[sid][2], strict=True))
            result = tag_story(
                taxonomy, calibration, story, scores=scores, passage_texts=texts,
                semantic_on=semantic_on,
            )  # fmt: skip
            results[sid] = result
            by_method.update(t.method for t in result.tags)
            written += len(result.tags)
            free += sum(t.free for t in result.tags)
            pending += result.semantic == "pending"
            without_text += result.semantic == "no-text"
            if progress is not None:
                progress.advance()
        _write_batch(db, taxonomy.version, results, fingerprints)
    if revalidate:
        _revalidate(db, revalidate, taxonomy.version)
    _record_taxonomy(db, taxonomy)
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


def story_tag_rows(db: sqlite_utils.Database, story_id: str) -> list[dict[str, Any]]:
    """The stored tags of one story, for display and tests."""
    cursor = db.conn.execute(
        "SELECT kind, tag, method, free, original, confidence, evidence, passage_id,"
        " taxonomy_version FROM tags WHERE story_id = ? ORDER BY kind, tag, method, id",
        [story_id],
    )
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


# --------------------------------------------------------------------------- calibration fitting

# Threshold grids (z units). Wide enough that the extremes mean "always" and "never".
TOP_GRID = tuple(round(-1.0 + 0.05 * i, 2) for i in range(101))  # -1.0 .. 4.0
OTHER_GRID = tuple(round(0.0 + 0.05 * i, 2) for i in range(101))  # 0.0 .. 5.0
MIN_MENTIONS_CHOICES = (1, 2, 3, 4, 5)
#: `component_min_mentions` is the count with the best F1 among those reaching this precision
#: (not simply the smallest such count: N=1 sits at 0.89 on the demo, so that rule would flip
#: between 1 and 2 from fold to fold).
COMPONENT_PRECISION_TARGET = 0.9


@dataclass(frozen=True)
class StoryAnalysis:
    """What the methods see in one story, before any threshold: for calibration and the bench."""

    story_id: str
    list_tags: tuple[Tag, ...]
    mentions: Mentions
    scores: SemanticScores | None

    def components(self, min_mentions: int) -> set[str]:
        """Canonical components from the list and the rule with this mention count."""
        found = {t.tag for t in self.list_tags if t.kind == "component" and not t.free}
        for kind, name in {*self.mentions.title, *self.mentions.text}:
            if kind != "component":
                continue
            if (kind, name) in self.mentions.title or self.mentions.count(
                (kind, name)
            ) >= min_mentions:
                found.add(name)
        return found

    def base_impacts(self) -> set[str]:
        """Impacts from the list and from titles: what the semantic step adds to."""
        found = {t.tag for t in self.list_tags if t.kind == "impact" and not t.free}
        found.update(name for kind, name in self.mentions.title if kind == "impact")
        return found


def analyse_stories(
    db: sqlite_utils.Database,
    settings: Settings,
    impacts: Sequence[str],
    story_ids: Iterable[str] | None = None,
) -> dict[str, StoryAnalysis]:
    """List tags, mentions and semantic scores (over `impacts`) of live stories."""
    taxonomy = load_taxonomy(settings.taxonomy_file)
    model = model_key(settings.model_name)
    ids = _live_story_ids(db, story_ids)
    inputs = load_inputs(db, ids, model, with_text=True)
    vectors = _load_vectors(db, ids, model)
    prototypes = impact_prototypes(
        taxonomy, impacts, load_model(settings.model_name), batch_size=settings.batch_size
    )
    result = {}
    for sid, story in inputs.items():
        scores = story_semantic_scores(vectors[sid], prototypes) if sid in vectors else None
        result[sid] = StoryAnalysis(
            sid, tuple(list_tags(taxonomy, story)), find_story_mentions(taxonomy, story), scores
        )
    return result


@dataclass(frozen=True)
class Figures:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def score_sets(predicted: Mapping[str, set[str]], gold: Mapping[str, set[str]]) -> Figures:
    tp = fp = fn = 0
    for sid, wanted in gold.items():
        got = predicted.get(sid, set())
        tp += len(got & wanted)
        fp += len(got - wanted)
        fn += len(wanted - got)
    return Figures(tp, fp, fn)


@dataclass(frozen=True)
class _ImpactMatrix:
    """Semantic z-scores, ranks, gold and base impacts as (story x impact) arrays."""

    raw: np.ndarray  # NaN where a story has no scores
    gold: np.ndarray
    base: np.ndarray
    extra_gold: np.ndarray  # per story: gold impacts outside the semantic set
    extra_base_hits: np.ndarray  # per story: base impacts outside the semantic set that are gold
    extra_base_misses: np.ndarray  # ... that are not gold


def _impact_matrix(
    analyses: Mapping[str, StoryAnalysis],
    gold: Mapping[str, set[str]],
    order: Sequence[str],
    impacts: Sequence[str],
) -> _ImpactMatrix:
    raw = np.full((len(order), len(impacts)), np.nan)
    y = np.zeros(raw.shape, dtype=bool)
    base = np.zeros(raw.shape, dtype=bool)
    extra_gold = np.zeros(len(order), dtype=np.int64)
    hits = np.zeros(len(order), dtype=np.int64)
    misses = np.zeros(len(order), dtype=np.int64)
    index = {impact: j for j, impact in enumerate(impacts)}
    for a, sid in enumerate(order):
        analysis = analyses[sid]
        if analysis.scores is not None:
            by_impact = dict(zip(analysis.scores.impacts, analysis.scores.raw, strict=True))
            raw[a] = [by_impact.get(impact, np.nan) for impact in impacts]
        for impact in gold[sid]:
            if impact in index:
                y[a, index[impact]] = True
            else:
                extra_gold[a] += 1
        for impact in analysis.base_impacts():
            if impact in index:
                base[a, index[impact]] = True
            elif impact in gold[sid]:
                hits[a] += 1
            else:
                misses[a] += 1
    return _ImpactMatrix(raw, y, base, extra_gold, hits, misses)


def _zscores(raw: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-impact mean and std over the scored stories among `rows`, and z for every story."""
    fitted = raw[rows]
    fitted = fitted[~np.isnan(fitted).any(axis=1)]
    mean = fitted.mean(axis=0)
    std = fitted.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std, (raw - mean) / std


def _ranks(z: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(z), -np.inf, z)
    return (-filled).argsort(axis=1, kind="stable").argsort(axis=1, kind="stable")


def _predict(z: np.ndarray, base: np.ndarray, top: float, other: float) -> np.ndarray:
    ranks = _ranks(z)
    with np.errstate(invalid="ignore"):
        semantic = np.where(ranks == 0, z >= top, z >= other) & ~np.isnan(z)
    return base | semantic


def _fit_thresholds(
    z: np.ndarray, m: _ImpactMatrix, rows: np.ndarray
) -> tuple[float, float, float]:
    """(top, other, F1) maximising the overall impact F1 of base | semantic on `rows`. Among
    equally good pairs, the one nearest their centre (the middle of the plateau)."""
    zr, y, base = z[rows], m.gold[rows], m.base[rows]
    ranks = _ranks(zr)
    open_cells = ~base & ~np.isnan(zr)
    tp_base = (base & y).sum() + m.extra_base_hits[rows].sum()
    n_base = base.sum() + m.extra_base_hits[rows].sum() + m.extra_base_misses[rows].sum()
    n_gold = y.sum() + m.extra_gold[rows].sum()

    def counts(cells: np.ndarray, grid: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        values, truth = zr[cells], y[cells]
        thresholds = np.asarray(grid)[:, None]
        chosen = values[None, :] >= thresholds
        return (chosen & truth[None, :]).sum(axis=1), chosen.sum(axis=1)

    tp0, n0 = counts(open_cells & (ranks == 0), TOP_GRID)
    tp1, n1 = counts(open_cells & (ranks > 0), OTHER_GRID)
    tp = tp_base + tp0[:, None] + tp1[None, :]
    f1 = 2 * tp / (n_base + n0[:, None] + n1[None, :] + n_gold)
    best = f1.max()
    ties = np.argwhere(np.isclose(f1, best))
    centre = ties.mean(axis=0)
    i, j = ties[np.argmin(((ties - centre) ** 2).sum(axis=1))]
    return TOP_GRID[i], OTHER_GRID[j], float(best)


def _fit_per_impact(z: np.ndarray, m: _ImpactMatrix, rows: np.ndarray) -> np.ndarray:
    """The rejected alternative: one threshold per impact (no rank rule), coordinate ascent on
    the overall F1 from a common start."""
    zr, y, base = z[rows], m.gold[rows], m.base[rows]
    n_gold = y.sum() + m.extra_gold[rows].sum()
    fixed_tp = (base & y).sum() + m.extra_base_hits[rows].sum()
    fixed_n = base.sum() + m.extra_base_hits[rows].sum() + m.extra_base_misses[rows].sum()
    grid = np.asarray(OTHER_GRID)
    thresholds = np.full(zr.shape[1], 1.5)
    with np.errstate(invalid="ignore"):
        for _ in range(2):
            for j in range(zr.shape[1]):
                others = [k for k in range(zr.shape[1]) if k != j]
                chosen = (zr[:, others] >= thresholds[others]) & ~base[:, others]
                tp_rest = fixed_tp + (chosen & y[:, others]).sum()
                n_rest = fixed_n + chosen.sum()
                cells = ~base[:, j] & ~np.isnan(zr[:, j])
                pick = zr[cells, j][None, :] >= grid[:, None]
                tp = tp_rest + (pick & y[cells, j][None, :]).sum(axis=1)
                n = n_rest + pick.sum(axis=1)
                thresholds[j] = grid[int(np.argmax(2 * tp / (n + n_gold)))]
    return thresholds


def _figures(pred: np.ndarray, m: _ImpactMatrix, rows: np.ndarray | None = None) -> Figures:
    rows = np.arange(len(pred)) if rows is None else rows
    p, y = pred[rows], m.gold[rows]
    tp = int((p & y).sum() + m.extra_base_hits[rows].sum())
    fp = int((p & ~y).sum() + m.extra_base_misses[rows].sum())
    fn = int((~p & y).sum() + m.extra_gold[rows].sum() - m.extra_base_hits[rows].sum())
    return Figures(tp, fp, fn)


@dataclass(frozen=True)
class CalibrationResult:
    calibration: Calibration
    report: Mapping[str, Any]


def calibrate(
    taxonomy: Taxonomy,
    analyses: Mapping[str, StoryAnalysis],
    gold_components: Mapping[str, set[str]],
    gold_impacts: Mapping[str, set[str]],
    *,
    model: str,
    component_vocabulary: Iterable[str],
    corpus: str,
) -> CalibrationResult:
    """Fit `component_min_mentions` and the semantic thresholds on labelled stories.

    Components: for each minimum count, precision and recall of list | rule against the gold
    components, counting only predictions inside `component_vocabulary` (the gold labels say
    nothing about other components); the best F1 among the counts that reach
    COMPONENT_PRECISION_TARGET wins. Impacts: per-impact z statistics from the scored stories
    (no labels), then the (top, other) pair maximising the overall impact F1 of
    base | semantic. Held-out figures come from leave-one-story-out: statistics, count and
    thresholds refitted without the story, then applied to it. A variant with one threshold
    per impact is fitted the same way, for comparison only.
    """
    order = sorted(gold_impacts)
    vocabulary = set(component_vocabulary)
    rows_all = np.arange(len(order))

    def component_figures(n: int, sids: Iterable[str]) -> Figures:
        predicted = {sid: analyses[sid].components(n) & vocabulary for sid in sids}
        return score_sets(predicted, {sid: gold_components[sid] for sid in sids})

    def choose_n(sids: Sequence[str]) -> int:
        figures = {n: component_figures(n, sids) for n in MIN_MENTIONS_CHOICES}
        good = [n for n, f in figures.items() if f.precision >= COMPONENT_PRECISION_TARGET]
        return max(good or MIN_MENTIONS_CHOICES, key=lambda n: (figures[n].f1, -n))

    min_mentions = choose_n(order)
    component_table = {str(n): component_figures(n, order).to_dict() for n in MIN_MENTIONS_CHOICES}
    held_tp = held_fp = held_fn = 0
    for sid in order:
        n = choose_n([s for s in order if s != sid])
        f = component_figures(n, [sid])
        held_tp, held_fp, held_fn = held_tp + f.tp, held_fp + f.fp, held_fn + f.fn

    # The semantic set is whatever the analyses scored (and centred over): the caller picks it,
    # normally the impacts with at least one positive example in the corpus.
    scored = [sid for sid in order if analyses[sid].scores is not None]
    if not scored:
        raise TaggingError("calibration needs stories with embedded text passages")
    first = analyses[scored[0]].scores
    impacts = list(first.impacts) if first is not None else []
    m = _impact_matrix(analyses, gold_impacts, order, impacts)
    mean, std, z = _zscores(m.raw, rows_all)
    top, other, in_f1 = _fit_thresholds(z, m, rows_all)
    in_pred = _predict(z, m.base, top, other)
    per_impact = _fit_per_impact(z, m, rows_all)
    with np.errstate(invalid="ignore"):
        in_pi = m.base | ((z >= per_impact) & ~np.isnan(z))

    held = np.zeros_like(m.gold)
    held_pi = np.zeros_like(m.gold)
    for a in rows_all:
        train = rows_all[rows_all != a]
        _, _, z_fold = _zscores(m.raw, train)
        t_top, t_other, _ = _fit_thresholds(z_fold, m, train)
        held[a] = _predict(z_fold[a : a + 1], m.base[a : a + 1], t_top, t_other)[0]
        t_pi = _fit_per_impact(z_fold, m, train)
        with np.errstate(invalid="ignore"):
            held_pi[a] = m.base[a] | ((z_fold[a] >= t_pi) & ~np.isnan(z_fold[a]))

    base_only = _figures(m.base, m)
    semantic_only_in = Figures(
        int((in_pred & ~m.base & m.gold).sum()), int((in_pred & ~m.base & ~m.gold).sum()), 0
    )
    semantic_only_held = Figures(
        int((held & ~m.base & m.gold).sum()), int((held & ~m.base & ~m.gold).sum()), 0
    )
    report = {
        "corpus": corpus,
        "stories": len(order),
        "stories_with_scores": len(scored),
        "calibrated_at": utcnow(),
        "cross_validation": "leave-one-story-out (statistics, counts and thresholds refitted "
        "without the held-out story)",
        "components": {
            "rule": "component_min_mentions = the count with the best list|rule F1 among those "
            f"with precision >= {COMPONENT_PRECISION_TARGET} (predictions outside the gold "
            "vocabulary ignored)",
            "by_min_mentions": component_table,
            "held_out": Figures(held_tp, held_fp, held_fn).to_dict(),
        },
        "impacts": {
            "semantic_impacts": impacts,
            "not_semantic": [i.id for i in taxonomy.impacts if i.id not in impacts],
            "list_and_title_only": base_only.to_dict(),
            "global": {
                "thresholds": {"top": top, "other": other},
                "in_sample": _figures(in_pred, m).to_dict(),
                "held_out": _figures(held, m).to_dict(),
                "semantic_additions_in_sample": {
                    "correct": semantic_only_in.tp,
                    "wrong": semantic_only_in.fp,
                },
                "semantic_additions_held_out": {
                    "correct": semantic_only_held.tp,
                    "wrong": semantic_only_held.fp,
                },
            },
            "per_impact_alternative": {
                "thresholds": {i: float(t) for i, t in zip(impacts, per_impact, strict=True)},
                "in_sample": _figures(in_pi, m).to_dict(),
                "held_out": _figures(held_pi, m).to_dict(),
            },
            "chosen": "global",
        },
    }
    calibration = Calibration(
        model=model,
        impacts=tuple(impacts),
        mean=MappingProxyType({i: round(float(v), 6) for i, v in zip(impacts, mean, strict=True)}),
        std=MappingProxyType({i: round(float(v), 6) for i, v in zip(impacts, std, strict=True)}),
        top=top,
        other=other,
        component_min_mentions=min_mentions,
        descriptions_digest=descriptions_digest(taxonomy),
        derivation=MappingProxyType(report),
    )
    return CalibrationResult(calibration, report)
