"""A small invented knowledge base for the passage, embedding and search tests (and the bench).

Not a conftest: import what you need (`from tests.support.knowledge_base import ...`). `build_kb`
writes the rows the ingest/crawl stages would have written (sources, stories, story_sources,
pages, documents) straight into a real SQLite file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from mlopsmortem.db import open_db, utcnow
from mlopsmortem.settings import Settings

SOURCES = {1: "awesome-mlops-failures", 2: "k8s-failure-stories"}


@dataclass(frozen=True)
class Story:
    id: str
    title: str
    publisher: str
    kind: str
    year: int
    summary: str
    components: tuple[str, ...]
    impacts: tuple[str, ...]
    source: int
    link_status: str
    text: str
    involved: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()
    removed: bool = False


STORIES: tuple[Story, ...] = (
    Story(
        "fluentbit",
        "How Fluent Bit silently dropped our logs",
        "Acme Cloud",
        "blog",
        2022,
        "Paused tail input plus log rotation lost hours of application logs.",
        ("logging", "kubernetes"),
        ("data-loss",),
        1,
        "live",
        "During an Elasticsearch outage our Fluent Bit daemonset kept tailing container log "
        "files. The mem_buf_limit was reached within minutes and the tail input paused.\n\n"
        "Kubernetes rotated the log files while the input was paused. When Elasticsearch came "
        "back, Fluent Bit resumed from the newest files and several hours of application logs "
        "were gone for good.\n\n"
        "We now use filesystem buffering (storage.type filesystem), alert on the "
        "fluentbit_input_paused metric and keep rotated files longer.",
        involved=("Fluent Bit", "Elasticsearch"),
        impact=("lost logs",),
    ),
    Story(
        "logstash",
        "Kafka backlog made our log pipeline drop events",
        "Beta Corp",
        "postmortem",
        2020,
        "Logstash consumers fell behind and Kafka retention deleted unread log events.",
        ("logging", "kafka"),
        ("data-loss", "delay"),
        2,
        "archived",
        "Our Logstash consumers fell days behind the Kafka topic that carries application "
        "logs after a grok pattern became pathologically slow.\n\n"
        "Kafka retention is seven days, so partitions were deleted before Logstash read them. "
        "Millions of log events never reached the search cluster and an audit found the gap "
        "weeks later.\n\n"
        "We alert on consumer lag, replaced the regex with a dissect filter and raised "
        "retention on the logs topic.",
    ),
    Story(
        "conntrack",
        "DNS timeouts from a conntrack race in Kubernetes",
        "Gamma Systems",
        "blog",
        2019,
        "Five second DNS delays caused by a kernel conntrack insertion race.",
        ("dns", "kubernetes", "networking"),
        ("latency",),
        2,
        "live",
        "Some requests took exactly five seconds longer than usual. Packet captures showed DNS "
        "lookups timing out and being retried.\n\n"
        "glibc sends the A and AAAA queries in parallel from the same UDP socket. Both packets "
        "race through netfilter and the conntrack insertion for the second one fails, so the "
        "kernel drops it and the resolver waits for its five second timeout.\n\n"
        "The fix was the single-request-reopen resolver option and later NodeLocal DNSCache, "
        "which avoids conntrack for DNS entirely.",
        involved=("kube-dns", "netfilter"),
    ),
    Story(
        "ndots",
        "ndots:5 made every lookup hit CoreDNS five times",
        "Delta Labs",
        "blog",
        2021,
        "Search domain expansion multiplied DNS queries and overloaded CoreDNS.",
        ("dns", "kubernetes"),
        ("latency", "outage"),
        2,
        "dead",
        "Kubernetes writes ndots:5 into every pod's resolv.conf. A name with fewer than five "
        "dots is first tried with each search domain appended.\n\n"
        "Our services called external APIs by short hostnames, so each lookup produced four "
        "NXDOMAIN answers before the real one. CoreDNS CPU saturated during a traffic peak and "
        "DNS resolution failed cluster-wide.\n\n"
        "Fully qualified names with a trailing dot and a lower ndots value fixed it.",
    ),
    Story(
        "skew",
        "Training-serving skew from a feature store timezone bug",
        "Epsilon ML",
        "postmortem",
        2021,
        "Offline and online features disagreed because of a timezone conversion.",
        ("feature-store", "ml-model"),
        ("bad-predictions",),
        1,
        "live",
        "The offline feature pipeline computed day-of-week features in UTC while the online "
        "feature store computed them in local time.\n\n"
        "The model learned patterns that did not exist at serving time, and precision on "
        "weekend traffic dropped by a third for two months before anyone noticed.\n\n"
        "We now share one transformation library between training and serving and compare "
        "logged online features with offline recomputations every day.",
    ),
    Story(
        "drift",
        "A silent upstream schema change degraded our fraud model",
        "Zeta Payments",
        "blog",
        2023,
        "An upstream team renamed a column; the fraud model received nulls for weeks.",
        ("data-pipeline", "ml-model"),
        ("bad-predictions",),
        1,
        "live",
        "A partner team renamed the merchant_category column in their export. Our ingestion "
        "job did not validate the schema and filled the missing field with nulls.\n\n"
        "The fraud model treated every transaction as an unknown merchant category and its "
        "recall slowly decayed over three weeks. Chargebacks rose before the metrics did.\n\n"
        "Data contracts and schema validation now block the pipeline when a column disappears.",
    ),
    Story(
        "gpuoom",
        "CUDA out of memory after upgrading the training image",
        "Eta AI",
        "blog",
        2023,
        "A new base image changed the allocator and large batches no longer fit on the GPU.",
        ("gpu", "training"),
        ("failed-jobs",),
        1,
        "redirected",
        "After we upgraded the PyTorch base image every large training run crashed with "
        "CUDA out of memory on the first epoch.\n\n"
        "The new version enabled a different caching allocator setting and fragmentation left "
        "no contiguous block for the activations of our largest batch size.\n\n"
        "We pinned the allocator configuration, added gradient checkpointing and a memory "
        "smoke test to the image build.",
    ),
    Story(
        "nccl",
        "Distributed training jobs hung on NCCL all-reduce",
        "Theta Research",
        "postmortem",
        2022,
        "One bad InfiniBand link made multi-node training hang without errors.",
        ("gpu", "training", "networking"),
        ("delay", "failed-jobs"),
        1,
        "live",
        "Multi-node training jobs stopped making progress while every GPU showed full "
        "utilisation. No process crashed and no error was logged.\n\n"
        "A flapping InfiniBand link on one host made the NCCL all-reduce wait forever. The "
        "collective timeout was disabled, so the job burned a week of cluster time.\n\n"
        "We set NCCL timeouts, run a bandwidth test before each job and drain hosts with "
        "link errors.",
    ),
    Story(
        "certexpiry",
        "x509: certificate has expired — our internal CA outage",
        "Iota Bank",
        "postmortem",
        2020,
        "An intermediate certificate of the internal CA expired at midnight.",
        ("tls", "kubernetes"),
        ("outage",),
        2,
        "live",
        "At midnight UTC the intermediate certificate of our internal certificate authority "
        "expired. Every service calling the Kubernetes API server failed with x509: "
        "certificate has expired or is not yet valid.\n\n"
        "Renewal was a manual yearly task and the engineer who owned it had left. Restoring "
        "service took six hours because the new certificate had to be rolled to every node.\n\n"
        "cert-manager now renews certificates automatically and we alert thirty days before "
        "any expiry.",
        involved=("internal CA",),
        impact=("outage",),
    ),
    Story(
        "letsencrypt",
        "The Let's Encrypt root expiry broke old clients",
        "Kappa Media",
        "blog",
        2021,
        "DST Root CA X3 expired and devices with old trust stores refused our HTTPS API.",
        ("tls",),
        ("outage",),
        1,
        "archived",
        "When the DST Root CA X3 certificate expired, older Android phones and embedded "
        "devices with outdated trust stores could no longer validate our chain.\n\n"
        "OpenSSL 1.0.2 also failed because it chose the expired cross-signed path instead of "
        "the valid ISRG Root X1.\n\n"
        "We served the short chain, updated client libraries and documented which devices "
        "could not be fixed.",
    ),
    Story(
        "terraform",
        "Terraform apply destroyed the production database",
        "Lambda Retail",
        "postmortem",
        2018,
        "A renamed resource made Terraform replace the primary database.",
        ("terraform", "database"),
        ("data-loss", "outage"),
        2,
        "dead",
        "Renaming a module in our infrastructure code changed the resource address of the "
        "primary PostgreSQL instance.\n\n"
        "The plan showed destroy and create among hundreds of lines, the reviewer missed it, "
        "and apply deleted the instance together with its automated backups.\n\n"
        "We restored from a logical dump that was eleven hours old. prevent_destroy and "
        "policy checks on plans now guard stateful resources.",
    ),
    Story(
        "lifecycle",
        "A lifecycle rule deleted our model artifacts",
        "Mu Analytics",
        "blog",
        2022,
        "An S3 lifecycle policy expired the bucket prefix that held production models.",
        ("storage", "ml-model"),
        ("data-loss",),
        1,
        "live",
        "To save costs someone added an S3 lifecycle rule expiring objects older than ninety "
        "days under the artifacts prefix.\n\n"
        "The production models lived under the same prefix. When a pod restarted, the serving "
        "container could not download its model and the recommendation service went dark.\n\n"
        "Artifacts now live in a versioned bucket with object lock, and the registry checks "
        "that every deployed model is still downloadable.",
    ),
    Story(
        "airflow",
        "Airflow scheduler deadlock stalled every pipeline",
        "Nu Data",
        "blog",
        2021,
        "Database row locks between two schedulers stopped all DAG runs overnight.",
        ("airflow", "data-pipeline"),
        ("delay",),
        1,
        "live",
        "We ran two Airflow schedulers for high availability on a MySQL metadata database.\n\n"
        + "\n\n".join(
            f"At {hour} o'clock the scheduler log showed the same deadlock error on the "
            f"task_instance table again; DAG runs queued up, the morning reports for team "
            f"{name} were not produced and the on-call engineer restarted the scheduler pods."
            for hour, name in [
                ("one", "finance"),
                ("two", "growth"),
                ("three", "search"),
                ("four", "ads"),
                ("five", "support"),
                ("six", "risk"),
            ]
        )
        + "\n\nMoving the metadata database to PostgreSQL, which Airflow's scheduler HA "
        "relies on for row-level locking with SKIP LOCKED, ended the deadlocks.",
    ),
    Story(
        "pgpool",
        "Connection pool exhaustion took down checkout",
        "Xi Shop",
        "postmortem",
        2019,
        "A slow query held connections until the pool was empty and checkout timed out.",
        ("database",),
        ("outage",),
        2,
        "live",
        "A new report query without an index ran inside the checkout service's transaction.\n\n"
        "Each request held a PostgreSQL connection for seconds, the pool of fifty connections "
        "emptied, and checkout requests waited for a connection until they timed out.\n\n"
        "We moved reporting to a replica, set statement timeouts and alert on pool wait time.",
    ),
    Story(
        "canary",
        "A bad model rollout without a canary",
        "Omicron Travel",
        "postmortem",
        2024,
        "A ranking model with a broken feature went to all traffic at once.",
        ("ml-model", "deployment"),
        ("bad-predictions", "revenue-loss"),
        1,
        "live",
        "A new ranking model passed offline evaluation but one feature was missing at serving "
        "time and defaulted to zero.\n\n"
        "It was deployed to all traffic at once. Conversion fell by twelve percent within an "
        "hour and the rollback took another hour because the previous model version had been "
        "garbage collected.\n\n"
        "Models now roll out through shadow traffic and a one percent canary with automatic "
        "rollback on business metrics.",
    ),
    Story(
        "removed",
        "DNS conntrack race, the sequel (removed from the lists)",
        "Old Blog",
        "blog",
        2017,
        "A story that was removed from every list.",
        ("dns",),
        ("latency",),
        2,
        "live",
        "DNS conntrack race five second timeouts glibc conntrack conntrack conntrack.",
        removed=True,
    ),
)

STORY_IDS = tuple(s.id for s in STORIES if not s.removed)

# (query, expected first story) — keyword-friendly queries sharing words with the story
KEYWORD_QUERIES: tuple[tuple[str, str], ...] = (
    ("lost logs fluent-bit", "fluentbit"),
    ("conntrack dns timeout", "conntrack"),
    ("x509: certificate has expired", "certexpiry"),
    ("CUDA out of memory", "gpuoom"),
    ("feature store skew", "skew"),
    ("terraform destroyed database", "terraform"),
    ("lifecycle rule deleted artifacts", "lifecycle"),
    ("airflow scheduler deadlock", "airflow"),
    ("NCCL all-reduce hang", "nccl"),
    ("ndots resolv.conf", "ndots"),
    ("kafka consumer lag retention", "logstash"),
    ("connection pool exhausted", "pgpool"),
    ("canary rollout ranking model", "canary"),
    ("schema change fraud model", "drift"),
    ("Let's Encrypt root expiry", "letsencrypt"),
)

# (query, expected first story) — paraphrases sharing no word with the expected story
PARAPHRASE_QUERIES: tuple[tuple[str, str], ...] = (
    ("accelerator VRAM exhausted during deep-learning", "gpuoom"),
    ("in-house PKI signing credential lapsed; cluster control plane unreachable", "certexpiry"),
    ("cron-like workflow orchestrator froze; nightly jobs stuck", "airflow"),
    ("provisioning tool erased live Postgres by accident", "terraform"),
)

# story -> its closest topical neighbour, for similar()
NEIGHBOURS: tuple[tuple[str, str], ...] = (
    ("fluentbit", "logstash"),
    ("conntrack", "ndots"),
    ("certexpiry", "letsencrypt"),
    ("gpuoom", "nccl"),
)


def kb_settings(db_path: Path, **changes: object) -> Settings:
    """Settings for the test knowledge base: short passages so stories have several."""
    base = Settings(db_path=db_path, quiet=True, passage_tokens=96, passage_overlap_tokens=16)
    return base.with_(**changes) if changes else base


def build_kb(path: Path, stories: tuple[Story, ...] = STORIES) -> sqlite_utils.Database:
    """Write sources, stories, list entries, pages and documents for `stories` into `path`."""
    db = open_db(path)
    now = utcnow()
    with db.conn:
        for source_id, name in SOURCES.items():
            db["sources"].insert(
                {"id": source_id, "name": name, "location": f"https://example.org/{name}.md"}
            )
        for line, story in enumerate(stories, start=1):
            url = f"https://example.org/{story.id}"
            db["stories"].insert(
                {
                    "id": story.id,
                    "url": url,
                    "canonical_url": url,
                    "category": "failure story",
                    "title": story.title,
                    "publisher": story.publisher,
                    "kind": story.kind,
                    "year": story.year,
                    "summary": story.summary,
                    "components": json.dumps(list(story.components)),
                    "impacts": json.dumps(list(story.impacts)),
                    "first_seen": now,
                    "last_seen": now,
                    "removed_at": now if story.removed else None,
                }
            )
            db["story_sources"].insert(
                {
                    "story_id": story.id,
                    "source_id": story.source,
                    "occurrence": 0,
                    "line": line,
                    "list_url": url,
                    "list_title": story.title,
                    "list_involved": json.dumps(list(story.involved)),
                    "list_impact": json.dumps(list(story.impact)),
                    "first_seen": now,
                    "last_seen": now,
                }
            )
            db["pages"].insert({"story_id": story.id, "url": url, "link_status": story.link_status})
            db["documents"].insert(
                {
                    "story_id": story.id,
                    "title": story.title,
                    "text": story.text,
                    "word_count": len(story.text.split()),
                }
            )
    return db


# (query, expected first story) — how an engineer might actually type it: some words shared with
# the story, some with other stories, some with none
NATURAL_QUERIES: tuple[tuple[str, str], ...] = (
    ("logs missing after elasticsearch was down", "fluentbit"),
    ("dns lookups take 5 seconds", "conntrack"),
    ("model predictions wrong because features computed differently offline", "skew"),
    ("training crashed with memory error after upgrade", "gpuoom"),
    ("api server certificate expired", "certexpiry"),
    ("accidentally deleted production database", "terraform"),
    ("s3 deleted our models", "lifecycle"),
    ("pipelines stuck because scheduler locked up", "airflow"),
    ("ran out of database connections", "pgpool"),
    ("bad model shipped to all users at once", "canary"),
    ("multi-node training stuck with no errors", "nccl"),
    ("too many dns queries because of search domains", "ndots"),
    ("upstream column renamed broke the model", "drift"),
    ("old android devices fail https after root certificate expired", "letsencrypt"),
    ("log events lost because consumers lagged", "logstash"),
)

# (query, expected first story) — exact identifiers and error strings, where words beat meaning
IDENTIFIER_QUERIES: tuple[tuple[str, str], ...] = (
    ("mem_buf_limit", "fluentbit"),
    ("fluentbit_input_paused", "fluentbit"),
    ("single-request-reopen", "conntrack"),
    ("SKIP LOCKED", "airflow"),
    ("prevent_destroy", "terraform"),
    ("ISRG Root X1", "letsencrypt"),
    ("merchant_category", "drift"),
    ("grok dissect", "logstash"),
    ("NXDOMAIN", "ndots"),
    ("InfiniBand", "nccl"),
    ("gradient checkpointing", "gpuoom"),
    ("object lock versioned bucket", "lifecycle"),
)
