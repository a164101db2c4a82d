"""Incident cards on the 37 real postmortems against hand labels. Prints figures.

    .venv/bin/python -m bench.incidents [--workdir DIR] [--fresh] [--show]

Uses bench.real's knowledge base (the real lists and the 37 articles of ../shared/corpus served
with site chrome and crawled) and derives every card again. The labels, bench/incident_labels.tsv,
were written by hand from the articles before any extractor existed: triggers (the fixed
vocabulary), detection (or `unstated`), the duration in minutes when the text states or times
it, and 3-6 topic terms a correct summary would contain. Prints:

* triggers: micro precision, recall and F1;
* detection: accuracy over the stories whose text states it, and how many of those whose text
  does not were left unknown (an unknown is right there; a guess is wrong);
* duration: the share of stories that state one whose card is within 10 % (or 5 minutes);
* summary: the share whose summary contains at least one of the story's topic terms, and a
  reviewer's judgement of each summary (bench/incident_summary_judgements.tsv);
* each figure for the first 18 articles (whose wording the cues were checked against while
  they were written) and for the other 19 apart, then the coverage of every card field.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from bench.real import CORPUS, SHARED, build_kb, say
from mlopsmortem.db import open_db
from mlopsmortem.incidents.extract import EXTRACTOR_VERSION
from mlopsmortem.incidents.run import build_cards
from mlopsmortem.incidents.store import read_cards
from mlopsmortem.incidents.types import IncidentCard

LABELS = Path(__file__).with_name("incident_labels.tsv")
# A reviewer's on-topic judgement of each real card summary, made on extractor version 5's.
JUDGEMENTS = Path(__file__).with_name("incident_summary_judgements.tsv")
JUDGED_VERSION = "5"
CHECKED_WHILE_WRITING = 18  # the first 18 labels, in file order


def read_labels() -> list[dict[str, str]]:
    with open(LABELS, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def article_urls() -> dict[str, str]:
    """file name -> the article's URL as the lists and the dev set write it."""
    with open(CORPUS / "articles" / "INDEX.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["url"] for row in csv.DictReader(handle, delimiter="\t")}


def duration_ok(found: float | None, gold: float) -> bool:
    return found is not None and abs(found - gold) <= max(5.0, 0.1 * gold)


def score(pairs: list[tuple[dict[str, str], IncidentCard | None]]) -> dict[str, float | str]:
    """The figures of one group of (label, card) pairs."""
    tp = fp = fn = 0
    detection_right = detection_stated = unknown_right = unknown_total = 0
    duration_right = duration_stated = topic_right = 0
    for label, card in pairs:
        card = card or IncidentCard(story_id="")
        gold, found = set(label["triggers"].split()), set(card.triggers)
        tp, fp, fn = tp + len(gold & found), fp + len(found - gold), fn + len(gold - found)
        if label["detection"] == "unstated":
            unknown_total += 1
            unknown_right += card.detection is None
        else:
            detection_stated += 1
            detection_right += card.detection == label["detection"]
        if label["duration_minutes"]:
            duration_stated += 1
            duration_right += duration_ok(card.duration_minutes, float(label["duration_minutes"]))
        terms = [t.strip().lower() for t in label["topic_terms"].split("|") if t.strip()]
        topic_right += any(term in (card.summary or "").lower() for term in terms)
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    return {
        "stories": len(pairs),
        "triggers P": precision,
        "triggers R": recall,
        "triggers F1": 2 * precision * recall / max(1e-9, precision + recall),
        "detection acc": detection_right / max(1, detection_stated),
        "detection n": f"{detection_right}/{detection_stated}",
        "unknown kept": f"{unknown_right}/{unknown_total}",
        "duration ok": duration_right / max(1, duration_stated),
        "duration n": f"{duration_right}/{duration_stated}",
        "summary on topic": topic_right / max(1, len(pairs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlopsmortem-bench-real"))
    parser.add_argument("--fresh", action="store_true", help="crawl the corpus again")
    parser.add_argument("--show", action="store_true", help="print each story's card and label")
    args = parser.parse_args()
    if not (CORPUS / "articles" / "INDEX.tsv").is_file():
        say(f"skipped: the real corpus is not at {SHARED}")
        return
    settings, ids = build_kb(args.workdir, fresh=args.fresh)
    db = open_db(settings.db_path)
    report = build_cards(db, rebuild=True)
    say(f"cards derived: {report.built} of {report.stories} stories in {report.seconds:.1f} s")
    urls = article_urls()
    labels = read_labels()
    story_ids = [ids[urls[label["file"]]] for label in labels]
    cards = read_cards(db.conn, story_ids)
    pairs = [(label, cards.get(sid)) for label, sid in zip(labels, story_ids, strict=True)]
    if args.show:
        for label, card in pairs:
            card = card or IncidentCard(story_id="")
            say(
                f"{label['file'][:44]:<44} triggers {' '.join(card.triggers) or '-'} "
                f"[{label['triggers']}] | detection {card.detection} [{label['detection']}] | "
                f"minutes {card.duration_minutes} [{label['duration_minutes'] or '-'}]"
            )
    groups = {
        "all 37": pairs,
        f"first {CHECKED_WHILE_WRITING}": pairs[:CHECKED_WHILE_WRITING],
        f"other {len(pairs) - CHECKED_WHILE_WRITING}": pairs[CHECKED_WHILE_WRITING:],
    }
    figures = {name: score(group) for name, group in groups.items()}
    columns = list(next(iter(figures.values())))
    say("\nincident cards against bench/incident_labels.tsv (hand labels of the 37 articles)")
    say(f"{'':<16}" + "".join(f"{name:>12}" for name in groups))
    for column in columns:
        cells = "".join(
            f"{v:>12.2f}" if isinstance(v := figures[name][column], float) else f"{v!s:>12}"
            for name in groups
        )
        say(f"{column:<16}{cells}")
    with open(JUDGEMENTS, encoding="utf-8") as handle:
        judged = [row["on_topic"] for row in csv.DictReader(handle, delimiter="\t")]
    say(
        f"summary judged on topic by a reviewer who read each article: "
        f"{judged.count('yes')}/{len(judged)} (summaries of extractor {JUDGED_VERSION}; "
        f"now {EXTRACTOR_VERSION})"
    )
    say("\nfields found, of the 37 articles' cards")
    every = [card or IncidentCard(story_id="") for _, card in pairs]
    for field in (
        "summary",
        "triggers",
        "detection",
        "duration_minutes",
        "started_at",
        "root_cause",
        "resolution",
        "action_items",
        "timeline",
    ):
        found = sum(1 for card in every if getattr(card, field) not in (None, (), ""))
        say(f"  {field:<18}{found:>4}")


if __name__ == "__main__":
    main()
