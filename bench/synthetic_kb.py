"""A synthetic knowledge base of any size, for bench/search.py and bench/serve.py.

Stories of 8 passages each: texts of 40-120 words drawn Zipf-distributed from a 3,000-word
vocabulary (the test knowledge base's words, padded with random ones), random unit vectors
for the all-MiniLM-L6-v2 embeddings, and for the filters two components, one impact, a year,
a publisher, one of two source lists and a link status per story.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from pathlib import Path

import numpy as np

from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import encode_vector

VOCABULARY_SIZE = 3000
PASSAGES_PER_STORY = 8
DIMENSION = 384
MODEL = "all-MiniLM-L6-v2"
COMPONENTS = ["dns", "logging", "kubernetes", "gpu", "tls", "database", "kafka", "airflow"]
IMPACTS = ["outage", "data-loss", "latency", "bad-predictions"]
STATUSES = ["live"] * 8 + ["dead", "archived", "redirected"]


def vocabulary(size: int = VOCABULARY_SIZE) -> list[str]:
    """The words of the synthetic texts, commonest first (the order their Zipf weights follow)."""
    from tests.support.knowledge_base import STORIES

    words = sorted({w for s in STORIES for w in re.findall(r"[a-z]{3,}", s.text.lower())})
    rng = random.Random(7)
    while len(words) < size:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)))
    rng.shuffle(words)
    return words


def queries(count: int, rng: random.Random) -> list[str]:
    """One of the 50 commonest words and 1-3 rarer ones each."""
    words = vocabulary()
    common, rare = words[:50], words[500:]
    return [
        " ".join(rng.sample(common, 1) + rng.sample(rare, rng.randint(1, 3))) for _ in range(count)
    ]


def grow(conn: sqlite3.Connection, start: int, stop: int, rng: random.Random) -> None:
    """Add passages start..stop-1 (ids start+1..stop), their stories, FTS rows and vectors, so a
    benchmark can measure one size and grow the same database to the next."""
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO sources (id, name, location) VALUES (1, 'list-a', 'a.md'),"
            " (2, 'list-b', 'b.md')"
        )
        conn.execute(
            "INSERT OR IGNORE INTO embedding_models (name, dimension) VALUES (?, ?)",
            [MODEL, DIMENSION],
        )
        first_story = -(-start // PASSAGES_PER_STORY)  # the story of passage `start`, if new
        for sid in range(first_story, -(-stop // PASSAGES_PER_STORY)):
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
        for first in range(start, stop, batch):
            ids = range(first, min(stop, first + batch))
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(40, 120))) for _ in ids]
            vectors = np.random.default_rng(first).standard_normal((len(ids), DIMENSION))
            vectors = vectors.astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = list(zip(ids, texts, vectors, strict=True))
            conn.executemany(
                "INSERT INTO passages (id, story_id, seq, kind, text, text_hash)"
                " VALUES (?, ?, ?, 'text', ?, ?)",
                [
                    (i + 1, f"s{i // PASSAGES_PER_STORY}", i % PASSAGES_PER_STORY, t, f"h{i}")
                    for i, t, _ in rows
                ],
            )
            conn.executemany(
                "INSERT INTO passages_fts (rowid, text, title) VALUES (?, ?, '')",
                [(i + 1, t) for i, t, _ in rows],
            )
            conn.executemany(
                "INSERT INTO embeddings (rowid, passage_id, model, text_hash, vector)"
                f" VALUES (?, ?, '{MODEL}', ?, ?)",
                [(i + 1, i + 1, f"h{i}", encode_vector(v)) for i, _, v in rows],
            )


def build(path: Path, passages: int) -> None:
    """A new synthetic knowledge base of `passages` passages at `path`."""
    db = open_db(path)
    grow(db.conn, 0, passages, random.Random(11))
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
