"""Search and embedding benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/search.py [--sections quality,embed,latency] [--sizes 1000,10000,100000]

quality  Ranking quality of every mode and of the tuning variants that were considered, on
         (a) the invented test knowledge base (tests/conftest_search.py: 15 stories, 46 queries,
         4 neighbour pairs) and (b) the fictional demo corpus (data/demo/articles + graded
         data/demo/queries.tsv) when present. MRR and hit@1 of the first relevant story; nDCG@10
         with the graded relevance of the demo queries.
embed    Throughput of embed_passages against a bare model.encode of the same passages (ratio
         measured in the same run, runs alternated), and the effect of sorting by length.
         Passages: the real postmortems in ../shared/corpus/articles when present, else the demo.
latency  Search latency p50/p95 at each size (synthetic stories and passage texts from a small
         vocabulary, random unit vectors, real query embeddings), split into query embedding,
         vector scan, keyword, fusion and the rest; the vector scan as a ratio of a plain
         `matrix @ q` on the same matrix; index load time; process RSS at the largest size.
         Queries: one of the 50 commonest words + 1-3 rarer ones; "full keyword query" rows run
         the same queries with the common-terms split off (Tuning(common_fraction=None), the
         behaviour before it), in the same run; "2 common words" rows show the fallback when
         every word is common (full query, exact, as slow as before).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.conftest_search

from quality import ndcg_at_10 as ndcg10  # noqa: E402  (bench/ is on sys.path)

from mlopsmortem import embed as embed_module  # noqa: E402
from mlopsmortem.db import open_db  # noqa: E402
from mlopsmortem.embed import embed_passages, encode_vector, load_model  # noqa: E402
from mlopsmortem.passages import sync_passages  # noqa: E402
from mlopsmortem.search import (  # noqa: E402
    Tuning,
    VectorIndex,
    embed_query,
    search,
    similar,
)
from mlopsmortem.settings import Settings  # noqa: E402
from mlopsmortem.vector_index import semantic_stories  # noqa: E402

DEMO = ROOT / "data" / "demo"
SHARED_ARTICLES = ROOT.parent / "shared" / "corpus" / "articles"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    to_mb = lambda v: int(v.split()[0]) / 1024  # noqa: E731
    return to_mb(fields["VmRSS"]), to_mb(fields["VmHWM"])


# --------------------------------------------------------------------------- corpora


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
    """Stories from data/demo/articles/*.md; graded queries from data/demo/queries.tsv."""
    import json

    articles = sorted((DEMO / "articles").glob("*.md")) if DEMO.is_dir() else []
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
    ("keyword AND", "keyword", Tuning(keyword_operator="AND")),
    ("keyword title weight 1", "keyword", Tuning(title_weight=1.0)),
    ("keyword title weight 5", "keyword", Tuning(title_weight=5.0)),
    ("keyword full query (no common terms)", "keyword", Tuning(common_fraction=None)),
    ("keyword common terms forced, >=5%", "keyword", Tuning(common_min_rows=1)),
    ("keyword common terms forced, >=10%", "keyword", Tuning(common_fraction=0.1,
                                                             common_min_rows=1)),
    ("semantic (max over passages)", "semantic", Tuning()),
    ("hybrid story RRF k60 plain", "hybrid", Tuning(semantic_margin=None)),
    ("hybrid story RRF k60 cov^2", "hybrid", Tuning(semantic_margin=None, coverage_power=2)),
    ("hybrid story RRF k60 cov^3", "hybrid", Tuning(semantic_margin=None, coverage_power=3)),
    ("hybrid story RRF k60 idf-cov^2", "hybrid", Tuning(semantic_margin=None, coverage_power=2,
                                                        coverage_idf=True)),
    ("hybrid story RRF k20 plain", "hybrid", Tuning(semantic_margin=None, rrf_k=20)),
    ("hybrid story k60 margin .3", "hybrid", Tuning(semantic_margin=0.3)),
    ("hybrid story k60 margin .15*", "hybrid", Tuning()),
    ("hybrid story k60 margin .1", "hybrid", Tuning(semantic_margin=0.1)),
    ("hybrid story k60 margin .15 cov^2", "hybrid", Tuning(coverage_power=2)),
    ("hybrid passage RRF k60 plain", "hybrid", Tuning(fusion="passage", semantic_margin=None)),
    ("hybrid passage k60 +0.2 bonus", "hybrid", Tuning(fusion="passage", semantic_margin=None,
                                                       passage_bonus=0.2)),
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
    from tests.conftest_search import (
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
        for method in ("mean", "max"):
            right = sum(
                similar(db, a, settings=settings, limit=1, tuning=Tuning(similar_method=method))[
                    0
                ].id
                == b
                for a, b in NEIGHBOURS
            )
            say(f"similar() {method:4}: topical neighbour first for {right}/{len(NEIGHBOURS)}")

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


# --------------------------------------------------------------------------- embedding throughput


def throughput_passages() -> tuple[str, list[tuple[str, str]]]:
    if SHARED_ARTICLES.is_dir():
        files = sorted(SHARED_ARTICLES.glob("*.md"))
        return "shared corpus (real postmortems)", [(f.stem, f.read_text()) for f in files]
    if DEMO.is_dir():
        files = sorted((DEMO / "articles").glob("*.md"))
        return "demo corpus", [(f.stem, front_matter(f.read_text())[1]) for f in files]
    from tests.conftest_search import STORIES

    return "test stories", [(s.id, s.text) for s in STORIES]


SAMPLE_PASSAGES = 96
ROUNDS = 3


def embed_throughput() -> None:
    say("\n== embedding throughput")
    name, documents = throughput_passages()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embed.db"
        db = open_db(path)
        with db.conn:
            for i, (slug, text) in enumerate(documents):
                db["stories"].insert({"id": slug, "url": f"https://x.invalid/{i}", "title": slug})
                db["documents"].insert({"story_id": slug, "text": text})
        settings = Settings(db_path=path, quiet=True)
        sync_passages(db, settings=settings)
        # every k-th passage by id: a sample with the corpus' mix of lengths, small enough to
        # alternate the contenders several times (minimums filter out other processes' noise)
        ids = [r[0] for r in db.execute("SELECT id FROM passages ORDER BY id")]
        keep = set(ids[:: max(1, len(ids) // SAMPLE_PASSAGES)][:SAMPLE_PASSAGES])
        drop = [i for i in ids if i not in keep]
        with db.conn:
            for i in range(0, len(drop), 500):
                part = drop[i : i + 500]
                marks = ",".join("?" * len(part))
                db.execute(f"DELETE FROM passages_fts WHERE rowid IN ({marks})", part)
                db.execute(f"DELETE FROM passages WHERE id IN ({marks})", part)
        texts = [r[0] for r in db.execute("SELECT text FROM passages ORDER BY id")]
        tokens = sum(len(t.split()) for t in texts)
        say(
            f"{len(texts)} of {len(ids)} passages of {len(documents)} documents of the {name}, "
            f"~{tokens // len(texts)} words each; batch_size {settings.batch_size}; "
            f"torch threads {__import__('torch').get_num_threads()}; {ROUNDS} alternating rounds"
        )
        model = load_model()
        model.encode(texts[:64], batch_size=32)  # warm-up
        size = settings.batch_size

        def bare() -> None:
            model.encode(texts, batch_size=size)

        def ours() -> None:
            counts = embed_passages(db, settings, rebuild=True, progress=False)
            assert counts.embedded == len(texts)

        def unsorted_batches() -> None:
            for i in range(0, len(texts), size):
                model.encode(texts[i : i + size], batch_size=size)

        contenders = {
            "bare": (bare, "bare model.encode(all, batch_size=32)"),
            "ours": (ours, "embed_passages(rebuild=True): DB reads, writes, commit per batch"),
            "unsorted": (unsorted_batches, "model.encode per batch of 32 in id order, unsorted"),
        }
        wall: dict[str, list[float]] = {k: [] for k in contenders}
        cpu: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(ROUNDS):
            for key, (fn, _) in contenders.items():
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[key].append(time.perf_counter() - w0)
                cpu[key].append(time.process_time() - c0)
        for key, (_, label) in contenders.items():
            best = min(wall[key])
            say(
                f"  {label:66} min {best:5.2f} s = {len(texts) / best:5.1f} passages/s; "
                f"median {statistics.median(wall[key]):5.2f} s; cpu min {min(cpu[key]):5.2f} s"
            )
        say(
            "  throughput ratio embed_passages / bare encode: "
            f"{min(wall['bare']) / min(wall['ours']):.3f} (min wall), "
            f"{statistics.median(wall['bare']) / statistics.median(wall['ours']):.3f} "
            "(median wall), "
            f"{min(cpu['bare']) / min(cpu['ours']):.3f} (min cpu)"
        )
        say(
            "  length-sorted batches vs unsorted: "
            f"{min(wall['unsorted']) / min(wall['bare']):.2f}x faster (min wall)"
        )
        # what embed_passages adds, measured without the model (immune to CPU contention)
        real = embed_module.encode_texts

        def no_model(model: object, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
            return np.full((len(texts), 384), 0.05, dtype=np.float32)

        embed_module.encode_texts = no_model  # type: ignore[assignment]
        try:
            overhead = min(timed(ours, 5))
        finally:
            embed_module.encode_texts = real
        batches = math.ceil(len(texts) / size)
        share = overhead / min(wall["bare"])
        say(
            f"  embed_passages without the model (fake encoder): {overhead * 1000:.1f} ms for "
            f"{batches} batches = {overhead / batches * 1000:.2f} ms per batch, "
            f"{share:.2%} of the bare encode time -> ratio bound {1 / (1 + share):.3f}"
        )


# --------------------------------------------------------------------------- latency

VOCABULARY_SIZE = 3000
COMPONENTS = ["dns", "logging", "kubernetes", "gpu", "tls", "database", "kafka", "airflow"]
IMPACTS = ["outage", "data-loss", "latency", "bad-predictions"]


def synthetic_vocabulary() -> list[str]:
    from tests.conftest_search import STORIES

    words = sorted({w for s in STORIES for w in re.findall(r"[a-z]{3,}", s.text.lower())})
    rng = random.Random(7)
    while len(words) < VOCABULARY_SIZE:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)))
    rng.shuffle(words)
    return words


def grow_synthetic_db(conn: sqlite3.Connection, start: int, stop: int, words, rng) -> None:
    """Passages start..stop-1 (8 per story), FTS rows and random unit vectors."""
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf
    dim = 384
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO embedding_models (name, dimension) VALUES (?, ?)",
            ["all-MiniLM-L6-v2", dim],
        )
        for sid in range(start // 8, (stop + 7) // 8):
            conn.execute(
                "INSERT OR IGNORE INTO stories (id, url, title, year, components, impacts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    f"s{sid}",
                    f"https://x.invalid/{sid}",
                    " ".join(rng.choices(words, weights, k=6)),
                    rng.randint(2010, 2025),
                    f'["{rng.choice(COMPONENTS)}", "{rng.choice(COMPONENTS)}"]',
                    f'["{rng.choice(IMPACTS)}"]',
                ],
            )
        batch = 5000
        for first in range(start, stop, batch):
            ids = range(first, min(stop, first + batch))
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(40, 120))) for _ in ids]
            vectors = np.random.default_rng(first).standard_normal((len(ids), dim)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            conn.executemany(
                "INSERT INTO passages (id, story_id, seq, kind, text, text_hash)"
                " VALUES (?, ?, ?, 'text', ?, ?)",
                [(i + 1, f"s{i // 8}", i % 8, t, f"h{i}") for i, t in zip(ids, texts, strict=True)],
            )
            conn.executemany(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, '')",
                [(i + 1, t) for i, t in zip(ids, texts, strict=True)],
            )
            conn.executemany(
                "INSERT INTO embeddings (rowid, passage_id, model, text_hash, vector)"
                " VALUES (?, ?, 'all-MiniLM-L6-v2', ?, ?)",
                [
                    (i + 1, i + 1, f"h{i}", encode_vector(v))
                    for i, v in zip(ids, vectors, strict=True)
                ],
            )


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure_size(
    db, settings: Settings, queries: Sequence[str], all_common: Sequence[str], build_s: float
) -> None:
    index = VectorIndex("all-MiniLM-L6-v2")
    start = time.perf_counter()
    snapshot = index.refresh(db.conn)
    load_s = time.perf_counter() - start
    say(
        f"\n{snapshot.size:>7} passages, {len(snapshot.story_ids)} stories "
        f"(built in {build_s:.1f} s; index load {load_s * 1000:.0f} ms, "
        f"matrix {snapshot.matrix.nbytes / 2**20:.0f} MiB)"
    )
    refresh = timed(lambda: index.refresh(db.conn), 200)
    other = sqlite3.connect(settings.db_path)
    connections = [db.conn, other]
    alternate = timed(lambda: index.refresh(connections.reverse() or connections[0]), 200)
    other.close()
    say(
        f"  freshness check, nothing changed: same connection p50 {ms(percentile(refresh, 50))};"
        f" alternating connections p50 {ms(percentile(alternate, 50))} (loads: {index.loads})"
    )
    # scan vs bare matmul on the same matrix
    mask = np.ones(len(snapshot.story_ids), dtype=bool)
    q = embed_query(queries[0])
    bare = timed(lambda: snapshot.matrix @ q, 30)
    scan = timed(lambda: semantic_stories(snapshot, q, mask, 100), 30)
    say(
        f"  vector scan: plain matrix @ q p50 {ms(percentile(bare, 50))}; ours (single-thread "
        f"einsum + per-story max + top-100) p50 {ms(percentile(scan, 50))} = "
        f"{percentile(scan, 50) / percentile(bare, 50):.2f}x"
    )
    full = Tuning(common_fraction=None)
    for label, mode, filters, tuning, texts in (
        ("hybrid", "hybrid", {}, Tuning(), queries),
        ("hybrid, full keyword query", "hybrid", {}, full, queries),
        ("semantic", "semantic", {}, Tuning(), queries),
        ("keyword", "keyword", {}, Tuning(), queries),
        ("keyword, full query", "keyword", {}, full, queries),
        ("hybrid, component filter", "hybrid", {"components": ["dns"]}, Tuning(), queries),
        ("keyword, 2 common words", "keyword", {}, Tuning(), all_common),
    ):
        totals: list[float] = []
        stages: dict[str, list[float]] = {}
        for query in texts:
            timings: dict[str, float] = {}
            start = time.perf_counter()
            search(
                db, query, settings=settings, mode=mode, index=index, timings=timings,
                tuning=tuning, **filters,
            )  # fmt: skip
            totals.append(time.perf_counter() - start)
            for key, value in timings.items():
                stages.setdefault(key, []).append(value)
        split = "  ".join(
            f"{k} {percentile(v, 50) * 1000:.2f}" for k, v in stages.items() if k != "embed"
        )
        say(
            f"  {label:26} p50 {ms(percentile(totals, 50))}  p95 "
            f"{ms(percentile(totals, 95))}   (p50 by stage, ms: {split})"
        )
    story_ids = [f"s{i}" for i in range(0, len(snapshot.story_ids), 97)][:30]
    first = timed(lambda: similar(db, story_ids[0], settings=settings, index=index), 1)
    rest = [
        t
        for story in story_ids
        for t in timed(lambda s=story: similar(db, s, settings=settings, index=index), 1)
    ]
    say(
        f"  {'similar()':26} p50 {ms(percentile(rest, 50))}  p95 {ms(percentile(rest, 95))}"
        f"   (first call, computing story vectors: {first[0] * 1000:.1f} ms)"
    )


def latency(sizes: Sequence[int]) -> None:
    say("\n== search latency (ms; synthetic passages, 8 per story; real query embeddings)")
    words = synthetic_vocabulary()
    rng = random.Random(11)
    common, rare = words[:50], words[500:]
    queries = [
        " ".join(rng.sample(common, 1) + rng.sample(rare, rng.randint(1, 3))) for _ in range(30)
    ]
    # own generator: the database built from `rng` below stays the same as before
    other = random.Random(13)
    all_common = [" ".join(other.sample(common, 2)) for _ in range(30)]
    model = load_model()
    for q in all_common:
        embed_query(q)
    embed_times = []
    for q in queries:
        start = time.perf_counter()
        embed_query(q)
        embed_times.append(time.perf_counter() - start)
    cached = timed(lambda: embed_query(queries[0]), 200)
    say(
        f"query embedding (uncached, {len(queries)} queries): p50 {ms(percentile(embed_times, 50))}"
        f"  p95 {ms(percentile(embed_times, 95))};  cached: p50 {ms(percentile(cached, 50))}"
    )
    del model
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "latency.db"
        db = open_db(path)
        settings = Settings(db_path=path, quiet=True)
        built = 0
        for size in sizes:
            start = time.perf_counter()
            grow_synthetic_db(db.conn, built, size, words, rng)
            built = size
            build_s = time.perf_counter() - start
            measure_size(db, settings, queries, all_common, build_s)
        rss, peak = rss_mb()
        say(f"\nprocess RSS at {built} passages: {rss:.0f} MiB (peak {peak:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="quality,embed,latency")
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sections = set(args.sections.split(","))
    started = time.perf_counter()
    load_model()
    say(
        f"model loaded in {time.perf_counter() - started:.1f} s (process RSS now "
        f"{rss_mb()[0]:.0f} MiB); {os.cpu_count()} CPUs, "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    if "quality" in sections:
        quality()
    if "embed" in sections:
        embed_throughput()
    if "latency" in sections:
        latency([int(s) for s in args.sizes.split(",")])
    say(
        f"\ntotal {time.perf_counter() - started:.0f} s; load average now "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
