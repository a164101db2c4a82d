"""Wall time of `mlopsmortem search` as a process, with the ONNX query encoder and with torch.

Crawls the demo corpus into a temporary database (or uses --db), then runs
`python -m mlopsmortem search QUERY --db DB --mode MODE` N times per (mode, encoder), each run a
new process with a different demo query, and prints the median and the spread. The torch path
(MLOPSMORTEM_QUERY_ENCODER=torch: sentence-transformers, as before the ONNX encoder) is the
baseline, measured in the same run. Also the in-process query embedding p50 of both encoders.

    python -m bench.cli [--db demo.db] [--runs 10] [--serving-python PATH]

`--serving-python` adds onnx rows timed with another interpreter: a fresh `pip install
mlopsmortem` without torch (`python -m bench.install --keep DIR` builds one), against the torch
rows of the same run. `--python` with `--encoders onnx` times only another interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlopsmortem.passages.encoder import query_encoder
from mlopsmortem.pipeline import demo_session
from mlopsmortem.settings import DEFAULT_MODEL, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def demo_queries() -> list[str]:
    """The demo corpus's graded queries, in file order."""
    lines = (REPO_ROOT / "data" / "demo" / "queries.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[1:] if line.strip()]


def build_demo(path: Path) -> None:
    """The demo corpus crawled end to end into path (passages embedded, encoder exported)."""
    with demo_session(Settings(db_path=path, quiet=True), site_port=0):
        pass


def cli_seconds(db: Path, query: str, mode: str, encoder: str, python: str) -> float:
    """Wall time of one `mlopsmortem search` process run by the interpreter `python`."""
    env = {**os.environ, "MLOPSMORTEM_QUERY_ENCODER": encoder}
    started = time.perf_counter()
    subprocess.run(
        [python, "-m", "mlopsmortem", "search", query, "--db", str(db), "--mode", mode],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def embed_p50(db: Path, encoder: str, queries: list[str]) -> float:
    """Median seconds to embed one new query in-process, the encoder already loaded."""
    model = query_encoder(str(db), DEFAULT_MODEL, encoder)
    model.embed("warm up")
    times = []
    for query in queries:
        started = time.perf_counter()
        model.embed(query)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a built knowledge base (default: crawl the demo)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time")
    parser.add_argument("--encoders", default="torch,onnx", help="torch (baseline), onnx")
    parser.add_argument(
        "--serving-python",
        help="also time the onnx rows with this interpreter (a fresh `pip install mlopsmortem`)",
    )
    args = parser.parse_args()
    encoders = [e for e in args.encoders.split(",") if e]
    runners = [(encoder, encoder, args.python) for encoder in encoders]
    if args.serving_python:
        runners.append(("serving", "onnx", args.serving_python))
    queries = demo_queries()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            db = Path(tmp) / "demo.db"
            build_demo(db)
        print(f"mlopsmortem search as a process, {args.runs} runs each, on {db.name}")
        print(f"{'mode':<10}{'encoder':<9}{'median s':>10}{'min s':>8}{'max s':>8}{'speed-up':>10}")
        for mode in ("hybrid", "semantic"):
            medians = {}
            for label, encoder, python in runners:
                times = [
                    cli_seconds(db, queries[i % len(queries)], mode, encoder, python)
                    for i in range(args.runs)
                ]
                medians[label] = statistics.median(times)
                ratio = medians.get("torch", medians[label]) / medians[label]
                print(
                    f"{mode:<10}{label:<9}{medians[label]:>10.2f}{min(times):>8.2f}"
                    f"{max(times):>8.2f}{ratio:>9.1f}x"
                )
        for encoder in encoders:
            p50 = embed_p50(db, encoder, queries)
            print(f"query embedding p50, {encoder}: {p50 * 1000:.1f} ms (55 demo queries)")


if __name__ == "__main__":
    main()
