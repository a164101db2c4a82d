"""What changed lately and where the knowledge base stands: `changes` and `status`.

`changes` reads the change reports that crawl and fetch runs store in `runs.report` (story ids
of new stories, changed pages, newly dead and recovered links); links that started failing
(their last good state kept, `pages.failing_since`) are listed apart from the dead ones. A
run killed mid-way stores no report, so the database's own timestamps fill in what they can:
`stories.first_seen` (ingest runs keep only counts), `page_history.replaced_at` and
`pages.dead_since`. Both commands only read; they record no run, so asking does not change
the answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from mlopsmortem.db import open_existing_db as db_open_existing
from mlopsmortem.settings import Settings, parse_duration

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as db.utcnow() writes: comparable as text
LAST_RUNS = 5
NOT_FETCHED = "not_fetched"
# Commands whose report holds page-level story ids.
FETCHING_COMMANDS = ("crawl", "fetch")
CATEGORIES = ("new_stories", "changed_pages", "newly_dead", "failing", "recovered", "removed")
HEADINGS = {
    "new_stories": ("new stories", "+"),
    "changed_pages": ("changed pages", "~"),
    "newly_dead": ("newly dead links", "x"),
    "failing": ("failing links (not dead yet: last good state kept)", "!"),
    "recovered": ("recovered links", "^"),
    "removed": ("removed from every list", "-"),
}
# Still failing and not dead: pages whose last good state is kept (crawl/pagestore.py).
FAILING = "p.failures > 0 AND p.link_status IN ('live', 'redirected')"


def open_existing_db(settings: Settings) -> sqlite_utils.Database:
    """The knowledge base, which must exist: a read-only command must not create an empty one."""
    return db_open_existing(settings.db_path)


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_since(text: str, now: datetime | None = None) -> str:
    """'2026-11-01', '2026-11-01T08:00:00Z' or a duration back from now ('7d', '12h') as a UTC
    timestamp in the database's format. A date without a zone is UTC."""
    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return _format(now - timedelta(seconds=parse_duration(text)))
        except ValueError:
            raise ValueError(
                f"not a date or duration: {text!r} (use e.g. 2026-11-01 or 7d)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _format(moment)


def _json(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass
class StoryChange:
    story_id: str
    title: str | None
    url: str | None
    when: str  # the run's start, or the database's own timestamp of the change
    run_id: int | None
    link_status: str | None  # now, not at the time of the change
    archive_url: str | None = None

    def line(self, marker: str) -> str:
        text = f"  {marker} {self.title or '(untitled)'} <{self.url}>"
        if self.archive_url and self.link_status in ("dead", "archived"):
            text += f" archived: {self.archive_url}"
        return text


@dataclass
class RunSummary:
    id: int
    command: str
    started_at: str | None
    finished_at: str | None
    status: str | None
    duration_s: float | None
    counts: dict[str, Any]

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        return (
            f"  #{self.id} {self.command} {self.status} {self.started_at} "
            f"{human_duration(self.duration_s)}" + (f" ({counts})" if counts else "")
        )


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _run_summary(row: dict[str, Any]) -> RunSummary:
    return RunSummary(
        id=row["id"],
        command=row["command"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        duration_s=row["duration_s"],
        counts=_json(row["counts"]),
    )


@dataclass
class ChangeReport:
    since: str
    runs: list[RunSummary] = field(default_factory=list)
    new_stories: list[StoryChange] = field(default_factory=list)
    changed_pages: list[StoryChange] = field(default_factory=list)
    newly_dead: list[StoryChange] = field(default_factory=list)
    failing: list[StoryChange] = field(default_factory=list)
    recovered: list[StoryChange] = field(default_factory=list)
    removed: list[StoryChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        lines = [f"changes since {self.since}: {len(self.runs)} runs"]
        lines += [run.line() for run in self.runs]
        for category in CATEGORIES:
            heading, marker = HEADINGS[category]
            changes: list[StoryChange] = getattr(self, category)
            lines.append(f"{heading}: {len(changes)}")
            lines += [change.line(marker) for change in changes]
        return lines


def collect_changes(db: sqlite_utils.Database, since: str) -> ChangeReport:
    """Stories that are new, changed, newly dead, failing, recovered or removed since `since`.

    Failing: the link's fetches have failed since a moment in the window and it is not dead
    (yet): its last good state is kept, and it is dated by the first failure.

    Each story appears once per category, at its latest event. A link that died and came back
    (or the reverse) within the window is listed by its last transition only; a new story's
    first fetch is not listed as a change.
    """
    report = ChangeReport(since=since)
    # category -> story id -> (when, run id); later events overwrite earlier ones
    events: dict[str, dict[str, tuple[str, int | None]]] = {c: {} for c in CATEGORIES}

    def note(category: str, story_id: str, when: str, run_id: int | None) -> None:
        seen = events[category].get(story_id)
        if seen is None or when >= seen[0]:
            events[category][story_id] = (when, run_id)

    runs = list(
        db.query("SELECT * FROM runs WHERE started_at >= ? ORDER BY started_at, id", [since])
    )
    for row in runs:
        report.runs.append(_run_summary(row))
        if row["command"] not in FETCHING_COMMANDS:
            continue
        stored = _json(row["report"])
        # crawl reports nest the ids under story_ids; fetch stores the CrawlReport's lists
        ids = stored.get("story_ids") if isinstance(stored.get("story_ids"), dict) else stored
        when = row["started_at"]
        for sid in _ids(ids.get("new")):
            note("new_stories", sid, when, row["id"])
        for sid in _ids(ids.get("changed")):
            note("changed_pages", sid, when, row["id"])
        for sid in _ids(ids.get("newly_dead")):
            note("newly_dead", sid, when, row["id"])
        for sid in _ids(ids.get("recovered")):
            note("recovered", sid, when, row["id"])

    # what the database itself dates, for ingest runs and runs that stored no report
    for r in db.query("SELECT id, first_seen FROM stories WHERE first_seen >= ?", [since]):
        if r["id"] not in events["new_stories"]:
            note("new_stories", r["id"], r["first_seen"], None)
    for r in db.query("SELECT id, removed_at FROM stories WHERE removed_at >= ?", [since]):
        note("removed", r["id"], r["removed_at"], None)
    for r in db.query(
        "SELECT story_id, MAX(replaced_at) AS at FROM page_history WHERE replaced_at >= ? "
        "GROUP BY story_id",
        [since],
    ):
        if r["story_id"] not in events["changed_pages"]:
            note("changed_pages", r["story_id"], r["at"], None)
    for r in db.query("SELECT story_id, dead_since FROM pages WHERE dead_since >= ?", [since]):
        if r["story_id"] not in events["newly_dead"]:
            note("newly_dead", r["story_id"], r["dead_since"], None)
    for r in db.query(
        f"SELECT story_id, failing_since FROM pages p WHERE {FAILING} AND failing_since >= ?",
        [since],
    ):
        note("failing", r["story_id"], r["failing_since"], None)

    for sid in events["new_stories"]:
        events["changed_pages"].pop(sid, None)  # its first fetch, not a change
    for sid in set(events["newly_dead"]) & set(events["recovered"]):
        # keep the last transition: the link's state at the end of the window
        if events["newly_dead"][sid][0] > events["recovered"][sid][0]:
            del events["recovered"][sid]
        else:
            del events["newly_dead"][sid]

    stories = _story_info(db, {sid for c in CATEGORIES for sid in events[c]})
    for category in CATEGORIES:
        changes = []
        for sid, (when, run_id) in events[category].items():
            info = stories.get(sid, {})
            changes.append(
                StoryChange(
                    story_id=sid,
                    title=info.get("title"),
                    url=info.get("url"),
                    when=when,
                    run_id=run_id,
                    link_status=info.get("link_status"),
                    archive_url=info.get("archive_url"),
                )
            )
        changes.sort(key=lambda c: (c.when, (c.title or "").lower(), c.story_id))
        setattr(report, category, changes)
    return report


def _story_info(db: sqlite_utils.Database, ids: set[str]) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):  # stay under SQLite's bound-parameter limit
        chunk = ordered[start : start + 500]
        for row in db.query(
            "SELECT s.id, s.title, s.url, p.link_status, "
            "COALESCE(p.archive_url, s.archive_url) AS archive_url "
            "FROM stories s LEFT JOIN pages p ON p.story_id = s.id "
            f"WHERE s.id IN ({', '.join('?' for _ in chunk)})",
            chunk,
        ):
            info[row["id"]] = row
    return info


def changes_report(settings: Settings, since: str) -> ChangeReport:
    """`mlopsmortem changes`: `since` is a timestamp from `parse_since`."""
    db = open_existing_db(settings)
    try:
        return collect_changes(db, since)
    finally:
        db.close()


# --------------------------------------------------------------------------- status


@dataclass
class StatusReport:
    now: str
    max_age_s: float
    stale_before: str
    stories: int  # on at least one list
    removed: int  # no longer on any list (kept, not crawled)
    by_category: dict[str, int]
    by_link_status: dict[str, int]
    never_fetched: int
    stale: int
    oldest_fetch: str | None
    documents: int
    passages: int
    tags: int
    embeddings: dict[str, int]
    runs: list[RunSummary]
    # links whose fetches fail while their last good state is kept (not dead yet)
    failing: list[dict[str, Any]] = field(default_factory=list)
    # dead links without an archived copy, and why: no snapshot, or a lookup to retry
    no_archive: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        def joined(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

        lines = [
            f"stories: {self.stories} on lists, {self.removed} removed from every list",
            f"by category: {joined(self.by_category)}",
            f"by link status: {joined(self.by_link_status)}",
            f"pages never fetched: {self.never_fetched}",
            f"stale pages (fetched before {self.stale_before}): {self.stale}"
            + (f", oldest fetch {self.oldest_fetch}" if self.oldest_fetch else ""),
            f"documents with text {self.documents}, passages {self.passages}, tags {self.tags}, "
            f"embeddings: {joined(self.embeddings)}",
        ]
        lines.append(f"failing, not dead (last good state kept): {len(self.failing)}")
        lines += [
            f"  ! {f['title'] or '(untitled)'} <{f['url']}> {f['link_status']}, failing since "
            f"{f['failing_since']} ({f['failures']} failed attempts): {f['error_message']}"
            for f in self.failing
        ]
        lines.append(f"dead without an archived copy: {len(self.no_archive)}")
        lines += [
            f"  x {d['title'] or '(untitled)'} <{d['url']}> dead since {d['dead_since']}: "
            f"{_archive_reason(d)}"
            for d in self.no_archive
        ]
        lines.append(f"last {len(self.runs)} runs:")
        return lines + [run.line() for run in self.runs]


def _archive_reason(dead: dict[str, Any]) -> str:
    lookup = dead.get("archive_lookup")
    if lookup == "error":
        return f"archive lookup failed, retried next crawl ({dead.get('archive_error')})"
    if lookup == "pending":
        return "archive not looked up yet (next crawl)"
    return "no archived snapshot found"


def _by(db: sqlite_utils.Database, sql: str) -> dict[str, int]:
    rows = [(r["k"], r["n"]) for r in db.query(sql)]
    return dict(sorted(rows, key=lambda kv: (-kv[1], kv[0])))


def collect_status(
    db: sqlite_utils.Database, max_age_s: float, now: datetime | None = None
) -> StatusReport:
    """Counts of the stories still on a list (the ones crawls fetch), staleness, last runs."""
    now = now or datetime.now(UTC)
    cutoff = _format(now - timedelta(seconds=max_age_s))
    listed = "FROM stories s LEFT JOIN pages p ON p.story_id = s.id WHERE s.removed_at IS NULL"
    pages = next(
        db.query(
            "SELECT COUNT(*) AS stories, "
            "SUM(p.fetched_at IS NULL) AS never, "
            "SUM(p.fetched_at < ?) AS stale, MIN(p.fetched_at) AS oldest " + listed,
            [cutoff],
        )
    )
    return StatusReport(
        now=_format(now),
        max_age_s=max_age_s,
        stale_before=cutoff,
        stories=pages["stories"],
        removed=db["stories"].count_where("removed_at IS NOT NULL"),
        by_category=_by(
            db,
            "SELECT COALESCE(s.category, 'unknown') AS k, COUNT(*) AS n " + listed + " GROUP BY k",
        ),
        by_link_status=_by(
            db,
            f"SELECT COALESCE(p.link_status, '{NOT_FETCHED}') AS k, COUNT(*) AS n "
            + listed
            + " GROUP BY k",
        ),
        never_fetched=pages["never"] or 0,
        stale=pages["stale"] or 0,
        oldest_fetch=pages["oldest"],
        documents=db["documents"].count_where("text IS NOT NULL"),
        passages=db["passages"].count,
        tags=db["tags"].count,
        embeddings=_by(db, "SELECT model AS k, COUNT(*) AS n FROM embeddings GROUP BY model"),
        runs=[
            _run_summary(r)
            for r in db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [LAST_RUNS])
        ],
        failing=list(
            db.query(
                "SELECT s.id AS story_id, s.title, s.url, p.link_status, p.failing_since, "
                f"p.failures, p.error_kind, p.error_message {listed} AND {FAILING} "
                "ORDER BY p.failing_since, s.id"
            )
        ),
        no_archive=list(
            db.query(
                "SELECT s.id AS story_id, s.title, s.url, p.dead_since, p.archive_lookup, "
                f"p.archive_error {listed} AND p.link_status = 'dead' "
                "ORDER BY p.dead_since, s.id"
            )
        ),
    )


def status_report(settings: Settings, max_age_s: float) -> StatusReport:
    """`mlopsmortem status`."""
    db = open_existing_db(settings)
    try:
        return collect_status(db, max_age_s)
    finally:
        db.close()
