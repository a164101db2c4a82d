"""End to end on the bundled demo corpus: serve the site on 127.0.0.1, crawl it, extract,
embed with the real model, and search."""

import csv
import re
import socket

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.pipeline import demo_session
from mlopsmortem.search.run import search
from mlopsmortem.settings import Settings
from mlopsmortem.urls import canonicalize, story_id

from .conftest import REPO_ROOT

DEMO = REPO_ROOT / "data" / "demo"
DEMO_BASE = "http://127.0.0.1:8017/"


def demo_stories() -> list[dict]:
    with open(DEMO / "stories.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def article_sentences(slug: str) -> list[str]:
    """The article's own prose sentences, paragraph by paragraph (code blocks, headings,
    tables and sentences with inline code left out: their rendering varies)."""
    path = next((REPO_ROOT / "tools" / "demo_corpus" / "articles").glob(f"*-{slug}.md"))
    body = path.read_text(encoding="utf-8").split("---", 2)[2]
    body = re.sub(r"```.*?```", "\n\n", body, flags=re.DOTALL)
    sentences = []
    for paragraph in re.split(r"\n\s*\n", body):
        lines = [ln for ln in paragraph.splitlines() if not ln.lstrip().startswith(("#", "|"))]
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(lines))  # link -> its text
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if "`" not in sentence and len(sentence.split()) >= 6:
                sentences.append(normalise(sentence))
    return sentences


def normalise(text: str) -> str:
    text = re.sub(r"[*_`>]", " ", text)
    text = re.sub(r"^\s*(?:[-–•]|\d+\.)\s+", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """The demo crawled twice on one port: the second run is the scheduled re-crawl."""
    db_path = tmp_path_factory.mktemp("demo") / "demo.db"
    settings = Settings(db_path=db_path, quiet=True)
    port = free_port()
    with demo_session(settings, site_port=port) as (first, site):
        assert not first.ingest.failed
        base = site.base_url
    with demo_session(settings, site_port=port) as (second, _):
        pass
    return db_path, base, first, second


def sid_for(slug_url: str, base: str) -> str:
    return story_id(canonicalize(slug_url.replace(DEMO_BASE, base)))


def test_every_demo_page_is_fetched_with_the_expected_link_status(demo_db) -> None:
    db_path, base, _, _ = demo_db
    db = open_db(db_path)
    statuses = {row["story_id"]: row["link_status"] for row in db["pages"].rows}
    assert len(statuses) == len(demo_stories())
    by_url = {row["url"]: sid_for(row["url"], base) for row in demo_stories()}
    assert statuses[by_url[DEMO_BASE + "posts/jenkins-enospc-docker-layers.html"]] == "archived"
    dead = by_url[DEMO_BASE + "posts/celery-visibility-timeout-double-scoring.html"]
    assert statuses[dead] == "dead"
    moved = by_url[DEMO_BASE + "old/coredns-ndots-search-domains.html"]
    assert statuses[moved] == "redirected"
    assert sum(1 for s in statuses.values() if s == "live") == len(statuses) - 3


def test_extracted_text_keeps_each_article_and_none_of_its_chrome(demo_db) -> None:
    db_path, base, _, _ = demo_db
    db = open_db(db_path)
    sentinels = (DEMO / "sentinels.txt").read_text().split()
    documents = {row["story_id"]: row for row in db["documents"].rows}
    checked = 0
    for story in demo_stories():
        if story["layout"] == "video" or not story["path"]:
            continue
        doc = documents[sid_for(story["url"], base)]
        text = normalise(doc["text"] or "")
        leaked = [word for word in sentinels if word in text]
        assert not leaked, f"{story['slug']}: chrome leaked into the text: {leaked}"
        sentences = article_sentences(story["slug"])
        found = sum(1 for s in sentences if s in text)
        assert found / len(sentences) >= 0.9, f"{story['slug']}: {found}/{len(sentences)}"
        checked += 1
    assert checked >= 42


def test_non_utf8_pages_decode_and_pdfs_and_video_are_handled(demo_db) -> None:
    db_path, base, _, _ = demo_db
    db = open_db(db_path)
    docs = {row["story_id"]: row for row in db["documents"].rows}
    by_layout: dict[str, list[dict]] = {}
    for story in demo_stories():
        if story["path"]:  # the dead link without a snapshot has no document
            by_layout.setdefault(story["layout"], []).append(docs[sid_for(story["url"], base)])
    assert len(by_layout["pdf"]) == 3
    assert all(d["extractor"] == "pypdf" and d["word_count"] > 200 for d in by_layout["pdf"])
    [video] = by_layout["video"]
    assert video["text"] is None and "video/mp4" in video["no_text_reason"]
    mysql = docs[sid_for(DEMO_BASE + "posts/mysql-utf8-silent-truncation.html", base)]
    assert "Ã" not in mysql["text"] and "â€" not in mysql["text"]


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ("lost logs fluent-bit", "fluent-bit-full-buffer-missing-logs"),
        ("x509: certificate has expired", "x509-certificate-expired-scoring-api"),
        ("ENOSPC", "jenkins-enospc-docker-layers"),
        ("dns lookups slow because of ndots search domains", "coredns-ndots-search-domains"),
    ],
)
def test_search_finds_the_right_story_first(demo_db, query: str, slug: str) -> None:
    db_path, base, _, _ = demo_db
    settings = Settings(db_path=db_path, quiet=True)
    [story] = [s for s in demo_stories() if s["slug"] == slug]
    hits = search(open_db(db_path), query, settings=settings, limit=3)
    assert hits[0].id == sid_for(story["url"], base), [h.title for h in hits]
    assert hits[0].snippet


def test_the_first_crawls_counts_agree_with_the_database(demo_db) -> None:
    """Each count says one thing: no story or passage is counted twice."""
    db_path, _, first, _ = demo_db
    db = open_db(db_path)
    stories = db.execute("SELECT count(DISTINCT story_id) FROM passages").fetchone()[0]
    passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
    cards = db.execute("SELECT count(*) FROM passages WHERE kind = 'card'").fetchone()[0]
    assert first.stages["passages"]["changed_stories"] == stories
    assert first.stages["passages"]["inserted"] == passages
    assert first.stages["embed"]["embedded"] == passages
    assert first.stages["cards"]["updated_with_tags"] <= cards
    assert first.stages["embed"]["cards_reembedded"] == first.stages["cards"]["updated_with_tags"]


def test_recrawl_of_the_unchanged_demo_is_conditional_and_redoes_nothing(demo_db) -> None:
    _, _, first, second = demo_db
    assert len(first.ingest.new_story_ids) == len(demo_stories())
    report = second.as_dict()
    assert report["new_stories"] == 0 and report["changed_pages"] == 0
    assert second.crawl.not_modified == len(first.crawl.changed) - 1  # archived: not re-fetched
    assert report["newly_dead"] == 0 and report["recovered"] == 0
    assert second.stages["embed"]["embedded"] == 0
    assert second.stages["passages"]["inserted"] == second.stages["passages"]["updated"] == 0


def test_every_demo_story_with_text_has_an_incident_card_and_recrawls_keep_them(demo_db) -> None:
    db_path, _, first, second = demo_db
    db = open_db(db_path)
    with_text = {
        r[0]
        for r in db.execute(
            "SELECT s.id FROM stories s LEFT JOIN documents d ON d.story_id = s.id"
            " WHERE s.removed_at IS NULL AND (d.text <> '' OR s.summary <> '')"
        )
    }
    cards = {r[0]: r[1] for r in db.execute("SELECT story_id, summary FROM incident_cards")}
    assert with_text and set(cards) == with_text
    assert all(summary for summary in cards.values())
    assert first.stages["incidents"]["built"] == len(with_text)
    assert second.stages["incidents"]["built"] == 0  # an unchanged re-crawl derives nothing
    assert second.stages["incidents"]["unchanged"] == len(with_text)
