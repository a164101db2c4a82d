"""The search stage's shared types: the request's mode and tuning, ranked stories on their way to
fusion, and the hits a search returns. A leaf: it imports nothing else of the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")


@dataclass(frozen=True)
class Tuning:
    """Ranking knobs, exposed for experiments only.

    The defaults were chosen on bench/quality.py (the demo corpus crawled end to end, 55
    graded queries), keeping the invented test knowledge base of tests/test_search.py green.
    nDCG@10 of hybrid: story RRF k60 margin .15, no coverage 0.932 (below keyword's 0.936);
    passage fusion 0.949 (fails two test paraphrases); story k20, coverage^2, margin .2 0.957
    (chosen; keyword 0.936, semantic 0.851); the same with the margin applied to stories only
    semantic search found too 0.959 (recall@10 0.995 -> 1.000). Differences under ~0.01 are
    within the noise of 55 queries.
    """

    rrf_k: int = 20
    title_weight: float = 2.0  # bm25 weight of the title column (text column: 1.0)
    keyword_operator: Literal["OR", "AND"] = "OR"
    fusion: Literal["story", "passage"] = "story"
    passage_bonus: float = 0.0  # passage fusion: story = best + bonus * sum(other passages)
    candidates: int = 100  # stories (or passages) taken from each mode before fusing
    # keyword ranking: stories matching more of the query's words first, bm25 within a tier
    coverage_first: bool = True
    keyword_top: int | None = None  # passages read from FTS5 per query; None: max(200, 10 pool)
    # common terms (keyword_search module docstring): a word found in at least
    # max(common_min_rows, common_fraction * passages) passages only re-scores and counts
    # towards coverage of the passages matching the other words; None: always the full query
    common_fraction: float | None = 0.05
    common_min_rows: int = 1000
    # hybrid: a keyword rank counts coverage ** coverage_power (coverage = share of query words
    # matched); 0 = plain RRF
    coverage_power: float = 2.0
    coverage_idf: bool = False  # weight by the idf-weighted share of words instead
    # hybrid (story fusion): a story keyword search found gets a semantic vote only if its
    # cosine is within this margin of the best story's; None = always
    semantic_margin: float | None = 0.2
    similar_method: Literal["mean", "max"] = "mean"


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class StoryHit:
    """One story in a result list; `snippet_marked` is HTML-safe."""

    id: str
    url: str
    title: str | None
    publisher: str | None
    year: int | None
    kind: str | None
    category: str | None
    link_status: str | None
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    score: float
    rank: int  # 1-based position in the full result list (offset included)
    snippet: str
    snippet_marked: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) offsets into snippet
    passage_id: int | None
    matched_by: Literal["keyword", "semantic", "both"]

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["components"] = list(self.components)
        data["impacts"] = list(self.impacts)
        data["highlights"] = [list(h) for h in self.highlights]
        return data


class Ranked(NamedTuple):
    story_id: str
    passage_id: int
    score: float  # -bm25 or cosine
    coverage: float = 1.0  # share of the query's words the story (or passage) matched
    idf_coverage: float = 1.0  # the same share, each word weighted by its bm25 idf


@dataclass
class Candidate:
    story_id: str
    score: float = 0.0
    keyword_passage: int | None = None
    semantic_passage: int | None = None
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    passage_scores: dict[int, float] = field(default_factory=dict)

    @property
    def matched_by(self) -> Literal["keyword", "semantic", "both"]:
        if self.keyword_passage is not None and self.semantic_passage is not None:
            return "both"
        return "keyword" if self.keyword_passage is not None else "semantic"

    @property
    def passage_id(self) -> int | None:
        if self.passage_scores:
            return max(self.passage_scores, key=lambda p: self.passage_scores[p])
        return self.keyword_passage if self.keyword_passage is not None else self.semantic_passage
