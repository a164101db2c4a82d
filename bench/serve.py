"""Serving benchmark: /-/search.json against the bare library search() call. Prints figures.

    .venv/bin/python -m bench.serve [--passages 100000] [--requests 200] [--clients 8]
                                    [--modes hybrid,keyword] [--kb demo,synthetic] [--skip-http]
                                    [--cpu 0|any]
                                    [--workdir /tmp/mlopsmortem-bench-serve] [--fresh]

Two knowledge bases, both cached in --workdir (--fresh rebuilds them): the demo database, built
as `make demo` builds it (`pipeline.demo_session`: the bundled fictional site crawled end to end,
tagged and embedded with the real model; 45 stories) and queried with the 55 queries of
data/demo/queries.tsv; and a synthetic one with --passages passages (8 per story, random unit
vectors, Zipf-distributed words, components/impacts/years/link statuses for the filters). For
each mode:

  library      search(db, q, settings=..., mode=..., limit=n + 1) on a plain connection, as the
               plugin calls it (concurrent: one connection per thread)
  in-process   the ASGI app of serve.build_datasette(settings), the Datasette instance
               `mlopsmortem serve` runs (middleware and all), called directly without HTTP
  http         a real `mlopsmortem serve` (uvicorn) subprocess over loopback: sequential
               requests through one keep-alive connection with blocking socket calls
               (BlockingHTTP), concurrent ones through one asyncio connection per client
               (KeepAliveHTTP; bench/serve_clients.py)

None of these clients is Datasette's test client or httpx: those spend time of their own per
request, which no server sees; each run prints what they would add ("client cost"), on the
same warmed requests.

sequential = --requests requests one after another; concurrent = --clients clients sharing
--requests requests. Two workloads, each with every mode, sequential and concurrent:

  repeated queries  the knowledge base's queries, each run once on every variant before
                    measuring, so the query vector comes from the per-process embedding cache
                    on both sides: what is left is search itself plus the serving overhead.
  new queries       every request a string its variant has never sent (bench/serve_kb.py
                    FreshQueries: two of the queries joined, the words rotated by 0, 1 or 2
                    places, so request k of each variant has the same words and length but is
                    new to the cache), so every hybrid request embeds its query, as a real
                    user's first search does. The library call embeds inside search(), the
                    plugin just before it: the same work on both sides.

The three variants take turns, in 20 rounds of sequential requests and 4 rounds of concurrent
clients, so that load from elsewhere on the machine falls on all of them alike. Sequential
requests run with the benchmark and the server on one CPU (--cpu, default 0; `run_on`): on a
shared machine two vCPUs can run the same search at different speeds at the same moment, and
unpinned that difference lands on whichever variant runs on the slower one. Concurrent
clients use every CPU.

Reported per cell: p50, p95 and mean latency per request (ms), throughput (requests/s) and
each served figure against the library's; "time/req" is library throughput / served
throughput. The serving target: served p50 at most the library p50 + 3 ms; every cell prints
the difference and whether it holds, and a summary table ends the run. Under concurrency,
compare time/req and the mean as well: the library's threads take the GIL unfairly (a low
p50, a high p95), the server answers in arrival order (p50 about the mean).

Current figures and how the plugin serves: docs/serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from sqlite_utils import Database

from bench.serve_clients import BlockingHTTP, KeepAliveHTTP, Reply, asgi_caller
from bench.serve_kb import (
    VARIANTS,
    FreshQueries,
    build_demo,
    build_synthetic,
    cached,
    demo_queries,
    synthetic_queries,
)
from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import load_model
from mlopsmortem.search.run import search
from mlopsmortem.search.vectors import embed_query, vector_index
from mlopsmortem.settings import Settings
from mlopsmortem.web.serve import build_datasette, embed_queries_single_threaded

ROOT = Path(__file__).resolve().parents[1]

N = 10  # results per page, the plugin's default
TARGET_MS = 3.0  # the serving target: served p50 <= library p50 + TARGET_MS


def say(*parts: object) -> None:
    print(*parts, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- measuring


class Figures:
    def __init__(self, latencies: Sequence[float], walls: Sequence[float]) -> None:
        self.p50 = percentile(latencies, 50)
        self.p95 = percentile(latencies, 95)
        self.mean = sum(latencies) / len(latencies)
        self.rps = len(latencies) / sum(walls) if sum(walls) else 0.0

    def row(self, label: str, base: Figures | None) -> str:
        text = (
            f"      {label:12} p50 {self.p50 * 1000:7.2f}  p95 {self.p95 * 1000:7.2f}"
            f"  mean {self.mean * 1000:7.2f}  {self.rps:6.1f} req/s"
        )
        if base is not None:
            extra = (self.p50 - base.p50) * 1000
            text += (
                f"   x{self.p50 / base.p50:5.2f} p50  x{self.p95 / base.p95:5.2f} p95"
                f"  x{self.mean / base.mean:5.2f} mean  x{base.rps / self.rps:5.2f} time/req"
                f"   p50 {extra:+.2f} ms: {meets(extra)}"
            )
        return text


def meets(extra_ms: float) -> str:
    return f"{'meets' if extra_ms <= TARGET_MS else 'MISSES'} <= +{TARGET_MS:g} ms"


# One summary row per served cell: knowledge base, workload, mode, clients, variant, and the
# served and library figures.
Cell = tuple[str, str, str, str, str, Figures, Figures]


def summary(cells: Sequence[Cell]) -> None:
    """The served p50 of every cell against the library's, and whether the target holds. With
    concurrent clients a served p50 includes the wait behind the other clients' requests (the
    server answers in arrival order): there, time/req compares the work per request."""
    say(f"\n== served p50 against the library call (target: at most +{TARGET_MS:g} ms)")
    say(f"  {'cell':60} {'served':>7} {'library':>7} {'diff ms':>7}  {'target':16} time/req")
    for kb, workload, mode, clients, variant, served_figures, base in cells:
        extra = (served_figures.p50 - base.p50) * 1000
        label = f"{kb.split(' ')[0]}, {workload}, {mode}, {clients}, {variant}"
        say(
            f"  {label:60} {served_figures.p50 * 1000:7.2f} {base.p50 * 1000:7.2f}"
            f" {extra:+7.2f}  {meets(extra):16} x{base.rps / served_figures.rps:.2f}"
        )


Sample = tuple[list[float], float]  # latencies of one run, its wall time
# The variants take turns in rounds, so that load from elsewhere on the machine falls on all of
# them alike: short rounds for sequential requests (a load spike then spans all three), longer
# ones for concurrent clients (each round starts and drains its clients).
ROUNDS = {"sequential": 20, "concurrent": 4}
WORKLOADS = (
    ("repeated queries", "each warmed first, the query vector comes from the process's cache"),
    ("new queries", "every string new to its variant, every request embeds its query"),
)


def add(samples: dict[str, tuple[list[float], list[float]]], name: str, sample: Sample) -> None:
    latencies, walls = samples.setdefault(name, ([], []))
    latencies.extend(sample[0])
    walls.append(sample[1])


def library_sequential(
    db: Database, settings: Settings, queries: Sequence[str], mode: str
) -> Sample:
    latencies = []
    started = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        search(db, q, settings=settings, mode=mode, limit=N + 1)
        latencies.append(time.perf_counter() - t)
    return latencies, time.perf_counter() - started


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
    get: Callable[[str], Awaitable[Reply]], queries: Sequence[str], mode: str, clients: int
) -> Sample:
    latencies: list[float] = []
    work = list(queries)

    async def client() -> None:
        while work:
            q = work.pop()
            t = time.perf_counter()
            response = await get(url_of(q, mode))
            elapsed = time.perf_counter() - t
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {response.text[:300]}")
            latencies.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


def served_blocking(get: Callable[[str], Reply], queries: Sequence[str], mode: str) -> Sample:
    """Sequential requests through BlockingHTTP."""
    latencies = []
    started = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        response = get(url_of(q, mode))
        latencies.append(time.perf_counter() - t)
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {response.text[:300]}")
    return latencies, time.perf_counter() - started


def run_on(pids: Sequence[int], cpus: set[int]) -> None:
    """Every thread of these processes on these CPUs (Linux: a thread's affinity is its own,
    and a new thread inherits its creator's)."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except ProcessLookupError:
                pass  # the thread ended meanwhile


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


async def client_costs(
    ds: Any,
    server: Server,
    http: KeepAliveHTTP,
    blocking: BlockingHTTP,
    queries: Sequence[str],
    requests: int,
) -> None:
    """What the clients the benchmark does not time would add: the same warmed requests,
    sequential and interleaved, through Datasette's test client against the direct ASGI call,
    through httpx against KeepAliveHTTP, and through KeepAliveHTTP (the concurrent clients)
    against BlockingHTTP (the sequential one)."""
    direct = asgi_caller(ds.app())

    async def blocking_get(url: str) -> Reply:
        return blocking.get(url)

    async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
        pairs = {
            "in-process": (("ds.client", ds.client.get), ("ASGI call", direct)),
            "http": (("httpx", client.get), ("keep-alive", http.get)),
            "http, one at a time": (("keep-alive", http.get), ("blocking", blocking_get)),
        }
        for variant, sides in pairs.items():
            times: dict[str, list[float]] = {label: [] for label, _ in sides}
            for i in range(requests):
                url = url_of(queries[i % len(queries)], "hybrid")
                for label, get in sides:
                    t = time.perf_counter()
                    await get(url)
                    times[label].append(time.perf_counter() - t)
            (slow, slow_times), (fast, fast_times) = times.items()
            extra = (percentile(slow_times, 50) - percentile(fast_times, 50)) * 1000
            say(
                f"  client cost, {variant}: {slow} p50 {percentile(slow_times, 50) * 1000:.2f} ms,"
                f" {fast} {percentile(fast_times, 50) * 1000:.2f} ms: {slow} adds {extra:.2f} ms"
            )


async def bench_db(
    name: str, path: Path, queries: Sequence[str], args: argparse.Namespace, cells: list[Cell]
) -> None:
    settings = Settings(db_path=path, quiet=True)
    conn = sqlite3.connect(path)
    (passages,) = conn.execute("SELECT count(*) FROM passages").fetchone()
    (stories,) = conn.execute("SELECT count(*) FROM stories").fetchone()
    conn.close()
    say(f"\n== {name}: {passages:,} passages, {stories:,} stories")
    repeated = [queries[i % len(queries)] for i in range(args.requests)]
    fresh = FreshQueries(queries)
    # warm: the model, every query embedding, the vector index; the sequential library calls
    # then use this connection, as the server reuses its own
    library_db = open_db(path, migrate=False)
    for q in queries:
        for mode in args.modes:
            search(library_db, q, settings=settings, mode=mode, limit=N + 1)
    vector_index(library_db, settings.model_name).refresh(library_db.conn)
    ds = build_datasette(settings)
    await ds.invoke_startup()
    in_process = asgi_caller(ds.app())
    for q in queries:
        for mode in args.modes:
            await in_process(url_of(q, mode))
    server = None if args.skip_http else Server(path)
    http = blocking = None
    try:
        if server is not None:
            http = KeepAliveHTTP("127.0.0.1", server.port)
            blocking = BlockingHTTP("127.0.0.1", server.port)
            for q in queries:
                for mode in args.modes:
                    await http.get(url_of(q, mode))
                    blocking.get(url_of(q, mode))
            await client_costs(ds, server, http, blocking, queries, args.requests)
        gets = {"in-process": in_process, "http": http.get if http else None}
        for workload, about in WORKLOADS:
            say(f"  {workload}: {about}")
            for mode in args.modes:
                for label, clients in (
                    ("sequential", 1),
                    (f"{args.clients} clients", args.clients),
                ):
                    if workload == "repeated queries":
                        plans = dict.fromkeys(VARIANTS, repeated)
                    else:
                        plans = fresh.plans(args.requests)
                    say(f"    {mode}, {label} ({args.requests} requests each; ms)")
                    run_on(
                        [os.getpid()] + ([server.process.pid] if server is not None else []),
                        args.sequential_cpus if clients == 1 else args.all_cpus,
                    )
                    # interleave the variants in rounds, so that load from elsewhere on the
                    # machine falls on all of them alike
                    samples: dict[str, tuple[list[float], list[float]]] = {}
                    rounds = ROUNDS["sequential" if clients == 1 else "concurrent"]
                    chunk = math.ceil(args.requests / rounds)
                    for start in range(0, args.requests, chunk):
                        part = {v: plan[start : start + chunk] for v, plan in plans.items()}
                        if clients == 1:
                            sample = library_sequential(library_db, settings, part["library"], mode)
                        else:
                            sample = await asyncio.to_thread(
                                library_concurrent, path, settings, part["library"], mode, clients
                            )
                        add(samples, "library", sample)
                        for variant, get in gets.items():
                            if variant == "http" and clients == 1 and blocking is not None:
                                sample = served_blocking(blocking.get, part[variant], mode)
                                add(samples, variant, sample)
                            elif get is not None:
                                sample = await served(get, part[variant], mode, clients)
                                add(samples, variant, sample)
                    base = Figures(*samples["library"])
                    say(base.row("library", None))
                    for variant in VARIANTS[1:]:
                        if variant in samples:
                            figures = Figures(*samples[variant])
                            say(figures.row(variant, base))
                            cells.append((name, workload, mode, label, variant, figures, base))
    finally:
        library_db.close()
        if http is not None:
            await http.aclose()
        if blocking is not None:
            blocking.close()
        if server is not None:
            server.close()


async def run_all(kbs: Sequence[tuple[str, Path, list[str]]], args: argparse.Namespace) -> None:
    cells: list[Cell] = []
    for name, path, queries in kbs:
        await bench_db(name, path, queries, args, cells)
    summary(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--modes", default="hybrid,keyword")
    parser.add_argument("--skip-http", action="store_true", help="no uvicorn subprocess")
    parser.add_argument(
        "--cpu",
        default="0",
        help="the CPU sequential requests run on, the benchmark's and the server's"
        " (default 0; concurrent clients use every CPU); 'any': never pinned",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlopsmortem-bench-serve"))
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--kb", default="demo,synthetic", help="knowledge bases to measure")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.kb = [k.strip() for k in args.kb.split(",") if k.strip()]
    args.all_cpus = os.sched_getaffinity(0)
    args.sequential_cpus = args.all_cpus if args.cpu == "any" else {int(args.cpu)}
    say(
        f"CPUs: sequential requests on {sorted(args.sequential_cpus)}, concurrent clients on"
        f" {sorted(args.all_cpus)}"
    )
    # one torch thread, as in the `mlopsmortem serve` subprocess: library, in-process and http
    # then embed new queries alike
    embed_queries_single_threaded()
    load_model()
    embed_query("the first call to the model is slower than the others")
    times = []
    for i in range(20):
        started = time.perf_counter()
        embed_query(f"an uncached query number {i} about dns timeouts in kubernetes")
        times.append(time.perf_counter() - started)
    say(f"query embedding, uncached: p50 {percentile(times, 50) * 1000:.1f} ms (12 words)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    kbs = []
    if "demo" in args.kb:
        demo = cached(args.workdir / "demo.db", build_demo, fresh=args.fresh)
        kbs.append(("demo (make demo)", demo, demo_queries()))
    if "synthetic" in args.kb:
        synthetic = cached(
            args.workdir / f"synthetic-{args.passages}.db",
            lambda p: build_synthetic(p, args.passages),
            fresh=args.fresh,
        )
        kbs.append(("synthetic", synthetic, synthetic_queries()))
    asyncio.run(run_all(kbs, args))


if __name__ == "__main__":
    main()
