"""The semantic method: impacts from the stored passage embeddings, scored against sentence
embeddings of the impact descriptions and standardised with the calibration's statistics."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sqlite_utils

from mlopsmortem.passages.embed import decode_matrix, encode_texts, load_model
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import Calibration
from mlopsmortem.tagging.inputs import chunks
from mlopsmortem.tagging.tags import Tag, TaggingError
from mlopsmortem.tagging.taxonomy import Taxonomy

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SEMANTIC_SNIPPET_CHARS = 240
# Semantic confidence: a logistic of (score - threshold), so exactly 0.5 at the threshold.
SEMANTIC_CONFIDENCE_SLOPE = 2.0

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


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


def semantic_decisions(
    score: Mapping[str, float],
    top: float,
    other: float,
    *,
    tagged: Collection[str] = (),
    exclusive: Mapping[str, Collection[str]] | None = None,
) -> dict[str, float]:
    """The impacts to tag, each with the threshold it passed: the best-ranked one against `top`,
    the rest against `other`. An impact exclusive with one already `tagged` (by the list, a
    title or a statement) or with a better-scored chosen one is left out."""
    exclusive = exclusive or {}
    ranked = sorted(score, key=lambda i: (-score[i], i))
    chosen: dict[str, float] = {}
    for rank, impact in enumerate(ranked):
        threshold = top if rank == 0 else other
        rivals = exclusive.get(impact, ())
        if any(r in tagged or r in chosen for r in rivals):
            continue
        if score[impact] >= threshold:
            chosen[impact] = threshold
    return chosen


def semantic_tags(
    scores: SemanticScores,
    calibration: Calibration,
    passage_texts: Mapping[int, str],
    mentions: Mapping[str, int],
    *,
    tagged: Collection[str] = (),
    exclusive: Mapping[str, Collection[str]] | None = None,
) -> list[Tag]:
    """Impacts whose score (z of the best passage, and the impact's alias mentions in the text,
    weighted as the calibration fitted them) passes the thresholds; see semantic_decisions for
    `tagged` and `exclusive`."""
    z = standardise(scores, calibration)
    score = {impact: calibration.score(v, mentions.get(impact, 0)) for impact, v in z.items()}
    where = dict(zip(scores.impacts, scores.passage_ids, strict=True))
    tags = []
    for impact, threshold in sorted(
        semantic_decisions(
            score, calibration.top, calibration.other, tagged=tagged, exclusive=exclusive
        ).items()
    ):
        confidence = 1.0 / (
            1.0 + math.exp(-SEMANTIC_CONFIDENCE_SLOPE * (score[impact] - threshold))
        )
        text = " ".join(passage_texts.get(where[impact], "").split())
        if len(text) > SEMANTIC_SNIPPET_CHARS:
            text = text[:SEMANTIC_SNIPPET_CHARS].rstrip() + "…"
        evidence = (
            f"score {score[impact]:.2f} >= {threshold:.2f} (z {z[impact]:.2f}, "
            f"alias mentions {mentions.get(impact, 0)}): {text}"
        )
        tags.append(Tag("impact", impact, "semantic", confidence, evidence, where[impact]))
    return tags


@dataclass
class SemanticRun:
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


def load_vectors(
    db: sqlite_utils.Database, story_ids: Sequence[str], model: str
) -> dict[str, tuple[list[int], list[bytes], list[str]]]:
    """Current embeddings and texts of the stories' text passages, by story."""
    found: dict[str, tuple[list[int], list[bytes], list[str]]] = {}
    for part in chunks(list(story_ids)):
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
