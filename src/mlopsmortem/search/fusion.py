"""Fusion: one ranked list of stories from the keyword and the semantic rankings.

Reciprocal rank fusion (RRF): a story scores the sum over the rankings that found it of
1 / (tuning.rrf_k + rank), its keyword vote weighted by the share of query words it matched
(tuning.coverage_power). Story fusion (the default) fuses the two story rankings, and a story
gets a semantic vote only when its cosine is within tuning.semantic_margin of the best story's
(stories only semantic search found, below that, follow every story with a vote); passage
fusion (tuning.fusion="passage", tried and dropped) fuses passages and scores a story by its
best one plus tuning.passage_bonus times the others.
`Candidate` is a story on its way to a result: its score and the passage each mode found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlopsmortem.search.types import Candidate, Ranked, Tuning


def _keyword_weight(r: Ranked, tuning: Tuning) -> float:
    share = r.idf_coverage if tuning.coverage_idf else r.coverage
    return share**tuning.coverage_power


def fuse_stories(
    keyword: Sequence[Ranked], semantic: Sequence[Ranked], tuning: Tuning
) -> list[Candidate]:
    candidates: dict[str, Candidate] = {}
    for rank, r in enumerate(keyword, start=1):
        c = candidates.setdefault(r.story_id, Candidate(r.story_id))
        c.keyword_passage, c.keyword_rank = r.passage_id, rank
        c.score += _keyword_weight(r, tuning) / (tuning.rrf_k + rank)
    floor = -math.inf
    if tuning.semantic_margin is not None and semantic:
        floor = semantic[0].score - tuning.semantic_margin
    for rank, (story, passage, score, _, _) in enumerate(semantic, start=1):
        # Far from the best story, a semantic rank is no evidence of relevance: it gets no vote.
        # A story keyword search found keeps its keyword vote alone; one only semantic search
        # found stays in the list (hybrid ranks every story) behind every story with a vote.
        voted = score >= floor
        if not voted and story in candidates:
            continue
        c = candidates.setdefault(story, Candidate(story))
        c.semantic_passage, c.semantic_rank = passage, rank
        if voted:
            c.score += 1.0 / (tuning.rrf_k + rank)
    return sorted(
        candidates.values(),
        key=lambda c: (-c.score, c.semantic_rank or math.inf, c.keyword_rank or math.inf),
    )


def fuse_passages(
    keyword: Sequence[Ranked], semantic: Sequence[Ranked], tuning: Tuning
) -> list[Candidate]:
    candidates: dict[str, Candidate] = {}
    for source, hits in (("keyword", keyword), ("semantic", semantic)):
        for rank, r in enumerate(hits, start=1):
            story, passage = r.story_id, r.passage_id
            c = candidates.setdefault(story, Candidate(story))
            if source == "keyword" and c.keyword_passage is None:
                c.keyword_passage, c.keyword_rank = passage, rank
            if source == "semantic" and c.semantic_passage is None:
                c.semantic_passage, c.semantic_rank = passage, rank
            weight = _keyword_weight(r, tuning) if source == "keyword" else 1.0
            c.passage_scores[passage] = c.passage_scores.get(passage, 0.0) + weight / (
                tuning.rrf_k + rank
            )
    for c in candidates.values():
        ordered = sorted(c.passage_scores.values(), reverse=True)
        c.score = ordered[0] + tuning.passage_bonus * sum(ordered[1:])
    return sorted(
        candidates.values(),
        key=lambda c: (-c.score, c.semantic_rank or math.inf, c.keyword_rank or math.inf),
    )
