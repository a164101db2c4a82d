"""Real-corpus benchmark: search, tagging and page chrome on real postmortems. Prints figures.

    .venv/bin/python -m bench.real [--fresh] [--workdir DIR] [--modes hybrid,keyword,semantic]

Builds a knowledge base from ../shared/corpus the way a user's crawl would (bench/real_site.py):
the four real lists ingested, the 37 articles served as web pages with site chrome on 127.0.0.1
and crawled, list entries whose pages cannot be fetched here kept as cards (their list text).
Then, with the hand-written development set of ../shared/dev:

* search: nDCG@10, recall@10 and MRR per mode, over all queries and per kind (exact, symptom);
* tags: precision, recall and F1 per kind (component, impact) and per method (list, rule,
  semantic; "stored" is the story's facet arrays) against three real label sources: the dev
  labels of danluu and awful-mlops entries, bench/shared_gold_tags.tsv for the 37 articles, and
  the k8s list's own involved:/impact: lines (scored on the text methods only, since the list
  method reads those lines); and the share of stories with text that carry an impact;
* chrome: the share of text passages holding a chrome sentinel word.

Skips, saying so, when ../shared is absent. The knowledge base is cached in --workdir.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import sqlite_utils

from bench.extract_layouts import SENTINELS
from bench.real_scoring import search_figures, tag_figures
from bench.real_site import read_articles, render_site, write_lists
from bench.tagging_real import real_labels
from mlopsmortem.db import open_db
from mlopsmortem.demo import serve_site
from mlopsmortem.pipeline import run_crawl
from mlopsmortem.search import MODES, search
from mlopsmortem.settings import Settings
from mlopsmortem.urls import canonical, story_id

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
DEV = SHARED / "dev"
KINDS = ("component", "impact")


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------- building


def build_kb(workdir: Path, *, fresh: bool) -> tuple[Settings, dict[str, str]]:
    """The crawled knowledge base and {dev URL: stored story id} for every corpus URL."""
    db_path = workdir / "real.db"
    ids_path = workdir / "story_ids.json"
    settings = Settings(db_path=db_path, quiet=True)
    if not fresh and db_path.exists() and ids_path.exists():
        return settings, json.loads(ids_path.read_text())
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "site").mkdir(parents=True)
    articles = read_articles(CORPUS)
    paths = render_site(articles, workdir / "site")
    with serve_site(workdir / "site", 0) as site:
        local = {url: site.base_url + path for url, path in paths.items()}
        specs = write_lists(CORPUS, articles, local, workdir / "lists")
        crawl_settings = settings.with_(
            allow_hosts=frozenset({"127.0.0.1"}),
            wayback_api=site.wayback_api,
            delay=0.0,
            max_tries=1,
            connect_timeout=3.0,
        )
        run_crawl(crawl_settings, [], specs=specs)
    ids = {url: story_id(canonical(local.get(url, url)).url) for url in corpus_urls(local)}
    ids_path.write_text(json.dumps(ids, indent=1, sort_keys=True))
    return settings, ids


def corpus_urls(local: dict[str, str]) -> set[str]:
    """Every URL the dev set or the labels may name: articles and the lists' links."""
    urls = set(local)
    for path in (DEV / "queries.tsv", DEV / "gold_tags.tsv"):
        with open(path, encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                for column in ("url", "relevant_2", "relevant_1"):
                    urls.update((row.get(column) or "").split())
    return urls


# --------------------------------------------------------------------------- search


def read_queries(ids: dict[str, str]) -> list[tuple[str, str, str, dict[str, int]]]:
    """(qid, kind, query, {story id: grade}) per dev query."""
    queries = []
    with open(DEV / "queries.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            grades: dict[str, int] = {}
            for grade, column in ((1, "relevant_1"), (2, "relevant_2")):
                for url in row[column].split():
                    sid = ids[url]
                    grades[sid] = max(grade, grades.get(sid, 0))
            queries.append((row["qid"], row["kind"], row["query"], grades))
    return queries


def section_search(db: sqlite_utils.Database, settings: Settings, ids, modes) -> None:
    queries = read_queries(ids)
    say(f"\nsearch: {len(queries)} dev queries; nDCG@10 / recall@10 / MRR")
    say(f"{'mode':9s} {'all':>21s} {'exact':>21s} {'symptom':>21s}")
    for mode in modes:
        runs = {
            qid: [h.id for h in search(db, query, settings=settings, mode=mode, limit=10)]
            for qid, _, query, _ in queries
        }
        cells = []
        for kind in (None, "exact", "symptom"):
            grades = {qid: g for qid, k, _, g in queries if kind in (None, k)}
            f = search_figures(runs, grades)
            cells.append(f"{f.ndcg:.3f} / {f.recall:.3f} / {f.mrr:.3f}")
        say(f"{mode:9s} " + " ".join(f"{c:>21s}" for c in cells))


# --------------------------------------------------------------------------- tags


# the names bench.tagging's real section gives the label sources, as this report prints them
LABEL_NAMES = {"dev": "dev (danluu, awful)", "articles": "37 articles", "k8s": "k8s list lines"}


def label_sources(db: sqlite_utils.Database, ids: dict[str, str]) -> dict[str, dict]:
    """{source: {kind: {story id: gold tags}}} for the three real label sources, read as
    bench.tagging reads them (`real_labels`), with the articles' stories of this crawl."""
    with open(CORPUS / "articles" / "INDEX.tsv", encoding="utf-8") as handle:
        files = {r["file"]: ids[r["url"]] for r in csv.DictReader(handle, delimiter="\t")}
    return {
        LABEL_NAMES[source]: {
            kind: {sid: tags[i] for sid, tags in gold.items()} for i, kind in enumerate(KINDS)
        }
        for source, gold in real_labels(db, files).items()
    }


def predictions(db: sqlite_utils.Database) -> dict[str, dict[str, dict[str, set[str]]]]:
    """{method: {kind: {story id: tags}}}, with "stored" the facet arrays and "text" the rule
    and semantic methods together."""
    out: dict[str, dict[str, dict[str, set[str]]]] = defaultdict(
        lambda: {k: defaultdict(set) for k in KINDS}
    )
    for sid, kind, tag, method in db.execute(
        "SELECT story_id, kind, tag, method FROM tags WHERE free = 0"
    ):
        out[method][kind][sid].add(tag)
        if method != "list":
            out["text"][kind][sid].add(tag)
    for sid, components, impacts in db.execute("SELECT id, components, impacts FROM stories"):
        out["stored"]["component"][sid] = set(json.loads(components or "[]"))
        out["stored"]["impact"][sid] = set(json.loads(impacts or "[]"))
    return out


def section_tags(db: sqlite_utils.Database, ids: dict[str, str]) -> None:
    sources = label_sources(db, ids)
    predicted = predictions(db)
    say("\ntags: micro precision / recall / F1 (stories labelled)")
    for source, gold in sources.items():
        methods = ("rule", "semantic", "text") if source.startswith("k8s") else (
            "list", "rule", "semantic", "stored")  # fmt: skip
        for kind in KINDS:
            cells = []
            for method in methods:
                f = tag_figures(gold[kind], predicted[method][kind])
                cells.append(f"{method} {f.precision:.2f}/{f.recall:.2f}/{f.f1:.2f}")
            say(f"  {source:20s} {kind:9s} n={len(gold[kind]):3d}  " + "  ".join(cells))
    with_text = [
        r[0] for r in db.execute("SELECT DISTINCT story_id FROM passages WHERE kind = 'text'")
    ]
    tagged = sum(1 for sid in with_text if predicted["stored"]["impact"].get(sid))
    say(f"  stories with text carrying an impact: {tagged} of {len(with_text)}"
        f" ({tagged / max(1, len(with_text)):.0%})")  # fmt: skip


# --------------------------------------------------------------------------- chrome


def section_chrome(db: sqlite_utils.Database) -> None:
    rows = db.execute("SELECT text FROM passages WHERE kind = 'text'").fetchall()
    chrome = sum(1 for (text,) in rows if any(w in text.lower() for w in SENTINELS))
    say(f"\nchrome: {chrome} of {len(rows)} text passages hold page chrome"
        f" ({chrome / max(1, len(rows)):.1%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlopsmortem-bench-real"))
    parser.add_argument("--fresh", action="store_true", help="crawl the corpus again")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    if not (CORPUS / "articles" / "INDEX.tsv").is_file() or not (DEV / "queries.tsv").is_file():
        say(f"skipped: the real corpus and dev set are not at {SHARED}")
        return
    settings, ids = build_kb(args.workdir, fresh=args.fresh)
    db = open_db(settings.db_path)
    counts = {
        t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("stories", "documents", "passages")
    }
    say(f"knowledge base {settings.db_path}: {counts}")
    section_search(db, settings, ids, [m for m in args.modes.split(",") if m])
    section_tags(db, ids)
    section_chrome(db)


if __name__ == "__main__":
    main()
