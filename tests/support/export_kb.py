"""A small knowledge base written straight into the tables, for the export tests and the
publishing example's test."""

import json

import numpy as np

from mlopsmortem.urls import story_id

MODEL = "all-MiniLM-L6-v2"
DIM = 8
# Phrases that exist only in prose columns; a --no-text export must contain none of them.
PAGE_PROSE = "the online store TTL was shorter than the materialization interval"
LIST_SUMMARY = "A feature store served week-old features to the ranking model"
LIST_TEXT = "Feast TTL outage, told by the on-call engineer"
EVIDENCE = "quoted: Redis evicted keys before the job rewrote them"
PROSE = (PAGE_PROSE, LIST_SUMMARY, LIST_TEXT, EVIDENCE)
TEXT_COLUMNS = {"text", "summary", "list_text", "evidence"}


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def build_kb(db) -> dict:
    """A small knowledge base written straight into the tables, as the pipeline leaves it."""
    urls = {
        "feast": "https://eng.acme.example/blog/feast-ttl-stale-recommendations",
        "etcd": "https://status.beta.example/incidents/etcd-space-quota",
        "guide": "https://docs.gamma.example/mlops/runbooks",
        "gone": "https://old.delta.example/2019/postmortem",
    }
    ids = {k: story_id(u) for k, u in urls.items()}
    with db.conn:
        db["sources"].insert_all(
            [
                {
                    "id": 1,
                    "name": "awful-mlops",
                    "location": "https://raw.githubusercontent.com/x/awful-mlops/main/README.md",
                    "format": "afs",
                    "last_read": "2024-05-02T03:00:04Z",
                    "etag": 'W/"5f1c0a"',
                    "last_modified": "Tue, 30 Apr 2024 10:00:00 GMT",
                    "content_hash": "ab" * 32,
                    "status": "ok",
                },
                {
                    "id": 2,
                    "name": "post-mortems",
                    "location": "https://raw.githubusercontent.com/danluu/post-mortems/HEAD/README.md",
                    "format": "danluu",
                    "last_read": "2024-05-02T03:00:05Z",
                    "etag": '"77aa"',
                    "content_hash": "cd" * 32,
                    "status": "ok",
                },
            ]
        )
        story = {
            "first_seen": "2024-05-01T03:00:00Z",
            "last_seen": "2024-05-02T03:00:00Z",
        }
        db["stories"].insert_all(
            [
                {
                    **story,
                    "id": ids["feast"],
                    "url": urls["feast"] + "?utm_source=list",
                    "canonical_url": urls["feast"],
                    "category": "failure story",
                    "title": "Feast TTL served stale recommendations",
                    "publisher": "Acme",
                    "kind": "blog post",
                    "year": 2022,
                    "summary": LIST_SUMMARY,
                    "components": json.dumps(["Feast", "Redis"]),
                    "impacts": json.dumps(["stale-data"]),
                },
                {
                    **story,
                    "id": ids["etcd"],
                    "url": urls["etcd"],
                    "canonical_url": urls["etcd"],
                    "archive_url": "https://web.archive.org/web/2023/" + urls["etcd"],
                    "category": "failure story",
                    "title": "etcd space quota stopped the control plane",
                    "publisher": "Beta",
                    "kind": "status page",
                    "year": 2023,
                    "components": json.dumps(["etcd", "Kubernetes"]),
                    "impacts": json.dumps(["outage"]),
                },
                {
                    **story,
                    "id": ids["guide"],
                    "url": urls["guide"],
                    "canonical_url": urls["guide"],
                    "category": "resource",
                    "title": "MLOps runbooks",
                    "publisher": "Gamma",
                    "components": json.dumps([]),
                    "impacts": json.dumps([]),
                },
                {
                    **story,
                    "id": ids["gone"],
                    "url": urls["gone"],
                    "canonical_url": urls["gone"],
                    "category": "failure story",
                    "title": "Old outage",
                    "year": 2019,
                    "removed_at": "2024-05-02T03:00:00Z",
                },
            ]
        )
        provenance = {"first_seen": "2024-05-01T03:00:00Z", "last_seen": "2024-05-02T03:00:00Z"}
        db["story_sources"].insert_all(
            [
                {
                    **provenance,
                    "id": 1,
                    "story_id": ids["feast"],
                    "source_id": 1,
                    "occurrence": 0,
                    "line": 12,
                    "section": "Feature stores",
                    "list_url": urls["feast"] + "?utm_source=list",
                    "category": "failure story",
                    "title": "Feast TTL served stale recommendations",
                    "publisher": "Acme",
                    "kind": "blog post",
                    "year": 2022,
                    "list_title": "Feast TTL served stale recommendations - Acme - blog post 2022",
                    "list_involved": json.dumps(["Feast", "redis"]),
                    "list_impact": json.dumps(["stale recommendations for 3 days"]),
                    "list_text": LIST_TEXT,
                },
                {
                    **provenance,
                    "id": 2,
                    "story_id": ids["feast"],
                    "source_id": 2,
                    "occurrence": 0,
                    "line": 40,
                    "section": "Config Errors",
                    "list_url": urls["feast"],
                    "category": "failure story",
                    "publisher": "Acme",
                    "summary": LIST_SUMMARY,
                    "list_title": "Acme",
                    "list_involved": json.dumps([]),
                    "list_impact": json.dumps([]),
                    "list_text": LIST_SUMMARY,
                },
                {
                    **provenance,
                    "id": 3,
                    "story_id": ids["etcd"],
                    "source_id": 1,
                    "occurrence": 0,
                    "line": 20,
                    "list_url": urls["etcd"],
                    "category": "failure story",
                    "list_title": "etcd space quota - Beta - status page 2023",
                    "list_involved": json.dumps(["etcd"]),
                    "list_impact": json.dumps(["control plane down"]),
                },
                {
                    **provenance,
                    "id": 4,
                    "story_id": ids["guide"],
                    "source_id": 1,
                    "occurrence": 0,
                    "line": 90,
                    "section": "Resources",
                    "tag": "runbook",
                    "list_url": urls["guide"],
                    "category": "resource",
                },
                {
                    **provenance,
                    "id": 5,
                    "story_id": ids["gone"],
                    "source_id": 2,
                    "occurrence": 0,
                    "line": 3,
                    "list_url": urls["gone"],
                    "category": "failure story",
                    "removed_at": "2024-05-02T03:00:00Z",
                },
            ]
        )
        db["pages"].insert_all(
            [
                {
                    "story_id": ids["feast"],
                    "url": urls["feast"],
                    "final_url": urls["feast"],
                    "status_code": 200,
                    "content_type": "text/html; charset=utf-8",
                    "etag": '"e1"',
                    "fetched_at": "2024-05-02T03:01:00Z",
                    "content_hash": "11" * 32,
                    "body_size": 5120,
                    "truncated": 0,
                    "link_status": "live",
                    "changed_at": "2024-05-01T03:01:00Z",
                },
                {
                    "story_id": ids["etcd"],
                    "url": urls["etcd"],
                    "final_url": urls["etcd"],
                    "archive_url": "https://web.archive.org/web/2023/" + urls["etcd"],
                    "status_code": 404,
                    "fetched_at": "2024-05-02T03:01:01Z",
                    "link_status": "archived",
                    "error_kind": "http_404",
                    "error_message": "HTTP 404",
                    "dead_since": "2024-05-02T03:01:01Z",
                },
                {
                    "story_id": ids["guide"],
                    "url": urls["guide"],
                    "final_url": "https://gamma.example/runbooks",
                    "status_code": 200,
                    "content_type": "text/html",
                    "fetched_at": "2024-05-02T03:01:02Z",
                    "content_hash": "22" * 32,
                    "body_size": 900,
                    "truncated": 1,
                    "link_status": "redirected",
                },
            ]
        )
        db["page_bodies"].insert(
            {
                "story_id": ids["feast"],
                "body": b"x\x9c compressed bytes that must never be exported",
            }
        )
        db["documents"].insert_all(
            [
                {
                    "story_id": ids["feast"],
                    "title": "How a TTL served stale recommendations",
                    "author": "A. Engineer",
                    "date": "2022-03-04",
                    "sitename": "Acme Engineering",
                    "language": "en",
                    "text": f"In March {PAGE_PROSE}, so every lookup missed. We fixed it.",
                    "word_count": 18,
                    "text_hash": "33" * 32,
                    "content_hash": "11" * 32,
                    "extractor": "trafilatura",
                    "extractor_version": "2.0.0",
                    "extracted_at": "2024-05-01T03:01:00Z",
                },
                {
                    "story_id": ids["guide"],
                    "no_text_reason": "too short",
                    "content_hash": "22" * 32,
                    "extractor": "trafilatura",
                    "extractor_version": "2.0.0",
                    "extracted_at": "2024-05-02T03:01:02Z",
                },
            ]
        )
        passages = [
            (1, ids["feast"], 0, "card", f"Feast TTL served stale recommendations. {LIST_SUMMARY}"),
            (2, ids["feast"], 1, "text", f"In March {PAGE_PROSE}, so every lookup missed."),
            (3, ids["feast"], 2, "text", "We fixed it."),
            (4, ids["etcd"], 0, "card", "etcd space quota stopped the control plane"),
            (5, ids["guide"], 0, "card", "MLOps runbooks"),
        ]
        db["passages"].insert_all(
            {
                "id": pid,
                "story_id": sid,
                "seq": seq,
                "kind": kind,
                "text": text,
                "start": None if kind == "card" else 0,
                "end": None if kind == "card" else len(text),
                "text_hash": f"h{pid}",
            }
            for pid, sid, seq, kind, text in passages
        )
        db["embedding_models"].insert(
            {"name": MODEL, "dimension": DIM, "created_at": "2024-05-01T03:02:00Z"}
        )
        db["embeddings"].insert_all(
            {
                "passage_id": pid,
                "model": MODEL,
                # passage 3's vector embeds an older text: stale, so left out
                "text_hash": f"h{pid}" if pid != 3 else "old",
                "vector": blob(vector(pid)),
            }
            for pid, *_ in passages
        )
        db["tags"].insert_all(
            [
                {
                    "id": 1,
                    "story_id": ids["feast"],
                    "kind": "component",
                    "tag": "Feast",
                    "method": "list",
                    "free": 0,
                    "original": "Feast",
                    "confidence": 1.0,
                    "taxonomy_version": "0a1b2c3d4e5f",
                },
                {
                    "id": 2,
                    "story_id": ids["feast"],
                    "kind": "component",
                    "tag": "Redis",
                    "method": "rule",
                    "free": 0,
                    "confidence": 0.9,
                    "evidence": EVIDENCE,
                    "passage_id": 2,
                    "taxonomy_version": "0a1b2c3d4e5f",
                },
                {
                    "id": 3,
                    "story_id": ids["feast"],
                    "kind": "impact",
                    "tag": "stale-data",
                    "method": "semantic",
                    "free": 0,
                    "confidence": 0.6125,
                    "passage_id": 2,
                    "taxonomy_version": "0a1b2c3d4e5f",
                },
                {
                    "id": 4,
                    "story_id": ids["etcd"],
                    "kind": "impact",
                    "tag": "control plane down",
                    "method": "list",
                    "free": 1,
                    "original": "control plane down",
                    "confidence": 1.0,
                    "taxonomy_version": "0a1b2c3d4e5f",
                },
            ]
        )
        db["meta"].insert({"key": "taxonomy_version", "value": "0a1b2c3d4e5f"})
        db["runs"].insert_all(
            [
                {
                    "command": "crawl",
                    "started_at": "2024-05-01T03:00:00Z",
                    "finished_at": "2024-05-01T03:02:10Z",
                    "status": "ok",
                    "duration_s": 130.0,
                    "counts": json.dumps({"new_stories": 4}),
                    "report": json.dumps({"story_ids": {"new": list(ids.values())}}),
                },
                {
                    "command": "crawl",
                    "started_at": "2024-05-02T03:00:00Z",
                    "finished_at": "2024-05-02T03:01:30Z",
                    "status": "partial",
                    "duration_s": 90.0,
                    "counts": json.dumps({"newly_dead": 1}),
                    "report": json.dumps({"story_ids": {"newly_dead": [ids["etcd"]]}}),
                },
            ]
        )
    return {"ids": ids, "urls": urls}
