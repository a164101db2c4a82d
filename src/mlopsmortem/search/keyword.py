"""The keyword stage of search: FTS5 bm25 over passages, grouped into stories.

Each user word is a quoted FTS5 phrase (no input is ever FTS syntax), the phrases joined by OR;
bm25 weights the title column `tuning.title_weight`; a story scores its best passage. With
`tuning.coverage_first`, stories matching more of the words (in any of their passages) come
first, bm25 within a tier. Phrases found nowhere are ignored, so a typo never empties a result.

Common terms, after Lucene's CommonTermsQuery: a word found in most passages would make FTS5
score most of the table. So each phrase's document frequency is counted first, reading at most
`cap` = max(common_min_rows, common_fraction * passages) rowids; a phrase found in >= cap
passages is common, one found in fewer (but some) informative. When a query has both:

* candidates are the passages matching an informative phrase, scored by one FTS5 query on the
  informative phrases plus one `common AND (informative)` query per common phrase. bm25 is a sum
  of per-phrase terms with a table-wide idf, so adding the difference gives each candidate
  exactly the full OR query's bm25;
* coverage stays per story and exact: informative doclists are read whole (they are small); a
  common phrase counts for a story when one of its candidate passages contains it, else through
  a LIMIT 1 probe per run of the story's passage ids;
* the trade-off: a story matching only common words is no longer a candidate, and a story is
  ranked by its best passage among those matching an informative word.

The full OR query runs when there is no informative or no common phrase, a single word, or
fewer informative stories than the page needs. Measurements: docs/search.md.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from mlopsmortem.search.types import Ranked

if TYPE_CHECKING:
    from mlopsmortem.search.types import Tuning

MAX_QUERY_TERMS = 32
# Words that carry no topic; dropped from keyword queries (unless nothing else is left) so that
# "how did we lose logs" ranks on "lose logs" and does not match every passage containing "we".
STOPWORDS = frozenset(
    "a an and are as at be but by did do does for from had has have how i in into is it its "
    "of on or our so that the their then there these this to was we were what when where which "
    "while who why will with you your".split()
)
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[^\W_]+")  # unicode61: runs of letters and digits


# --------------------------------------------------------------------------- query text


def query_words(query: str) -> list[str]:
    """The user's words that can match anything, deduplicated, stopwords dropped when possible."""
    words: dict[tuple[str, ...], str] = {}
    for match in _WORD.finditer(query):
        word = match.group()
        # one word once, however punctuated ("logs" and "logs,"): twice, it would weigh double
        tokens = tuple(_TOKEN.findall(word.lower()))
        if tokens and tokens not in words:
            words[tokens] = word
    kept = [w for tokens, w in words.items() if not (len(tokens) == 1 and tokens[0] in STOPWORDS)]
    return (kept or list(words.values()))[:MAX_QUERY_TERMS]


def fts_phrase(word: str) -> str:
    """One user word as an FTS5 phrase: quoted, inner quotes doubled, so it is never syntax."""
    return '"' + word.replace('"', '""') + '"'


def fts_query(query: str) -> str | None:
    """A safe FTS5 MATCH expression: every word quoted as a phrase, joined by OR.

    Quoting turns FTS5 syntax (AND, NEAR(, *, column:, unbalanced quotes) into plain words; a
    word such as `fluent-bit` becomes the phrase "fluent bit". None when no word is left."""
    phrases = fts_phrases(query)
    return " OR ".join(phrases) if phrases else None


def fts_phrases(query: str) -> list[str]:
    """The query's words (query_words), each as its FTS5 phrase."""
    return [fts_phrase(word) for word in query_words(query)]


# --------------------------------------------------------------------------- shared types


def stories_containing(conn: sqlite3.Connection, query: str) -> list[str] | None:
    """Ids of the stories with a passage containing any of the query's words: the set keyword
    search ranks in full; None for a query with no words. For counts that follow a keyword
    search (the search page's facets)."""
    match = fts_query(query)
    if match is None:
        return None
    rows = conn.execute(
        "SELECT DISTINCT p.story_id FROM passages_fts f JOIN passages p ON p.id = f.rowid"
        " WHERE passages_fts MATCH ? ORDER BY 1",
        [match],
    )
    return [row[0] for row in rows]


def removed_ids(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM stories WHERE removed_at IS NOT NULL")]


@dataclass(frozen=True)
class StorySet:
    """The stories a search may return: SQL for joins, ids for filtering in Python."""

    where: str
    params: list[Any]
    filtered: bool
    ids: frozenset[str]  # allowed stories when filtered, else the removed ones

    @classmethod
    def load(cls, conn: sqlite3.Connection, where: str, params: list[Any]) -> StorySet:
        if where == "s.removed_at IS NULL":
            return cls(where, params, False, frozenset(removed_ids(conn)))
        rows = conn.execute(f"SELECT s.id FROM stories s WHERE {where}", params)
        return cls(where, params, True, frozenset(r[0] for r in rows))

    def allows(self, story_id: str) -> bool:
        return (story_id in self.ids) if self.filtered else (story_id not in self.ids)


# --------------------------------------------------------------------------- the stage


def keyword_stage(
    conn: sqlite3.Connection,
    text: str,
    match: str,
    stories: StorySet,
    *,
    needed: int,
    pool: int,
    tuning: Tuning,
) -> list[Ranked]:
    """The keyword ranking of `text` (whose MATCH expression is `match`): at most `pool`
    stories, best first, each with its best passage and coverage attached when the ranking uses
    it; with tuning.coverage_first the score is words matched + bm25 squashed into [0, 1)."""
    words = query_words(text)
    ranked: list[Ranked] | None = None
    if tuning.common_fraction is not None and len(words) >= 2:
        ranked = _common_terms_stories(conn, words, stories, needed, pool, tuning)
    if ranked is None:
        ranked = _keyword_stories(conn, match, stories, needed, pool, tuning)
        if tuning.coverage_first or tuning.coverage_power:
            ranked = _with_coverage(conn, words, ranked)
    if tuning.coverage_first:
        # score = words matched + bm25 squashed into [0, 1): monotonic in the new order
        ranked = sorted(
            (
                r._replace(score=round(r.coverage * len(words)) + r.score / (1.0 + r.score))
                for r in ranked
            ),
            key=lambda r: -r.score,
        )
    return ranked


# --------------------------------------------------------------------------- common terms


class TermSplit(NamedTuple):
    informative: list[str]  # phrases found in 1..cap-1 passages
    common: list[str]  # phrases found in at least cap passages
    cap: int


def split_terms(conn: sqlite3.Connection, words: Sequence[str], tuning: Tuning) -> TermSplit:
    """Classify each word's phrase by its document frequency, counting at most `cap` rows."""
    (total,) = conn.execute("SELECT count(*) FROM passages").fetchone()
    fraction = tuning.common_fraction or 0.0
    cap = max(1, tuning.common_min_rows, math.ceil(fraction * total))
    informative: list[str] = []
    common: list[str] = []
    for word in words:
        phrase = fts_phrase(word)
        (df,) = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? LIMIT ?)",
            [phrase, cap],
        ).fetchone()
        if df >= cap:
            common.append(phrase)
        elif df:
            informative.append(phrase)
    return TermSplit(informative, common, cap)


def _common_terms_stories(
    conn: sqlite3.Connection,
    words: Sequence[str],
    stories: StorySet,
    needed: int,
    pool: int,
    tuning: Tuning,
) -> list[Ranked] | None:
    """Stories ranked on the passages matching an informative word (module docstring), with
    coverage; None when the query has no common/informative split or too few stories."""
    split = split_terms(conn, words, tuning)
    if not split.informative or not split.common:
        return None
    informative = " OR ".join(split.informative)
    bm25 = "SELECT rowid, bm25(passages_fts, 1.0, ?) FROM passages_fts WHERE passages_fts MATCH ?"
    scores = dict(conn.execute(bm25, [tuning.title_weight, informative]))
    base = dict(scores)
    with_common: list[set[int]] = []
    for phrase in split.common:
        rows = conn.execute(bm25, [tuning.title_weight, f"{phrase} AND ({informative})"])
        found = set()
        for rowid, rank in rows:
            scores[rowid] += rank - base[rowid]  # + this phrase's share of the bm25
            found.add(rowid)
        with_common.append(found)
    order = sorted(scores, key=lambda rowid: (scores[rowid], rowid))
    best: dict[str, Ranked] = {}
    start, chunk = 0, max(256, 2 * pool)
    while start < len(order) and len(best) < pool:
        part = order[start : start + chunk]
        story_of = dict(
            conn.execute(
                "SELECT id, story_id FROM passages WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps(part)],
            )
        )
        for rowid in part:
            story_id = story_of.get(rowid)
            if story_id is not None and story_id not in best and stories.allows(story_id):
                best[story_id] = Ranked(story_id, rowid, -scores[rowid])
                if len(best) >= pool:
                    break
        start, chunk = start + len(part), chunk * 4
    if len(best) < needed:
        return None  # too few stories for the page: the full query fills it as before
    matched = _story_coverage(conn, list(best), split, with_common)
    return [r._replace(coverage=matched[r.story_id] / len(words)) for r in best.values()]


def _story_coverage(
    conn: sqlite3.Connection,
    keys: Sequence[str],
    split: TermSplit,
    with_common: Sequence[set[int]],
) -> dict[str, int]:
    """How many of the split's phrases each story matches in any of its passages."""
    marks = ",".join("?" * len(keys))
    story_of: dict[int, str] = dict(
        conn.execute(f"SELECT id, story_id FROM passages WHERE story_id IN ({marks})", keys)
    )
    matched = dict.fromkeys(keys, 0)
    for phrase in split.informative:  # small doclists: read them whole
        rows = conn.execute("SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?", [phrase])
        for story_id in {story_of[rid] for (rid,) in rows if rid in story_of}:
            matched[story_id] += 1
    runs: dict[str, list[tuple[int, int]]] = {}
    for rowid in sorted(story_of):
        story_runs = runs.setdefault(story_of[rowid], [])
        if story_runs and story_runs[-1][1] == rowid - 1:
            story_runs[-1] = (story_runs[-1][0], rowid)
        else:
            story_runs.append((rowid, rowid))
    probe = (
        "SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? AND rowid BETWEEN ? AND ? LIMIT 1"
    )
    for phrase, found in zip(split.common, with_common, strict=True):
        covered = {story_of[rid] for rid in found if rid in story_of}
        for story_id in keys:
            if story_id in covered or any(
                conn.execute(probe, [phrase, low, high]).fetchone()
                for low, high in runs.get(story_id, ())
            ):
                matched[story_id] += 1
    return matched


# --------------------------------------------------------------------------- full query


def _keyword_stories(
    conn: sqlite3.Connection,
    match: str,
    stories: StorySet,
    needed: int,
    pool: int,
    tuning: Tuning,
) -> list[Ranked]:
    """(story_id, best passage id, -bm25) of the best-matching stories, best first.

    Fast path: the top passages from FTS5 alone (no join inside the ranking), grouped by story
    in Python. Every story with a passage among them has its best passage among them, so the
    stories found are an exact prefix of the full ranking. Only when that prefix is shorter
    than `needed` and FTS5 had more rows does it run the exact grouped query."""
    top = tuning.keyword_top or max(200, pool * 10)
    rows = conn.execute(
        "SELECT p.story_id, t.rowid, t.rank FROM ("
        " SELECT rowid, bm25(passages_fts, 1.0, ?) AS rank FROM passages_fts"
        " WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?"
        ") t JOIN passages p ON p.id = t.rowid ORDER BY t.rank, t.rowid",
        [tuning.title_weight, match, top],
    ).fetchall()
    best: dict[str, Ranked] = {}
    for story_id, passage_id, rank in rows:
        if story_id not in best and stories.allows(story_id):
            best[story_id] = Ranked(story_id, passage_id, -rank)
    if len(best) >= needed or len(rows) < top:
        return list(best.values())[:pool]
    return _keyword_stories_exact(conn, match, stories.where, stories.params, pool, tuning)


def _matching_passages_sql(where: str) -> str:
    """(story_id, passage_id, rank) of every passage matching `?` (after the title weight `?`)
    whose story passes `where`: the bm25 the grouped query below ranks by."""
    return (
        "SELECT p.story_id AS story_id, f.rowid AS passage_id,"
        " bm25(passages_fts, 1.0, ?) AS rank"
        " FROM passages_fts f JOIN passages p ON p.id = f.rowid"
        f" WHERE passages_fts MATCH ? AND p.story_id IN (SELECT s.id FROM stories s WHERE {where})"
    )


def _keyword_stories_exact(
    conn: sqlite3.Connection, match: str, where: str, params: list[Any], limit: int, tuning: Tuning
) -> list[Ranked]:
    """The grouped query: bm25 of every matching passage of an allowed story, best per story."""
    sql = (
        f"WITH m AS MATERIALIZED ({_matching_passages_sql(where)})"
        " SELECT story_id, passage_id, min(rank) AS best FROM m"
        " GROUP BY story_id ORDER BY best, story_id LIMIT ?"
    )
    rows = conn.execute(sql, [tuning.title_weight, match, *params, limit]).fetchall()
    return [Ranked(r[0], r[1], -r[2]) for r in rows]


def _with_coverage(
    conn: sqlite3.Connection, words: Sequence[str], ranked: list[Ranked]
) -> list[Ranked]:
    """Attach the share of query words each story matches in any of its passages.

    Per word, the matching rowids straight from FTS5, mapped to the candidates' passages in
    Python (cheaper than joining passages in SQL on a large table)."""
    if len(words) < 2 or not ranked:
        return ranked
    keys = list(dict.fromkeys(r.story_id for r in ranked))
    marks = ",".join("?" * len(keys))
    story_of: dict[int, str] = dict(
        conn.execute(f"SELECT id, story_id FROM passages WHERE story_id IN ({marks})", keys)
    )
    matched = dict.fromkeys(keys, 0)
    for word in words:
        rows = conn.execute(
            "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?", [fts_phrase(word)]
        )
        for story_id in {story_of[rid] for (rid,) in rows if rid in story_of}:
            matched[story_id] += 1
    return [r._replace(coverage=matched[r.story_id] / len(words)) for r in ranked]
