"""Serving benchmark: /-/search.json against the bare library search() call. Prints figures.

    .venv/bin/python bench/serve.py [--passages 100000] [--requests 200] [--clients 8]
                                    [--modes hybrid,keyword] [--skip-http]
                                    [--workdir /tmp/mlopsmortem-bench-serve] [--fresh]

Two knowledge bases, both cached in --workdir (--fresh rebuilds them): the demo database, built
as `make demo` builds it (`pipeline.demo_session`: the bundled fictional site crawled end to end,
tagged and embedded with the real model; 45 stories) and queried with the 55 queries of
data/demo/queries.tsv; and a synthetic one with --passages passages (8 per story, random unit
vectors, Zipf-distributed words, components/impacts/years/link statuses for the filters). For
each mode:

  library      search(db, q, settings=..., mode=..., limit=n + 1) on a plain connection, as the
               plugin calls it (concurrent: one connection per thread)
  in-process   Datasette([db], plugins_dir=plugins).client.get("/-/search.json?...")
  http         a real `mlopsmortem serve` (uvicorn) subprocess, httpx over loopback

sequential = --requests requests one after another; concurrent = --clients clients sharing
--requests requests. Every query is run once before measuring, so query embeddings come from
the per-process cache on both sides (the uncached embedding cost is printed once). The three
variants run interleaved in 4 rounds, so that load from elsewhere on the machine falls on all
of them alike. Reported: p50 and p95 latency per request (ms), throughput (requests/s) and the
ratio of each served figure to the library's; "time/req" is library throughput / served
throughput, the fair comparison under concurrency, where latency includes queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.*

from datasette.app import Datasette  # noqa: E402

from mlopsmortem.db import open_db  # noqa: E402
from mlopsmortem.embed import encode_vector, load_model  # noqa: E402
from mlopsmortem.pipeline import demo_session  # noqa: E402
from mlopsmortem.search import embed_query, search, vector_index  # noqa: E402
from mlopsmortem.serve import DATASETTE_SETTINGS, load_metadata  # noqa: E402
from mlopsmortem.settings import Settings  # noqa: E402

PLUGINS = ROOT / "plugins"
N = 10  # results per page, the plugin's default
COMPONENTS = ["dns", "logging", "kubernetes", "gpu", "tls", "database", "kafka", "airflow"]
IMPACTS = ["outage", "data-loss", "latency", "bad-predictions"]
STATUSES = ["live"] * 8 + ["dead", "archived", "redirected"]


def say(*parts: object) -> None:
    print(*parts, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- knowledge bases


def cached(path: Path, build: Callable[[Path], object], *, fresh: bool) -> Path:
    """The knowledge base at `path`, built by build(path) unless a complete build is there."""
    done = path.with_name(path.name + ".done")
    if fresh or not done.exists():
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        started = time.perf_counter()
        build(path)
        done.touch()
        say(f"(built {path} in {time.perf_counter() - started:.0f} s)")
    open_db(path).close()  # brings a cache from an older schema up to date
    return path


def build_demo(path: Path) -> None:
    """The demo database exactly as `make demo` builds it (the demo site on a free port)."""
    with demo_session(Settings(db_path=path, quiet=True), site_port=0):
        pass


def demo_queries() -> list[str]:
    with open(ROOT / "data" / "demo" / "queries.tsv", encoding="utf-8") as handle:
        return [row["query"] for row in csv.DictReader(handle, delimiter="\t")]


def vocabulary(size: int = 3000) -> list[str]:
    from tests.conftest_search import STORIES

    words = sorted({w for s in STORIES for w in s.text.lower().split() if w.isalpha()})
    rng = random.Random(7)
    while len(words) < size:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)))
    rng.shuffle(words)
    return words


def build_synthetic(path: Path, passages: int) -> None:
    db = open_db(path)
    conn = db.conn
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rng = random.Random(11)
    dim = 384
    stories = (passages + 7) // 8
    with conn:
        conn.execute(
            "INSERT INTO sources (id, name, location) VALUES (1, 'list-a', 'a.md'),"
            " (2, 'list-b', 'b.md')"
        )
        conn.execute(
            "INSERT INTO embedding_models (name, dimension) VALUES ('all-MiniLM-L6-v2', ?)", [dim]
        )
        for sid in range(stories):
            story_id = f"s{sid}"
            conn.execute(
                "INSERT INTO stories (id, url, title, publisher, year, category, components,"
                " impacts, first_seen) VALUES (?, ?, ?, ?, ?, 'failure story', ?, ?,"
                " '2024-01-01T00:00:00Z')",
                [
                    story_id,
                    f"https://example.invalid/{sid}",
                    " ".join(rng.choices(words, weights, k=6)),
                    f"Publisher {sid % 97}",
                    rng.randint(2010, 2025),
                    json.dumps(sorted(set(rng.sample(COMPONENTS, 2)))),
                    json.dumps([rng.choice(IMPACTS)]),
                ],
            )
            conn.execute(
                "INSERT INTO story_sources (story_id, source_id, occurrence) VALUES (?, ?, 0)",
                [story_id, 1 + sid % 2],
            )
            conn.execute(
                "INSERT INTO pages (story_id, url, link_status) VALUES (?, ?, ?)",
                [story_id, f"https://example.invalid/{sid}", rng.choice(STATUSES)],
            )
        batch = 5000
        for first in range(0, passages, batch):
            ids = range(first, min(passages, first + batch))
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(40, 120))) for _ in ids]
            vectors = np.random.default_rng(first).standard_normal((len(ids), dim)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = list(zip(ids, texts, vectors, strict=True))
            conn.executemany(
                "INSERT INTO passages (id, story_id, seq, kind, text, text_hash)"
                " VALUES (?, ?, ?, 'text', ?, ?)",
                [(i + 1, f"s{i // 8}", i % 8, t, f"h{i}") for i, t, _ in rows],
            )
            conn.executemany(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, '')",
                [(i + 1, t) for i, t, _ in rows],
            )
            conn.executemany(
                "INSERT INTO embeddings (rowid, passage_id, model, text_hash, vector)"
                " VALUES (?, ?, 'all-MiniLM-L6-v2', ?, ?)",
                [(i + 1, i + 1, f"h{i}", encode_vector(v)) for i, _, v in rows],
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def synthetic_queries(count: int = 40) -> list[str]:
    """One common word and 1-3 rarer ones each, from the synthetic knowledge base's words."""
    words = vocabulary()
    common, rare = words[:50], words[500:]
    rng = random.Random(13)
    return [
        " ".join(rng.sample(common, 1) + rng.sample(rare, rng.randint(1, 3))) for _ in range(count)
    ]


# --------------------------------------------------------------------------- measuring


class Figures:
    def __init__(self, latencies: Sequence[float], walls: Sequence[float]) -> None:
        self.p50 = percentile(latencies, 50)
        self.p95 = percentile(latencies, 95)
        self.rps = len(latencies) / sum(walls) if sum(walls) else 0.0

    def row(self, label: str, base: Figures | None) -> str:
        text = (
            f"    {label:12} p50 {self.p50 * 1000:8.2f}  p95 {self.p95 * 1000:8.2f}"
            f"  {self.rps:8.1f} req/s"
        )
        if base is not None:
            text += (
                f"   x{self.p50 / base.p50:5.2f} p50  x{self.p95 / base.p95:5.2f} p95"
                f"  x{base.rps / self.rps:5.2f} time/req"
            )
        return text


Sample = tuple[list[float], float]  # latencies of one run, its wall time
ROUNDS = 4


def add(samples: dict[str, tuple[list[float], list[float]]], name: str, sample: Sample) -> None:
    latencies, walls = samples.setdefault(name, ([], []))
    latencies.extend(sample[0])
    walls.append(sample[1])


def plan(queries: Sequence[str], requests: int) -> list[str]:
    return [queries[i % len(queries)] for i in range(requests)]


def library_sequential(path: Path, settings: Settings, queries: Sequence[str], mode: str) -> Sample:
    db = open_db(path, migrate=False)
    try:
        latencies = []
        started = time.perf_counter()
        for q in queries:
            t = time.perf_counter()
            search(db, q, settings=settings, mode=mode, limit=N + 1)
            latencies.append(time.perf_counter() - t)
        return latencies, time.perf_counter() - started
    finally:
        db.close()


def library_concurrent(
    path: Path, settings: Settings, queries: Sequence[str], mode: str, clients: int
) -> Sample:
    latencies: list[float] = []
    lock = threading.Lock()
    work = list(queries)

    def client() -> None:
        db = open_db(path, migrate=False)
        try:
            while True:
                with lock:
                    if not work:
                        return
                    q = work.pop()
                t = time.perf_counter()
                search(db, q, settings=settings, mode=mode, limit=N + 1)
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
        finally:
            db.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def url_of(q: str, mode: str) -> str:
    return "/-/search.json?" + urllib.parse.urlencode({"q": q, "mode": mode, "n": N})


async def served(
    get: Callable[[str], object], queries: Sequence[str], mode: str, clients: int
) -> Sample:
    latencies: list[float] = []
    work = list(queries)

    async def client() -> None:
        while work:
            q = work.pop()
            t = time.perf_counter()
            response = await get(url_of(q, mode))
            elapsed = time.perf_counter() - t
            if response.status_code != 200:  # type: ignore[attr-defined]
                raise RuntimeError(f"{response.status_code}: {response.text[:300]}")  # type: ignore[attr-defined]
            latencies.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`mlopsmortem serve` in a subprocess, ready once a semantic search answers."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlopsmortem", "serve", "--db", str(path), "--quiet"]
            + ["--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode(errors="replace"))
            try:
                if (
                    httpx.get(self.base + url_of("warm up", "hybrid"), timeout=60).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlopsmortem serve did not come up")
            time.sleep(0.3)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def bench_db(name: str, path: Path, queries: Sequence[str], args: argparse.Namespace) -> None:
    settings = Settings(db_path=path, quiet=True)
    conn = sqlite3.connect(path)
    (passages,) = conn.execute("SELECT count(*) FROM passages").fetchone()
    (stories,) = conn.execute("SELECT count(*) FROM stories").fetchone()
    conn.close()
    say(f"\n== {name}: {passages:,} passages, {stories:,} stories")
    requests = plan(queries, args.requests)
    # warm: the model, every query embedding, the vector index
    db = open_db(path, migrate=False)
    for q in queries:
        for mode in args.modes:
            search(db, q, settings=settings, mode=mode, limit=N + 1)
    vector_index(db, settings.model_name).refresh(db.conn)
    db.close()
    ds = Datasette(
        [str(path)],
        plugins_dir=str(PLUGINS),
        metadata=load_metadata(settings),
        settings=DATASETTE_SETTINGS,
    )
    await ds.invoke_startup()
    for q in queries:
        for mode in args.modes:
            await ds.client.get(url_of(q, mode))
    server = None if args.skip_http else Server(path)
    http = None
    try:
        if server is not None:
            http = httpx.AsyncClient(
                base_url=server.base,
                timeout=120,
                limits=httpx.Limits(max_connections=args.clients),
            )
            for q in queries:
                for mode in args.modes:
                    await http.get(url_of(q, mode))
        for mode in args.modes:
            for label, clients in (("sequential", 1), (f"{args.clients} clients", args.clients)):
                say(f"  {mode}, {label} ({len(requests)} requests each; ms)")
                # interleave the variants in rounds, so that load from elsewhere on the machine
                # falls on all of them alike
                samples: dict[str, tuple[list[float], list[float]]] = {}
                chunk = math.ceil(len(requests) / ROUNDS)
                for start in range(0, len(requests), chunk):
                    part = requests[start : start + chunk]
                    if clients == 1:
                        add(samples, "library", library_sequential(path, settings, part, mode))
                    else:
                        add(
                            samples,
                            "library",
                            await asyncio.to_thread(
                                library_concurrent, path, settings, part, mode, clients
                            ),
                        )
                    add(samples, "in-process", await served(ds.client.get, part, mode, clients))
                    if http is not None:
                        add(samples, "http", await served(http.get, part, mode, clients))
                base = Figures(*samples["library"])
                say(base.row("library", None))
                for name in ("in-process", "http"):
                    if name in samples:
                        say(Figures(*samples[name]).row(name, base))
    finally:
        if http is not None:
            await http.aclose()
        if server is not None:
            server.close()


async def run_all(kbs: Sequence[tuple[str, Path, list[str]]], args: argparse.Namespace) -> None:
    for name, path, queries in kbs:
        await bench_db(name, path, queries, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--modes", default="hybrid,keyword")
    parser.add_argument("--skip-http", action="store_true", help="no uvicorn subprocess")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlopsmortem-bench-serve"))
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached databases")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    load_model()
    started = time.perf_counter()
    embed_query("an uncached query about dns timeouts in kubernetes")
    elapsed = (time.perf_counter() - started) * 1000
    say(f"query embedding, uncached: {elapsed:.1f} ms (not in the figures below)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    demo = cached(args.workdir / "demo.db", build_demo, fresh=args.fresh)
    synthetic = cached(
        args.workdir / f"synthetic-{args.passages}.db",
        lambda p: build_synthetic(p, args.passages),
        fresh=args.fresh,
    )
    kbs = [
        ("demo (make demo)", demo, demo_queries()),
        ("synthetic", synthetic, synthetic_queries()),
    ]
    asyncio.run(run_all(kbs, args))


if __name__ == "__main__":
    main()
