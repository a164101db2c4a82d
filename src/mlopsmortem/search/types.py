"""The search stage's shared types: the request's mode and tuning, ranked stories on their way to
fusion, and the hits a search returns. A leaf: it imports nothing else of the package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")


@dataclass(frozen=True)
class Tuning:
    """Ranking knobs. The defaults are the shipped ranking; other values exist for tests and for
    the variants bench/search_variants.py compares (docs/search.md explains each choice)."""

    rrf_k: int = 20  # hybrid: a story's vote from one ranking is 1 / (rrf_k + rank)
    title_weight: float = 2.0  # bm25 weight of the title column (text column: 1.0)
    candidates: int = 100  # stories taken from each mode before fusing
    # keyword ranking: stories matching more of the query's words first, bm25 within a tier
    coverage_first: bool = True
    keyword_top: int | None = None  # passages read from FTS5 per query; None: max(200, 10 pool)
    # common terms (mlopsmortem.search.keyword): a word found in at least
    # max(common_min_rows, common_fraction * passages) passages only re-scores and counts
    # towards coverage of the passages matching the other words; None: always the full query
    common_fraction: float | None = 0.05
    common_min_rows: int = 1000
    # hybrid: a keyword vote counts coverage ** coverage_power (coverage = share of query words
    # matched), so a story matching few of a long query's words adds little; 0 = plain RRF
    coverage_power: float = 4.0
    # hybrid: a story gets a semantic vote only if its cosine is within this margin of the best
    # story's; None = always (the default: on real postmortems the margin cost more than it
    # saved, docs/search.md)
    semantic_margin: float | None = None


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
    matched_by: Literal["keyword", "semantic", "both", "filters"]  # filters: browse, no query
    # the story's incident card (mlopsmortem.search.cards): unknown is None, or () for triggers
    summary: str | None = None
    triggers: tuple[str, ...] = ()
    detection: str | None = None
    duration_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["components"] = list(self.components)
        data["impacts"] = list(self.impacts)
        data["triggers"] = list(self.triggers)
        data["highlights"] = [list(h) for h in self.highlights]
        return data


class Ranked(NamedTuple):
    """A story in one mode's ranking, with the passage that ranked it."""

    story_id: str
    passage_id: int
    score: float  # -bm25 or cosine
    coverage: float = 1.0  # share of the query's words the story matched (any of its passages)


@dataclass
class Candidate:
    """A story on its way to a result: its fused score and the passage each mode found."""

    story_id: str
    score: float = 0.0
    keyword_passage: int | None = None
    semantic_passage: int | None = None
    keyword_rank: int | None = None
    semantic_rank: int | None = None

    @property
    def matched_by(self) -> Literal["keyword", "semantic", "both"]:
        if self.keyword_passage is not None and self.semantic_passage is not None:
            return "both"
        return "keyword" if self.keyword_passage is not None else "semantic"

    @property
    def passage_id(self) -> int | None:
        """The passage to show: the keyword match when there is one (it has the words)."""
        return self.keyword_passage if self.keyword_passage is not None else self.semantic_passage
