"""Search and embedding benchmark: prints figures, asserts nothing.

    .venv/bin/python -m bench.search [--sections quality,embed,latency] [--sizes 1000,10000,100000]

quality  Ranking quality of every mode and of the tuning variants `Tuning` expresses, on
         (a) the invented test knowledge base (tests/support/knowledge_base.py: 15 stories, 46
         queries, 4 neighbour pairs) and (b) the fictional demo corpus (its articles + graded
         data/demo/queries.tsv) when present. MRR and hit@1 of the first relevant story; nDCG@10
         with the graded relevance of the demo queries (bench/search_variants.py).
embed    Throughput of embed_passages against a bare model.encode of the same passages (ratio
         measured in the same run, runs alternated), and the effect of sorting by length.
         Passages: the real postmortems in ../shared/corpus/articles when present, else the demo.
latency  Search latency p50/p95 at each size (synthetic stories and passage texts from a small
         vocabulary, random unit vectors, real query embeddings), split into query embedding,
         vector scan, keyword, fusion and the rest; the vector scan as a ratio of a plain
         `matrix @ q` on the same matrix; index load time; process RSS at the largest size.
         Queries: one of the 50 commonest words + 1-3 rarer ones; "full keyword query" rows run
         the same queries with the common-terms split off (Tuning(common_fraction=None): every
         word scored by FTS5), in the same run; "2 common words" rows show the fallback when
         every word is common (the full query, exact).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench import synthetic_kb
from bench.search_variants import front_matter, quality
from mlopsmortem.db import open_db
from mlopsmortem.passages import embed as embed_module
from mlopsmortem.passages.embed import embed_passages, load_model
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.search.run import search, similar
from mlopsmortem.search.types import Tuning
from mlopsmortem.search.vectors import (
    VectorIndex,
    embed_query,
    semantic_stories,
)
from mlopsmortem.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

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


# --------------------------------------------------------------------------- embedding throughput


def throughput_passages() -> tuple[str, list[tuple[str, str]]]:
    if SHARED_ARTICLES.is_dir():
        files = sorted(SHARED_ARTICLES.glob("*.md"))
        return "shared corpus (real postmortems)", [(f.stem, f.read_text()) for f in files]
    if DEMO.is_dir():
        files = sorted((ROOT / "tools" / "demo_corpus" / "articles").glob("*.md"))
        return "demo corpus", [(f.stem, front_matter(f.read_text())[1]) for f in files]
    from tests.support.knowledge_base import STORIES

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
    rng = random.Random(11)
    queries = synthetic_kb.queries(30, rng)
    # own generator, so that the database built from `rng` below does not depend on it
    other = random.Random(13)
    common = synthetic_kb.vocabulary()[:50]
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
            synthetic_kb.grow(db.conn, built, size, rng)
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
