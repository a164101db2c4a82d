"""Tagging benchmark: prints figures, asserts nothing.

    .venv/bin/python -m bench.tagging [--write-calibration] [--fresh] [--sections ...]

demo      Builds the demo knowledge base (the offline demo crawl of data/demo/site, then passages
          and embeddings; cached in --workdir), analyses every story, fits the calibration
          (tagging.calibrate: in-sample and leave-one-story-out figures, global against
          per-impact thresholds), prints each semantic impact's ROC AUC against the gold (how
          well it separates before any threshold) and, with --write-calibration, writes
          data/tagging_calibration.json. Then runs tag_stories (rebuild) and scores the stored
          tags per method and overall against data/demo/gold_tags.tsv, lists the worst tags,
          and times a rebuild and an unchanged rerun. Component figures count only predictions
          inside the demo's component vocabulary (the gold says nothing about the other ~270
          components); the tags outside it are counted and the commonest listed.
coverage  Share of the real lists' involved/impact items (../shared/corpus/lists, parsed by the
          real ingest) that map to a canonical tag; the unmapped ones are listed.
articles  What the text taggers find in the real postmortems of ../shared/corpus/articles (no
          list tags there), printed beside INDEX.tsv's `what_happened`, for eyeballing; counts
          the articles tagged both outage and partial-outage (exclusive by definition).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import sqlite_utils

from bench.tagging_real import fmt, say, section_real
from mlopsmortem.db import open_db
from mlopsmortem.lists.ingest import ingest_sources, spec_from_argument
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import calibration_path, write_calibration
from mlopsmortem.tagging.fitting import (
    StoryAnalysis,
    analyse_stories,
    calibrate,
    score_sets,
)
from mlopsmortem.tagging.run import tag_stories
from mlopsmortem.tagging.taxonomy import load_taxonomy, map_list_item

ROOT = Path(__file__).resolve().parents[1]

DEMO = ROOT / "data" / "demo"
SHARED = ROOT.parent / "shared" / "corpus"


def fmt_dict(d: Mapping[str, float]) -> str:
    return (
        f"P {d['precision']:.3f}  R {d['recall']:.3f}  F1 {d['f1']:.3f}  "
        f"(tp {d['tp']}, fp {d['fp']}, fn {d['fn']})"
    )


# --------------------------------------------------------------------------- demo knowledge base


def build_demo_kb(settings: Settings, *, fresh: bool) -> sqlite_utils.Database:
    path = settings.db_path
    if fresh or not path.exists():
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        from mlopsmortem.pipeline import demo_session

        started = time.perf_counter()
        with demo_session(settings, site_port=0):
            pass
        db = open_db(path)
        sync_passages(db, settings=settings)
        embed_passages(db, settings, progress=False)
        say(f"built the demo knowledge base in {time.perf_counter() - started:.1f}s: {path}")
    db = open_db(path)
    sync_passages(db, settings=settings)
    embed_passages(db, settings, progress=False)
    return db


def read_gold(db: sqlite_utils.Database) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Gold components and impacts by story id. Stories are found by slug (the last path
    segment of their URL), since the demo site runs on a free port."""
    by_slug = {}
    for sid, url in db.execute("SELECT id, canonical_url FROM stories WHERE removed_at IS NULL"):
        by_slug[url.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]] = sid
    components: dict[str, set[str]] = {}
    impacts: dict[str, set[str]] = {}
    with (DEMO / "gold_tags.tsv").open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            sid = by_slug.get(row["slug"])
            if sid is None:
                say(f"  (no story for gold slug {row['slug']})")
                continue
            components[sid] = {c for c in row["components"].split(";") if c}
            impacts[sid] = {i for i in row["impacts"].split(";") if i}
    return components, impacts


def stored_tags(db: sqlite_utils.Database) -> dict[str, dict[tuple[str, str], set[str]]]:
    """story -> (kind, method) -> canonical tags; method 'all' from stories.components/impacts."""
    result: dict[str, dict[tuple[str, str], set[str]]] = {}
    for sid, kind, method, tag in db.execute(
        "SELECT story_id, kind, method, tag FROM tags WHERE free = 0"
    ):
        result.setdefault(sid, {}).setdefault((kind, method), set()).add(tag)
    for sid, components, impacts in db.execute("SELECT id, components, impacts FROM stories"):
        entry = result.setdefault(sid, {})
        entry[("component", "all")] = set(json.loads(components or "[]"))
        entry[("impact", "all")] = set(json.loads(impacts or "[]"))
    return result


def impact_auc(
    analyses: Mapping[str, StoryAnalysis], gold: Mapping[str, set[str]]
) -> dict[str, tuple[int, float]]:
    """Per semantic impact: positives and the ROC AUC of the stories' raw semantic scores
    against the gold impacts (ties count half). Says how well an impact separates before any
    threshold: an impact near 0.5-0.7 cannot be fixed by thresholds, only by better evidence."""
    scored = {sid: a.scores for sid, a in analyses.items() if a.scores is not None and sid in gold}
    if not scored:
        return {}
    impacts = next(iter(scored.values())).impacts
    result = {}
    for j, impact in enumerate(impacts):
        pos = [s.raw[j] for sid, s in scored.items() if impact in gold[sid]]
        neg = [s.raw[j] for sid, s in scored.items() if impact not in gold[sid]]
        if not pos or not neg:
            continue
        wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
        result[impact] = (len(pos), wins / (len(pos) * len(neg)))
    return result


def section_demo(args: argparse.Namespace) -> None:
    say("== demo corpus: calibration and gold-tag figures")
    settings = Settings(db_path=args.workdir / "demo.db", quiet=True)
    db = build_demo_kb(settings, fresh=args.fresh)
    taxonomy = load_taxonomy(settings.taxonomy_file)
    gold_c, gold_i = read_gold(db)
    vocabulary = set().union(*gold_c.values())
    positives = Counter(i for v in gold_i.values() for i in v)
    semantic_impacts = [i.id for i in taxonomy.impacts if positives[i.id]]
    say(
        f"{len(gold_i)} stories with gold tags; component vocabulary {len(vocabulary)}; "
        f"semantic impacts {len(semantic_impacts)} of {len(taxonomy.impacts)}"
    )

    started = time.perf_counter()
    analyses = analyse_stories(db, settings, semantic_impacts, gold_i)
    say(f"analysed {len(analyses)} stories in {time.perf_counter() - started:.1f}s")
    result = calibrate(
        taxonomy,
        analyses,
        gold_c,
        gold_i,
        model="all-MiniLM-L6-v2",
        component_vocabulary=vocabulary,
        corpus=f"data/demo ({len(gold_i)} fictional stories, gold_tags.tsv)",
    )
    report = result.report
    cal = result.calibration
    say("\n-- calibration")
    say("component_min_mentions (list | rule, demo vocabulary only):")
    for n, fig in report["components"]["by_min_mentions"].items():
        mark = "  <- chosen" if int(n) == cal.component_min_mentions else ""
        say(f"  N={n}: {fmt_dict(fig)}{mark}")
    say(f"  held-out (N chosen without the story): {fmt_dict(report['components']['held_out'])}")
    imp = report["impacts"]
    say(f"impacts, list and title only:        {fmt_dict(imp['list_and_title_only'])}")
    g = imp["global"]
    w = g["score"]
    say(
        f"score = {w['z']:.2f} z + {w['mentions']:.2f} log(1 + mentions) {w['intercept']:+.2f};"
        f" thresholds top={g['thresholds']['top']} other={g['thresholds']['other']}:"
        f"\n  in-sample  {fmt_dict(g['in_sample'])}\n  held-out   {fmt_dict(g['held_out'])}"
        f"\n  semantic additions in-sample {g['semantic_additions_in_sample']}, "
        f"held-out {g['semantic_additions_held_out']}"
    )
    zo = imp["z_only_alternative"]
    say(
        f"z alone, thresholds top={zo['thresholds']['top']} other={zo['thresholds']['other']}"
        f" (rejected):\n  in-sample  {fmt_dict(zo['in_sample'])}"
        f"\n  held-out   {fmt_dict(zo['held_out'])}"
    )
    pi = imp["per_impact_alternative"]
    say(
        f"per-impact thresholds (rejected):\n  in-sample  {fmt_dict(pi['in_sample'])}"
        f"\n  held-out   {fmt_dict(pi['held_out'])}"
    )
    say("per-impact separability (ROC AUC of the semantic score against gold, no threshold):")
    for impact, (n_pos, auc) in impact_auc(analyses, gold_i).items():
        say(f"  {impact:24} positives {n_pos:2}  AUC {auc:.3f}")
    if args.write_calibration:
        write_calibration(calibration_path(settings), cal)
        say(f"wrote {calibration_path(settings)}")
    else:
        say(f"(not written; the run below uses {calibration_path(settings)})")

    started = time.perf_counter()
    run = tag_stories(db, settings, rebuild=True)
    rebuild_s = time.perf_counter() - started
    started = time.perf_counter()
    again = tag_stories(db, settings)
    rerun_s = time.perf_counter() - started
    say(
        f"\n-- tag_stories: rebuild {run.tagged} stories, {run.tags} tags "
        f"({dict(run.by_method)}, {run.free} free) in {rebuild_s:.2f}s; unchanged rerun: "
        f"tagged {again.tagged}, unchanged {again.unchanged} in {rerun_s:.2f}s"
    )
    if run.warnings:
        say("   warnings:", *run.warnings)

    tags = stored_tags(db)
    say("\n-- stored tags against gold (in-sample; held-out figures are above)")
    for kind, gold, restrict in (
        ("component", gold_c, vocabulary),
        ("impact", gold_i, None),
    ):
        for method in ("list", "rule", "semantic", "all"):
            if kind == "component" and method == "semantic":
                continue
            predicted = {}
            for sid in gold:
                got = tags.get(sid, {}).get((kind, method), set())
                predicted[sid] = got & restrict if restrict is not None else got
            figures = score_sets(predicted, gold)
            # a method's recall is bounded by what it can see; its precision is the useful figure
            say(f"  {kind:9} {method:8} {fmt(figures)}")
    outside = Counter(
        t for sid in gold_c for t in tags.get(sid, {}).get(("component", "all"), set()) - vocabulary
    )
    say(
        f"  components outside the demo vocabulary: {sum(outside.values())} tags, e.g. "
        + ", ".join(f"{t} ({n})" for t, n in outside.most_common(12))
    )

    say("\n-- worst tags (overall)")
    for kind, gold, restrict in (("component", gold_c, vocabulary), ("impact", gold_i, None)):
        misses: Counter[str] = Counter()
        wrong: Counter[str] = Counter()
        for sid, wanted in gold.items():
            got = tags.get(sid, {}).get((kind, "all"), set())
            if restrict is not None:
                got &= restrict
            misses.update(wanted - got)
            wrong.update(got - wanted)
        say(f"  {kind} missed: " + ", ".join(f"{t} {n}" for t, n in misses.most_common(8)))
        say(f"  {kind} wrong:  " + ", ".join(f"{t} {n}" for t, n in wrong.most_common(8)))


# --------------------------------------------------------------------------- coverage


def section_coverage(args: argparse.Namespace) -> None:
    say("\n== coverage of real hand tags")
    lists = SHARED / "lists"
    if not lists.is_dir():
        say(f"  skipped: {lists} not found")
        return
    taxonomy = load_taxonomy(Settings().taxonomy_file)
    for name in ("k8s-failure-stories.md", "awful-mlops.md"):
        path = lists / name
        if not path.exists():
            continue
        work = args.workdir / f"coverage-{path.stem}.db"
        for leftover in work.parent.glob(work.name + "*"):
            leftover.unlink()
        settings = Settings(db_path=work, quiet=True)
        db = open_db(work)
        ingest_sources(db, [spec_from_argument(str(path))], settings)
        totals: Counter[str] = Counter()
        mapped: Counter[str] = Counter()
        unmapped: list[str] = []
        for involved, impact in db.execute("SELECT list_involved, list_impact FROM story_sources"):
            for line, value in (("involved", involved), ("impact", impact)):
                for item in json.loads(value or "[]"):
                    totals[line] += 1
                    if map_list_item(taxonomy, item):
                        mapped[line] += 1
                    else:
                        unmapped.append(f"{line}: {item}")
        all_items = sum(totals.values())
        share = sum(mapped.values()) / all_items if all_items else 0.0
        say(
            f"  {name}: {sum(mapped.values())}/{all_items} items map ({share:.1%}); "
            + ", ".join(f"{k} {mapped[k]}/{totals[k]}" for k in totals)
        )
        if unmapped:
            say("    unmapped: " + "; ".join(unmapped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="demo,coverage,real")
    parser.add_argument("--folds", type=int, default=5, help="real: cross-validation folds")
    parser.add_argument(
        "--shipped-only", action="store_true", help="real: score the shipped calibration only"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlopsmortem-bench-tagging"))
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo knowledge base")
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="write the fitted calibration to data/tagging_calibration.json",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sections = {s.strip() for s in args.sections.split(",")}
    if "demo" in sections:
        section_demo(args)
    if "coverage" in sections:
        section_coverage(args)
    if "real" in sections:
        section_real(args)


if __name__ == "__main__":
    sys.exit(main())
