"""Search evaluation queries of the demo corpus (written to ``queries.tsv``) and their checks.

``QUERIES`` holds each query with its graded relevant stories (2 = the answer, 1 = also
relevant) and its type (exact, paraphrase, topic); ``validate_queries`` refuses a
paraphrase that shares a content word with its answer's title, an exact term missing from
its answer or present in an unlisted article, and the like.
"""

from __future__ import annotations

import re

from demo_stories import DEAD_NO_SNAPSHOT_SLUG, Story

# --------------------------------------------------------------------------------------
# Queries (graded relevance: 2 = the answer, 1 = also relevant)
# --------------------------------------------------------------------------------------

QUERIES: list[tuple[str, list[str], str]] = [
    (
        "x509: certificate has expired",
        ["x509-certificate-expired-scoring-api:2", "lets-encrypt-root-expiry-telematics-devices:1"],
        "exact",
    ),
    (
        "ENOSPC",
        ["jenkins-enospc-docker-layers:2"],
        "exact",
    ),
    (
        "OOMKilled",
        ["fluentd-aggregators-crashloopbackoff:2", "prometheus-user-id-histogram-oom:2"],
        "exact",
    ),
    (
        "CrashLoopBackOff",
        ["fluentd-aggregators-crashloopbackoff:2", "helm-upgrade-stuck-pending-release:1"],
        "exact",
    ),
    (
        "mvcc: database space exceeded",
        ["etcd-space-quota-control-plane:2"],
        "exact",
    ),
    (
        "nf_conntrack",
        ["conntrack-table-full-five-second-delays:2"],
        "exact",
    ),
    (
        "ndots",
        ["coredns-ndots-search-domains:2"],
        "exact",
    ),
    (
        "allkeys-lru",
        ["redis-allkeys-lru-matchmaking-features:2"],
        "exact",
    ),
    (
        "OffsetOutOfRangeException",
        ["kafka-consumer-lag-retention-gps-events:2"],
        "exact",
    ),
    (
        "utf8mb4",
        ["mysql-utf8-silent-truncation:2"],
        "exact",
    ),
    (
        "pull_request_target",
        ["github-actions-debug-step-registry-token:2"],
        "exact",
    ),
    (
        "Xid 79",
        ["nvidia-driver-rollout-xid-79:2"],
        "exact",
    ),
    (
        "canaryTrafficPercent",
        ["kserve-canary-never-rolled-back:2"],
        "exact",
    ),
    (
        "fluent-bit",
        ["fluent-bit-full-buffer-missing-logs:2"],
        "exact",
    ),
    (
        "cluster_block_exception",
        ["elasticsearch-flood-stage-read-only:2"],
        "exact",
    ),
    (
        "NoSuchKey",
        ["mlflow-artifacts-s3-lifecycle-rule:2"],
        "exact",
    ),
    (
        "QUOTA_EXCEEDED",
        ["gke-node-auto-provisioning-gpu-quota:2"],
        "exact",
    ),
    (
        "dvc gc",
        ["dvc-gc-removed-only-remote-copy:2"],
        "exact",
    ),
    (
        "DST Root CA X3",
        ["lets-encrypt-root-expiry-telematics-devices:2"],
        "exact",
    ),
    (
        "model quietly got worse after someone changed how features are computed",
        ["spark-refactor-training-serving-skew:2"],
        "paraphrase",
    ),
    (
        "application output vanished after the shipper's on-disk queue hit its cap while the "
        "search cluster was down",
        ["fluent-bit-full-buffer-missing-logs:2", "elasticsearch-flood-stage-read-only:1"],
        "paraphrase",
    ),
    (
        "search cluster stopped accepting writes once storage was nearly full",
        ["elasticsearch-flood-stage-read-only:2"],
        "paraphrase",
    ),
    (
        "online cache handed the ranking service outdated customer attributes",
        ["feast-ttl-stale-recommendations:2"],
        "paraphrase",
    ),
    (
        "clock change in spring caused a one-hour hole in insurance pricing inputs",
        ["feast-daylight-saving-materialization:2"],
        "paraphrase",
    ),
    (
        "inference server could not load a bigger detection network onto the accelerator card",
        ["triton-new-model-cuda-out-of-memory:2"],
        "paraphrase",
    ),
    (
        "inputs arrived shuffled so the scores were nonsense",
        ["seldon-column-order-fraud-model:2"],
        "paraphrase",
    ),
    (
        "chat assistant answers slowed to a crawl when customers pasted huge documents",
        ["vllm-long-prompts-p99-tripled:2"],
        "paraphrase",
    ),
    (
        "object expiry policy in cloud storage wiped trained weights the registry pointed to",
        ["mlflow-artifacts-s3-lifecycle-rule:2"],
        "paraphrase",
    ),
    (
        "cluster control plane refused writes after its key-value store filled up",
        ["etcd-space-quota-control-plane:2"],
        "paraphrase",
    ),
    (
        "worker machines evicted simultaneously during a version bump",
        ["managed-node-group-upgrade-drained-everything:2"],
        "paraphrase",
    ),
    (
        "a stranger mined cryptocurrency on our notebook machine",
        ["open-jupyter-server-cryptominer:2"],
        "paraphrase",
    ),
    (
        "labelled medical scans were readable by anyone on the internet",
        ["public-s3-bucket-training-images:2"],
        "paraphrase",
    ),
    (
        "a secret leaked into continuous integration output anyone could read",
        ["github-actions-debug-step-registry-token:2"],
        "paraphrase",
    ),
    (
        "someone else's more specific announcements pulled our packets away so customers "
        "couldn't reach us",
        ["bgp-route-leak-inference-prefixes:2"],
        "paraphrase",
    ),
    (
        "GPU machines kept billing for weeks after the experiments finished",
        ["idle-accelerators-elastic-ray-clusters:2"],
        "paraphrase",
    ),
    (
        "demand forecast overshot because duplicate rows inflated past orders",
        ["dbt-incremental-without-unique-key:2"],
        "paraphrase",
    ),
    (
        "nobody got woken up because notifications went to a disbanded group",
        ["alerts-routed-to-disbanded-team:2"],
        "paraphrase",
    ),
    (
        "sentences containing smiley characters were chopped off before we trained on them",
        ["mysql-utf8-silent-truncation:2"],
        "paraphrase",
    ),
    (
        "clients kept resolving the previous address well after we switched datacentres",
        ["dns-ttl-region-failover:2"],
        "paraphrase",
    ),
    (
        "we ignored failing validation warnings and the staffing forecast came out far too low",
        ["muted-data-checks-half-empty-tables:2"],
        "paraphrase",
    ),
    (
        "lost logs fluent-bit",
        [
            "fluent-bit-full-buffer-missing-logs:2",
            "fluentd-aggregators-crashloopbackoff:1",
            "loki-request-id-label-streams:1",
            "elasticsearch-flood-stage-read-only:1",
        ],
        "topic",
    ),
    (
        "dns timeouts in kubernetes",
        ["conntrack-table-full-five-second-delays:2", "coredns-ndots-search-domains:2"],
        "topic",
    ),
    (
        "feature store serving stale or missing features",
        [
            "feast-ttl-stale-recommendations:2",
            "feast-daylight-saving-materialization:2",
            "redis-allkeys-lru-matchmaking-features:1",
        ],
        "topic",
    ),
    (
        "logging pipeline dropping data",
        [
            "fluent-bit-full-buffer-missing-logs:2",
            "fluentd-aggregators-crashloopbackoff:2",
            "loki-request-id-label-streams:2",
            "elasticsearch-flood-stage-read-only:2",
        ],
        "topic",
    ),
    (
        "expired TLS certificate outage",
        ["x509-certificate-expired-scoring-api:2", "lets-encrypt-root-expiry-telematics-devices:2"],
        "topic",
    ),
    (
        "GPU out of memory in model serving",
        ["triton-new-model-cuda-out-of-memory:2", "vllm-long-prompts-p99-tripled:1"],
        "topic",
    ),
    (
        "kafka consumer lag data loss",
        ["kafka-consumer-lag-retention-gps-events:2"],
        "topic",
    ),
    (
        "training data deleted from object storage",
        ["dvc-gc-removed-only-remote-copy:2", "mlflow-artifacts-s3-lifecycle-rule:1"],
        "topic",
    ),
    (
        "airflow scheduler stuck",
        ["airflow-scheduler-database-deadlock:2"],
        "topic",
    ),
    (
        "kubernetes control plane outage",
        ["etcd-space-quota-control-plane:2", "stale-terraform-plan-destroyed-cluster:1"],
        "topic",
    ),
    (
        "model registry unavailable",
        ["postgres-wraparound-model-registry:2", "mlflow-artifacts-s3-lifecycle-rule:1"],
        "topic",
    ),
    (
        "cost overrun from idle GPUs",
        ["idle-accelerators-elastic-ray-clusters:2", "open-jupyter-server-cryptominer:1"],
        "topic",
    ),
    (
        "prometheus high cardinality labels",
        ["prometheus-user-id-histogram-oom:2", "loki-request-id-label-streams:1"],
        "topic",
    ),
    (
        "secret exposure in github actions",
        ["github-actions-debug-step-registry-token:2"],
        "topic",
    ),
    (
        "sagemaker endpoint autoscaling latency",
        ["sagemaker-endpoint-autoscaling-too-late:2"],
        "topic",
    ),
]

STOPWORDS = set(
    """a an the and or of to in on at for from by with without after before our we us
    our your my their its it is was were be been being that this these those into over
    under about as than then when while why how what who which not no nobody all every
    one two three five seven got get had has have did do does out up down off so too
    very just only also still ever never against between during once""".split()
)


def content_words(text: str) -> set[str]:
    words = set()
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        for suf in ("ing", "ed", "es", "s"):
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)]
                break
        words.add(w)
    return words


def validate_queries(stories: list[Story], final: bool = True) -> list[str]:
    errors: list[str] = []
    by_slug = {s.slug: s for s in stories if not s.is_video}
    types: dict[str, int] = {}
    seen = set()
    for query, rel_pairs, qtype in QUERIES:
        relevant = " ".join(rel_pairs)
        types[qtype] = types.get(qtype, 0) + 1
        if query in seen:
            errors.append(f"duplicate query {query!r}")
        seen.add(query)
        if qtype not in ("paraphrase", "exact", "topic"):
            errors.append(f"{query!r}: bad type")
        pairs = [p.rsplit(":", 1) for p in relevant.split()]
        if not any(g == "2" for _, g in pairs):
            errors.append(f"{query!r}: needs a grade-2 answer")
        for slug, grade in pairs:
            if slug not in by_slug:
                errors.append(f"{query!r}: unknown slug {slug}")
            elif slug == DEAD_NO_SNAPSHOT_SLUG:
                errors.append(f"{query!r}: {slug} is not retrievable")
            if grade not in ("1", "2"):
                errors.append(f"{query!r}: bad grade {grade}")
        if qtype == "paraphrase":
            qw = content_words(query)
            for slug, grade in pairs:
                if grade == "2" and slug in by_slug:
                    shared = qw & content_words(by_slug[slug].title)
                    if shared:
                        errors.append(f"{query!r}: shares {sorted(shared)} with title of {slug}")
        if qtype == "exact":
            needle = query.lower()
            listed = {slug for slug, _ in pairs}
            for slug, grade in pairs:
                if grade == "2" and slug in by_slug:
                    text = (by_slug[slug].title + "\n" + by_slug[slug].body).lower()
                    if needle not in text:
                        errors.append(f"{query!r}: exact term not in {slug}")
            for slug, s in by_slug.items():
                if slug == DEAD_NO_SNAPSHOT_SLUG:
                    continue
                if needle in (s.title + "\n" + s.body).lower() and slug not in listed:
                    errors.append(f"{query!r}: {slug} contains the term but is not listed")
    if not final:
        return errors
    if len(QUERIES) < 36:
        errors.append(f"only {len(QUERIES)} queries")
    if types.get("paraphrase", 0) < 10 or types.get("exact", 0) < 10:
        errors.append(f"query types {types}")
    return errors
