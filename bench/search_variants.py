"""The quality section of bench/search.py: every mode and the ranking variants `Tuning` still
expresses (`VARIANTS`: keyword weights, common terms, fusion constants, the semantic margin), on
the invented test knowledge base (tests/support/knowledge_base.py) and on the demo articles
(tools/demo_corpus/articles, graded queries in data/demo/queries.tsv). MRR and hit@1 of the
first relevant story, nDCG@10 with the graded relevance. `*` marks the defaults. Variants dropped
from the code (AND operator, idf-weighted coverage, passage fusion, similar by best passage
pair) keep their figures in docs/search.md.
"""

from __future__ import annotations

import re
import statistics
import tempfile
from pathlib import Path

from bench.quality import ndcg_at_10 as ndcg10
from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.search.run import search, similar
from mlopsmortem.search.types import Tuning
from mlopsmortem.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
DEMO_ARTICLES = ROOT / "tools" / "demo_corpus" / "articles"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def front_matter(text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---\n"):
        return {}, text
    head, _, body = text[4:].partition("\n---\n")
    meta = {}
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta, body


def build_demo_kb(path: Path) -> tuple[object, list[tuple[str, dict[str, int], str]]] | None:
    """Stories from tools/demo_corpus/articles/*.md; graded queries from data/demo/queries.tsv."""
    import json

    articles = sorted(DEMO_ARTICLES.glob("*.md"))
    queries_file = DEMO / "queries.tsv"
    if not articles or not queries_file.is_file():
        return None
    db = open_db(path)
    with db.conn:
        db["sources"].insert({"id": 1, "name": "demo", "location": "demo"})
        for article in articles:
            slug = re.sub(r"^\d+-", "", article.stem)
            meta, body = front_matter(article.read_text())
            split = lambda v: [x.strip() for x in re.split(r"[;,]", v or "") if x.strip()]  # noqa: E731
            db["stories"].insert(
                {
                    "id": slug,
                    "url": f"https://demo.invalid/{slug}",
                    "title": meta.get("title"),
                    "publisher": meta.get("publisher"),
                    "kind": meta.get("kind"),
                    "year": int(meta["year"]) if meta.get("year", "").isdigit() else None,
                    "components": json.dumps(split(meta.get("components"))),
                    "impacts": json.dumps(split(meta.get("impacts"))),
                }
            )
            db["story_sources"].insert(
                {
                    "story_id": slug,
                    "source_id": 1,
                    "occurrence": 0,
                    "list_involved": json.dumps(split(meta.get("involved"))),
                    "list_impact": json.dumps(split(meta.get("impact"))),
                }
            )
            db["documents"].insert({"story_id": slug, "text": body.strip()})
    known = {r[0] for r in db.execute("SELECT id FROM stories")}
    queries = []
    for line in queries_file.read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        grades = {}
        for item in parts[1].split():
            story, _, grade = item.rpartition(":")
            if story in known:
                grades[story] = int(grade)
        if grades:
            queries.append((parts[0], grades, parts[2]))
    return db, queries


def evaluate(db, settings, queries, mode: str, tuning: Tuning) -> dict[str, tuple]:
    """Per query type: (MRR of first relevant, hit@1, nDCG@10)."""
    by_type: dict[str, list[tuple[float, int, float]]] = {}
    for query, grades, kind in queries:
        ranked = [
            h.id for h in search(db, query, settings=settings, mode=mode, limit=10, tuning=tuning)
        ]
        first = next((i for i, s in enumerate(ranked) if grades.get(s, 0) > 0), None)
        by_type.setdefault(kind, []).append(
            (
                1 / (first + 1) if first is not None else 0.0,
                int(first == 0),
                ndcg10(ranked, grades),
            )
        )
    summary = {}
    for kind, rows in by_type.items():
        summary[kind] = (
            statistics.mean(r[0] for r in rows),
            sum(r[1] for r in rows),
            len(rows),
            statistics.mean(r[2] for r in rows),
        )
    return summary


VARIANTS: list[tuple[str, str, Tuning]] = [
    ("keyword OR, bm25 only", "keyword", Tuning(coverage_first=False)),
    ("keyword OR, more words first*", "keyword", Tuning()),
    ("keyword title weight 1", "keyword", Tuning(title_weight=1.0)),
    ("keyword title weight 5", "keyword", Tuning(title_weight=5.0)),
    ("keyword full query (no common terms)", "keyword", Tuning(common_fraction=None)),
    ("keyword common terms forced, >=5%", "keyword", Tuning(common_min_rows=1)),
    ("keyword common terms forced, >=10%", "keyword", Tuning(common_fraction=0.1,
                                                             common_min_rows=1)),
    ("semantic (max over passages)", "semantic", Tuning()),
    ("hybrid story RRF k60 plain", "hybrid", Tuning(rrf_k=60, coverage_power=0,
                                                    semantic_margin=None)),
    ("hybrid story RRF k60 cov^2", "hybrid", Tuning(rrf_k=60, semantic_margin=None)),
    ("hybrid story RRF k60 cov^3", "hybrid", Tuning(rrf_k=60, semantic_margin=None,
                                                    coverage_power=3)),
    ("hybrid story k60 plain margin .15", "hybrid", Tuning(rrf_k=60, coverage_power=0,
                                                           semantic_margin=0.15)),
    ("hybrid story RRF k20 plain", "hybrid", Tuning(coverage_power=0, semantic_margin=None)),
    ("hybrid story k20 cov^2, no margin", "hybrid", Tuning(semantic_margin=None)),
    ("hybrid story k20 cov^2 margin .3", "hybrid", Tuning(semantic_margin=0.3)),
    ("hybrid story k20 cov^2 margin .2*", "hybrid", Tuning()),
    ("hybrid story k20 cov^2 margin .1", "hybrid", Tuning(semantic_margin=0.1)),
    ("hybrid full keyword query", "hybrid", Tuning(common_fraction=None)),
    ("hybrid common terms forced, >=5%", "hybrid", Tuning(common_min_rows=1)),
    ("hybrid common terms forced, >=10%", "hybrid", Tuning(common_fraction=0.1,
                                                           common_min_rows=1)),
]  # fmt: skip


def print_quality(name: str, db, settings, queries) -> None:
    kinds = sorted({q[2] for q in queries})
    say(f"\n{name}: {len(queries)} queries ({', '.join(kinds)}); * = default")
    header = "".join(f" | {k[:10]:>10} MRR hit@1 nDCG" for k in kinds)
    say(f"{'variant':38}{header} | all MRR")
    for label, mode, tuning in VARIANTS:
        result = evaluate(db, settings, queries, mode, tuning)
        cells = []
        total = 0.0
        for k in kinds:
            mrr, hits, n, ndcg = result[k]
            cells.append(f" | {mrr:14.2f} {hits:2}/{n:<2} {ndcg:4.2f}")
            total += mrr * n
        say(f"{label:38}{''.join(cells)} | {total / len(queries):.3f}")


def quality() -> None:
    from tests.support.knowledge_base import (
        IDENTIFIER_QUERIES,
        KEYWORD_QUERIES,
        NATURAL_QUERIES,
        NEIGHBOURS,
        PARAPHRASE_QUERIES,
        build_kb,
        kb_settings,
    )

    say("== quality")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fixture.db"
        db = build_kb(path)
        settings = kb_settings(path)
        sync_passages(db, settings=settings)
        embed_passages(db, settings, progress=False)
        queries = [
            (q, {s: 1}, kind)
            for kind, group in (
                ("keyword", KEYWORD_QUERIES),
                ("paraphrase", PARAPHRASE_QUERIES),
                ("natural", NATURAL_QUERIES),
                ("identifier", IDENTIFIER_QUERIES),
            )
            for q, s in group
        ]
        print_quality("test knowledge base", db, settings, queries)
        right = sum(similar(db, a, settings=settings, limit=1)[0].id == b for a, b in NEIGHBOURS)
        say(f"similar(): topical neighbour first for {right}/{len(NEIGHBOURS)}")

        demo = build_demo_kb(Path(tmp) / "demo.db")
        if demo is None:
            say("\n(demo corpus not present: skipped)")
            return
        db, queries = demo
        settings = Settings(db_path=Path(tmp) / "demo.db", quiet=True)
        counts = sync_passages(db, settings=settings)
        embed_passages(db, settings, progress=False)
        say(f"\ndemo corpus: {counts.stories} stories, {counts.inserted} passages")
        print_quality("demo corpus", db, settings, queries)
