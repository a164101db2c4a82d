"""Fusion: one ranked list of stories from the keyword and the semantic story rankings.

Reciprocal rank fusion (RRF): a story scores the sum over the rankings that found it of
1 / (tuning.rrf_k + rank), its keyword vote weighted by the share of query words it matched to
the power tuning.coverage_power. With a tuning.semantic_margin (none by default), a story gets
a semantic vote only when its cosine is within it of the best story's; stories only semantic
search found, below that, follow every story with a vote. Ties go to the better semantic,
then keyword, rank.
Why these choices: docs/search.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlopsmortem.search.types import Candidate, Ranked, Tuning


def fuse_stories(
    keyword: Sequence[Ranked], semantic: Sequence[Ranked], tuning: Tuning
) -> list[Candidate]:
    """Every story of either ranking, best first (see the module docstring)."""
    candidates: dict[str, Candidate] = {}
    for rank, r in enumerate(keyword, start=1):
        c = candidates.setdefault(r.story_id, Candidate(r.story_id))
        c.keyword_passage, c.keyword_rank = r.passage_id, rank
        c.score += r.coverage**tuning.coverage_power / (tuning.rrf_k + rank)
    floor = -math.inf
    if tuning.semantic_margin is not None and semantic:
        floor = semantic[0].score - tuning.semantic_margin
    for rank, r in enumerate(semantic, start=1):
        # Far from the best story, a semantic rank is no evidence of relevance: it gets no vote.
        # A story keyword search found keeps its keyword vote alone; one only semantic search
        # found stays in the list (hybrid ranks every story) behind every story with a vote.
        voted = r.score >= floor
        if not voted and r.story_id in candidates:
            continue
        c = candidates.setdefault(r.story_id, Candidate(r.story_id))
        c.semantic_passage, c.semantic_rank = r.passage_id, rank
        if voted:
            c.score += 1.0 / (tuning.rrf_k + rank)
    return sorted(
        candidates.values(),
        key=lambda c: (-c.score, c.semantic_rank or math.inf, c.keyword_rank or math.inf),
    )
