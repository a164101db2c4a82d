"""The tagging benchmark's real-corpus section (`python -m bench.tagging --sections real`):
the four real lists ingested without a crawl, the 37 real articles as documents, tagged and
scored against the real labels, in-sample and held out across folds."""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from mlopsmortem.db import open_db, utcnow
from mlopsmortem.lists.ingest import ingest_sources, spec_from_argument
from mlopsmortem.passages.embed import embed_passages
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.fitting import (
    Figures,
    analyse_stories,
)
from mlopsmortem.tagging.run import tag_stories
from mlopsmortem.tagging.taxonomy import load_taxonomy, map_list_item
from mlopsmortem.urls import canonicalize, story_id

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"
ARTICLE_GOLD = ROOT / "bench" / "shared_gold_tags.tsv"
DEV_GOLD = ROOT.parent / "shared" / "dev" / "gold_tags.tsv"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def fmt(f: Figures) -> str:
    return (
        f"P {f.precision:.3f}  R {f.recall:.3f}  F1 {f.f1:.3f}  (tp {f.tp}, fp {f.fp}, fn {f.fn})"
    )


# --------------------------------------------------------------------------- real corpus


def build_real_kb(settings: Settings) -> tuple[sqlite_utils.Database, dict[str, str]]:
    """A fresh knowledge base of the four real lists (the real ingest, no crawl: a danluu entry's
    text is its list summary) and the 37 articles' text as documents, with passages and
    embeddings. Returns it and file -> story id for the articles (an article that is also a
    list entry, the Zalando postmortems, is that entry's story)."""
    for leftover in settings.db_path.parent.glob(settings.db_path.name + "*"):
        leftover.unlink()
    db = open_db(settings.db_path)
    lists = sorted((SHARED / "lists").glob("*.md"))
    ingest_sources(db, [spec_from_argument(str(p)) for p in lists], settings)
    by_list_url = dict(db.execute("SELECT list_url, story_id FROM story_sources").fetchall())
    articles = SHARED / "articles"
    now = utcnow()
    files: dict[str, str] = {}
    with db.conn:
        for row in csv.DictReader((articles / "INDEX.tsv").open(newline=""), delimiter="\t"):
            url = canonicalize(row["url"])
            sid = by_list_url.get(row["url"]) or story_id(url)
            if not db.execute("SELECT 1 FROM stories WHERE id = ?", [sid]).fetchone():
                db["stories"].insert(
                    {"id": sid, "url": row["url"], "canonical_url": url, "title": row["title"],
                     "first_seen": now, "last_seen": now}
                )  # fmt: skip
            text = (articles / row["file"]).read_text(encoding="utf-8")
            db["documents"].insert(
                {"story_id": sid, "title": row["title"], "text": text, "word_count": 0}
            )
            files[row["file"]] = sid
    sync_passages(db, settings=settings)
    embed_passages(db, settings, progress=False)
    return db, files


def real_labels(
    db: sqlite_utils.Database, files: Mapping[str, str]
) -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    """source -> story id -> (components, impacts): the dev set's danluu/awful labels (stories
    by the URL the list writes), bench/shared_gold_tags.tsv (articles), and the k8s list's own
    involved:/impact: items mapped to canonical tags."""
    by_list_url = dict(db.execute("SELECT list_url, story_id FROM story_sources").fetchall())
    labels: dict[str, dict[str, tuple[set[str], set[str]]]] = {"dev": {}, "articles": {}, "k8s": {}}
    with DEV_GOLD.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            sid = by_list_url.get(row["url"])
            if sid is None:
                say(f"  (no story for dev label {row['url']})")
                continue
            labels["dev"][sid] = (
                {c for c in row["components"].split(";") if c},
                {i for i in row["impacts"].split(";") if i},
            )
    for name, (components, impacts) in read_article_gold().items():
        if name in files:
            labels["articles"][files[name]] = (components, impacts)
    taxonomy = load_taxonomy(Settings().taxonomy_file)
    for sid, involved, impact in db.execute(
        "SELECT ss.story_id, ss.list_involved, ss.list_impact FROM story_sources ss"
        " JOIN sources s ON s.id = ss.source_id WHERE s.location LIKE '%k8s-failure-stories%'"
    ):
        found: tuple[set[str], set[str]] = (set(), set())
        for item in (*json.loads(involved or "[]"), *json.loads(impact or "[]")):
            for match in map_list_item(taxonomy, item):
                found[match.kind == "impact"].add(match.tag)
        labels["k8s"][sid] = found
    return labels


def print_scores(title: str, tags: Mapping[str, Any], labels: Mapping[str, Any]) -> None:
    from mlopsmortem.tagging.crossval import METHODS, score_tags

    say(f"\n-- {title}")
    for source, gold in labels.items():
        # the k8s labels are the list's own items: the list method reproduces them, so only
        # the text methods are scored against them
        skip = ("list",) if source == "k8s" else ()
        for index, kind in enumerate(("component", "impact")):
            wanted = {sid: tags_[index] for sid, tags_ in gold.items()}
            for method in METHODS:
                if method == "list" and skip or kind == "component" and method == "semantic":
                    continue
                figures = score_tags(tags, wanted, kind, method, exclude_methods=skip)
                say(f"  {source:8} {kind:9} {method:8} {fmt(figures)}")


def section_real(args: argparse.Namespace) -> None:
    """Tagging on the real corpus, scored against the three real label sources: the shipped
    calibration first, then calibrations fitted on the real labels, k-fold by story."""
    say("\n== real corpus: lists (no crawl) + 37 articles, against real labels")
    if not (SHARED / "lists").is_dir() or not DEV_GOLD.exists():
        say(f"  skipped: {SHARED} or {DEV_GOLD} not found")
        return
    settings = Settings(db_path=args.workdir / "real.db", quiet=True)
    started = time.perf_counter()
    db, files = build_real_kb(settings)
    labels = real_labels(db, files)
    with_text = [
        sid
        for (sid,) in db.execute(
            "SELECT id FROM stories WHERE removed_at IS NULL AND (COALESCE(summary, '') != ''"
            " OR id IN (SELECT story_id FROM documents WHERE COALESCE(text, '') != ''))"
        )
    ]
    say(
        f"  built in {time.perf_counter() - started:.1f}s; labelled stories: "
        + ", ".join(f"{k} {len(v)}" for k, v in labels.items())
        + f"; stories with text {len(with_text)}"
    )
    report = tag_stories(db, settings, rebuild=True)
    shipped = {sid: StoredTags(sid, db) for sid in {s for v in labels.values() for s in v}}
    print_scores(
        "shipped calibration (data/tagging_calibration.json), in the database", shipped, labels
    )
    all_stories = {sid: StoredTags(sid, db) for sid in with_text}
    have = sum(bool(t.impacts) for t in all_stories.values())
    say(f"  stories with text carrying an impact: {have}/{len(with_text)}")
    say(f"  ({report.tagged} stories tagged, {dict(report.by_method)})")
    if args.shipped_only:
        return
    from mlopsmortem.tagging.crossval import cross_validate, impact_coverage

    taxonomy = load_taxonomy(settings.taxonomy_file)
    fit = {**labels["dev"], **labels["articles"]}
    positives = Counter(i for _, impacts in fit.values() for i in impacts)
    semantic = [i.id for i in taxonomy.impacts if positives[i.id]]
    analyses = analyse_stories(db, settings, semantic, fit)
    started = time.perf_counter()
    cv = cross_validate(
        db, settings, taxonomy, analyses,
        {sid: c for sid, (c, _) in fit.items()}, {sid: i for sid, (_, i) in fit.items()},
        folds=args.folds, corpus=f"real: dev labels + article labels ({len(fit)} stories)",
        tag_ids=[*labels["k8s"], *with_text],
    )  # fmt: skip
    say(f"\n  {args.folds}-fold cross-validation in {time.perf_counter() - started:.1f}s")
    held = {**cv.full, **cv.held_out}  # k8s stories: never fitted on, the full fit holds them out
    print_scores(f"HELD OUT ({args.folds}-fold by story; k8s: never fitted on)", held, labels)
    n, total = impact_coverage(held, with_text)
    say(f"  stories with text carrying an impact (held out where labelled): {n}/{total}")
    print_scores("in-sample (calibration fitted on all real labels; not a result)", cv.full, labels)
    path = args.workdir / "real-heldout-dev.tsv"
    write_predictions(path, db, held, labels["dev"])
    say(f"  held-out dev predictions: {path} (score: python3 ../shared/dev/score.py tags {path})")
    args.real_calibration = cv.calibration


class StoredTags:
    """A story's stored tags, shaped like StoryTags for the scorer."""

    def __init__(self, sid: str, db: sqlite_utils.Database) -> None:
        from mlopsmortem.tagging.store import facet_values
        from mlopsmortem.tagging.tags import Tag

        rows = db.execute(
            "SELECT kind, tag, method, confidence, free FROM tags WHERE story_id = ?", [sid]
        ).fetchall()
        self.tags = tuple(Tag(k, t, m, c, "", free=bool(f)) for k, t, m, c, f in rows)
        self.mentions: frozenset[str] = frozenset()
        self.semantic = "done"
        self.impacts = set(facet_values(self.tags, "impact"))


def write_predictions(
    path: Path, db: sqlite_utils.Database, tags: Mapping[str, Any], gold: Mapping[str, Any]
) -> None:
    """url<TAB>components<TAB>impacts for the dev scorer, URLs as the list writes them."""
    from mlopsmortem.tagging.crossval import method_tags

    urls = dict(db.execute("SELECT story_id, list_url FROM story_sources").fetchall())
    with path.open("w", encoding="utf-8") as out:
        for sid in gold:
            if sid in tags:
                c = ";".join(sorted(method_tags(tags[sid], "component", "all")))
                i = ";".join(sorted(method_tags(tags[sid], "impact", "all")))
                out.write(f"{urls[sid]}\t{c}\t{i}\n")


def read_article_gold() -> dict[str, tuple[set[str], set[str]]]:
    """file -> (components, impacts) of bench/shared_gold_tags.tsv; components marked `?` are
    outside the taxonomy (no tagger can find them) and are left out."""
    gold = {}
    with ARTICLE_GOLD.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            components = {c for c in row["components"].split(";") if c and not c.startswith("?")}
            gold[row["file"]] = (components, {i for i in row["impacts"].split(";") if i})
    return gold
