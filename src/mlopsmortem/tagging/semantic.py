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
from mlopsmortem.tagging.inputs import StoryInput, chunks
from mlopsmortem.tagging.tags import Tag, TaggingError
from mlopsmortem.tagging.taxonomy import Taxonomy

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SEMANTIC_SNIPPET_CHARS = 240
# Semantic confidence: a logistic of (score - threshold), so exactly 0.5 at the threshold.
SEMANTIC_CONFIDENCE_SLOPE = 2.0

#: A fallback impact (the best-scored one of a story that would otherwise have none) is
#: tagged with exactly the confidence that puts it into stories.impacts.
FALLBACK_CONFIDENCE = 0.5
#: The impact whose mention means the text says there was none: no fallback then.
NO_IMPACT = "no-user-impact"

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
    fallback: bool = False,
) -> dict[str, float]:
    """The impacts to tag, each with the threshold it passed: the best-ranked one against `top`,
    the rest against `other`. An impact exclusive with one already `tagged` (by the list, a
    title or a statement) or with a better-scored chosen one is left out. With `fallback`, a
    story left without any impact (nothing `tagged`, nothing passing) gets its best-ranked
    impact anyway, with its own score as the threshold it "passed"."""
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
    if fallback and not chosen and not tagged and ranked:
        chosen[ranked[0]] = score[ranked[0]]
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
    `tagged` and `exclusive`. A story with text gets at least one impact: when no method
    tagged one and none passes, its best-scored impact is tagged with confidence
    FALLBACK_CONFIDENCE (enough for stories.impacts), unless the text says there was no
    impact (an alias of NO_IMPACT, which is never tagged semantically)."""
    z = standardise(scores, calibration)
    score = {impact: calibration.score(v, mentions.get(impact, 0)) for impact, v in z.items()}
    where = dict(zip(scores.impacts, scores.passage_ids, strict=True))
    tags = []
    states_none = mentions.get(NO_IMPACT, 0) > 0
    decided = semantic_decisions(
        score, calibration.top, calibration.other, tagged=tagged, exclusive=exclusive,
        fallback=calibration.fallback and not states_none,
    )  # fmt: skip
    passed = semantic_decisions(
        score, calibration.top, calibration.other, tagged=tagged, exclusive=exclusive
    )
    for impact, threshold in sorted(decided.items()):
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
        if impact not in passed:
            confidence = FALLBACK_CONFIDENCE
            evidence = f"fallback, the best-scored impact of a story without one: {evidence}"
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

    def story_scores(
        self, db: sqlite_utils.Database, stories: Mapping[str, StoryInput], model: str
    ) -> dict[str, tuple[SemanticScores, dict[int, str]]]:
        """Scores and passage texts of the stories that have something to score: the stored
        embeddings of their text passages, or, for a story without a document, the list's
        summary, embedded sentence by sentence now (summaries are short and not stored as
        passages of their own; the card is not used, it repeats the story's previous tags)."""
        ids = list(stories)
        vectors = load_vectors(db, ids, model)
        result: dict[str, tuple[SemanticScores, dict[int, str]]] = {}
        for sid, found in vectors.items():
            texts = dict(zip(found[0], found[2], strict=True))
            result[sid] = (story_semantic_scores(found, self.prototypes()), texts)
        summaries = {
            sid: description_sentences(story.summary_text)
            for sid, story in stories.items()
            if sid not in vectors and story.summary_text and not story.text_passages
        }
        flat = [sentence for sentences in summaries.values() for sentence in sentences]
        if not flat:
            return result
        prototypes = self.prototypes()
        matrix = encode_texts(
            load_model(self.settings.model_name), flat, batch_size=self.settings.batch_size
        )
        row = 0
        for sid, sentences in summaries.items():
            card = stories[sid].card_passage_id
            pid = card if card is not None else -1
            part = matrix[row : row + len(sentences)]
            row += len(sentences)
            scores = semantic_scores(part, [pid] * len(sentences), prototypes)
            result[sid] = (scores, {pid: stories[sid].summary_text})
        return result


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
