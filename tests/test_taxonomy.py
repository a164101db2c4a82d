"""data/taxonomy.toml and the matcher in mlopsmortem.tagging.taxonomy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.tagging.taxonomy import (
    CATEGORIES,
    Taxonomy,
    TaxonomyError,
    find_mentions,
    load_taxonomy,
    map_list_item,
)
from mlopsmortem.tagging.taxonomy_types import TagMatch

from .conftest import REPO_ROOT, SHARED_CORPUS

TAXONOMY_FILE = REPO_ROOT / "data" / "taxonomy.toml"
K8S_LIST = SHARED_CORPUS / "lists" / "k8s-failure-stories.md"

REQUIRED_COMPONENTS = (
    "fluent-bit, Fluentd, Elasticsearch, Loki, Prometheus, Grafana, Kubernetes, EKS, GKE, Helm, "
    "Istio, CoreDNS, DNS, etcd, conntrack, nginx, Airflow, Kubeflow, MLflow, Feast, Spark, Kafka, "
    "Redis, PostgreSQL, MySQL, S3, SageMaker, Triton, KServe, Seldon, BentoML, vLLM, DVC, "
    "Argo Workflows, Terraform, Jenkins, GitHub Actions, BGP, TLS certificates, Let's Encrypt, "
    "Vault, GPU, NVIDIA driver, Ray, Jupyter, Docker, Celery, BigQuery, Snowflake, dbt, "
    "Great Expectations, Datadog, PagerDuty"
).split(", ")

REQUIRED_IMPACTS = {
    "outage",
    "partial-outage",
    "lost-logs",
    "data-loss",
    "data-corruption",
    "elevated-latency",
    "elevated-error-rate",
    "model-degradation",
    "wrong-predictions",
    "cost-overrun",
    "security-breach",
    "failed-deployment",
    "capacity-exhaustion",
    "lost-engineering-time",
}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(TAXONOMY_FILE)


def tags(matches: list[TagMatch]) -> list[str]:
    return [m.tag for m in matches]


# --- the shipped taxonomy ---------------------------------------------------------------------


def test_shipped_taxonomy_has_enough_components_and_every_required_tag(taxonomy: Taxonomy) -> None:
    assert len(taxonomy.components) >= 110
    names = {c.name for c in taxonomy.components}
    assert [n for n in REQUIRED_COMPONENTS if n not in names] == []
    ids = {i.id for i in taxonomy.impacts}
    assert REQUIRED_IMPACTS <= ids
    assert {c.category for c in taxonomy.components} == set(CATEGORIES)


def test_every_impact_has_a_name_a_description_for_embedding_and_aliases(
    taxonomy: Taxonomy,
) -> None:
    for impact in taxonomy.impacts:
        assert impact.name and impact.aliases, impact.id
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", impact.description) if s]
        assert 2 <= len(sentences) <= 3, impact.id


def test_lookups_by_name_and_id(taxonomy: Taxonomy) -> None:
    component = taxonomy.component("coredns")
    assert component is not None and component.name == "CoreDNS"
    assert component.category == "networking and DNS"
    impact = taxonomy.impact("lost-logs")
    assert impact is not None and impact.name == "Lost logs"
    assert taxonomy.component("no such thing") is None
    assert taxonomy.impact("no-such-impact") is None


def test_matcher_is_built_once_per_taxonomy_instance(taxonomy: Taxonomy) -> None:
    assert taxonomy.matcher is taxonomy.matcher
    assert load_taxonomy(TAXONOMY_FILE).matcher is not taxonomy.matcher


# --- running text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # spelling variants of one alias
        ("We switched from fluent-bit to Fluentd", ["fluent-bit", "Fluentd"]),
        ("Fluent Bit tails the container logs", ["fluent-bit"]),
        ("the fluentbit daemonset", ["fluent-bit", "DaemonSet"]),
        ("FluentBit buffers filled up", ["fluent-bit"]),
        ("CoreDNS-autoscaler added replicas", ["CoreDNS"]),
        ("all Ingresses returned 404", ["ingress"]),
        ("Let’s Encrypt rate limits", ["Let's Encrypt", "rate limiting"]),
        # Spark: case-sensitive, whole words only
        ("The change sparked a long debate", []),
        ("sparkling water in the office", []),
        ("Sparked by a config push, the outage", ["configuration changes", "outage"]),
        ("Our Spark job wrote empty partitions", ["Spark"]),
        ("PySpark UDFs were slow", ["Spark"]),
        # Ray: bare "Ray" is list-only; prose needs a context word
        ("a ray of hope after the incident", []),
        ("AWS X-Ray traces showed the delay", ["AWS X-Ray"]),
        ("the x-ray of the system", []),
        ("We run Ray on Kubernetes", ["Kubernetes"]),
        ("the Ray cluster lost its head node", ["Ray"]),
        ("Ray Serve replicas were restarted", ["Ray Serve"]),
        # Go: only with context
        ("Go to the dashboard and click retry", ["retries"]),
        ("we had to go back and look", []),
        ("a Golang service leaking goroutines", ["Go", "Go"]),
        ("the Go runtime did not respect the CPU limit", ["Go", "CPU throttling"]),
        # Helm
        ("with Jane at the helm of the team", []),
        ("At the Helm: a leadership story", []),
        ("a helm upgrade rolled back the release", ["Helm", "failed-deployment"]),
        ("the Helm chart pinned an old image", ["Helm"]),
        # Triton, Feast, Vault, Loki
        ("Triton Inference Server ran out of GPU memory", ["Triton", "GPU"]),
        ("we wrote custom Triton kernels for attention", []),
        ("a feast for the eyes", []),
        ("Feast materialization wrote nothing", ["Feast"]),
        ("the bank vault was sealed", []),
        ("HashiCorp Vault tokens expired", ["Vault"]),
        ("Loki ingesters were overloaded", ["Loki", "capacity-exhaustion"]),
        # longest match wins
        ("Argo Workflows controller crashed", ["Argo Workflows"]),
        ("Argo CD kept syncing the old manifest", ["Argo CD"]),
        ("the AWS VPC CNI ran out of IPs", ["AWS VPC CNI"]),
        ("a generic CNI plugin", ["CNI"]),
        ("Google Kubernetes Engine upgraded the masters", ["GKE"]),
        # short aliases keep their case
        ("DNS lookups timed out", ["DNS"]),
        ("gke and eks in lower case are not names", []),
        ("artifacts in S3 and GCS", ["S3", "GCS"]),
        ("the s3 prefix", []),
        ("dbt models and DBT tests", ["dbt", "dbt"]),
        ("logged to W&B", ["Weights & Biases"]),
        # other false friends
        ("a Kafkaesque approval process", []),
        ("the snowflake servers nobody dared touch", []),
        ("just the tip of the iceberg", []),
        ("things were in flux for weeks", []),
        ("sorted with lambda x: x[1]", []),
        ("a dataflow analysis of the code", []),
        ("OpenAI Triton compiled it in seconds", []),
        ("the Go GC paused for 300ms", ["Go"]),
        # alias words must be close together
        ("fluent" + " " * 20 + "bit", []),
        ("fluent\n  bit", ["fluent-bit"]),
        # links are not mentions
        ("see https://github.com/helm/helm/issues/1 for details", []),
        # impacts in prose
        ("pods were OOMKilled and requests saw 502 errors", ["OOM killer", "elevated-error-rate"]),
        ("we lost application logs for three days", ["lost-logs"]),
    ],
)
def test_find_mentions(taxonomy: Taxonomy, text: str, expected: list[str]) -> None:
    assert tags(find_mentions(taxonomy, text)) == expected


def test_mentions_carry_alias_and_span(taxonomy: Taxonomy) -> None:
    text = "Then the Kubernetes API server and Ray Serve failed."
    matches = find_mentions(taxonomy, text)
    assert [(m.kind, m.tag, text[m.start : m.end]) for m in matches] == [
        ("component", "API server", "Kubernetes API server"),
        ("component", "Ray Serve", "Ray Serve"),
    ]
    assert matches[0].alias == "Kubernetes API server"
    starts = [m.start for m in matches]
    assert starts == sorted(starts)


# --- curated list items ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("AWS CNI Plugin", ["AWS VPC CNI"]),
        ("Amazon VPC CNI plugin", ["AWS VPC CNI"]),
        ("`--kube-api-qps`", ["kubelet"]),
        ("CoreDNS-autoscaler", ["CoreDNS"]),
        ("`NotReady` nodes", ["Kubernetes nodes"]),
        ("API server `OOMKill`", ["API server", "OOM killer"]),
        ("fluentd-sumologic", ["Fluentd", "Sumo Logic"]),
        ("IPVS conntrack", ["IPVS", "conntrack"]),
        ("`ndots:5`", ["DNS"]),
        ("`latest` tag", ["container images"]),
        ("`LoadBalancer` service", ["Kubernetes Service"]),
        ('"graceful shutdown"', ["graceful shutdown"]),
        ("CPU Limit", ["CPU throttling"]),
        ("Alpine musl libc", ["Linux distributions", "libc"]),
        ("Ray", ["Ray"]),
        ("Go", ["Go"]),
        ("Golang templating", ["Go", "YAML"]),
        ("Jobs", ["Kubernetes Job"]),
        ("scheduler", ["kube-scheduler"]),
        ("DNS `A` record for master", ["DNS"]),
        ("airflow 1.10 scheduler", ["Airflow"]),
        ("A100s", ["GPU"]),
        ("missing logs", ["lost-logs"]),
        ("latency", ["elevated-latency"]),
        ("high error rate on network-heavy services", ["elevated-error-rate"]),
        ("partial production outage", ["partial-outage"]),
        ("major production outage", ["outage"]),
        ("stuck deployment", ["failed-deployment"]),
        ("developers' time spent", ["lost-engineering-time"]),
        ("delay of 1-3 seconds for outgoing TCP connections", ["elevated-latency", "TCP"]),
        ("occasional 502 errors", ["elevated-error-rate"]),
        ("5XXs thrown from some services", ["elevated-error-rate"]),
        ("DNS errors", ["DNS", "elevated-error-rate"]),
        ("insufficient cluster capacity in testing environments", ["capacity-exhaustion"]),
        ("no impact on end users", ["no-user-impact"]),
        ("lost application logs in production", ["lost-logs"]),
        ("unknown", []),
        ("browser tabs", []),
    ],
)
def test_map_list_item(taxonomy: Taxonomy, item: str, expected: list[str]) -> None:
    assert tags(map_list_item(taxonomy, item)) == expected


def test_list_item_spans_point_into_the_original_text(taxonomy: Taxonomy) -> None:
    item = "`--kube-api-qps`"
    [match] = map_list_item(taxonomy, item)
    assert item[match.start : match.end] == "kube-api-qps"
    [whole] = map_list_item(taxonomy, "  `Helm` ")
    assert (whole.tag, whole.start, whole.end) == ("Helm", 3, 7)


def test_list_items_report_each_tag_once(taxonomy: Taxonomy) -> None:
    assert tags(map_list_item(taxonomy, "Alias IP VPC (VPC Native)")) == [
        "IP address management",
        "VPC",
    ]


def test_list_only_aliases_stay_out_of_running_text(taxonomy: Taxonomy) -> None:
    assert find_mentions(taxonomy, "Ray") == []
    assert find_mentions(taxonomy, "errors") == []
    assert tags(map_list_item(taxonomy, "errors")) == ["elevated-error-rate"]


# --- version and errors ------------------------------------------------------------------------

MINIMAL = """
[[component]]
name = "Spark"
category = "data processing"
aliases = ["PySpark"]
case_sensitive_aliases = ["Spark"]

[[impact]]
id = "outage"
name = "Outage"
description = "Down. For a while."
aliases = ["downtime"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "taxonomy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    first = load_taxonomy(path)
    assert re.fullmatch(r"[0-9a-f]{12}", first.version)
    assert load_taxonomy(path).version == first.version
    write(tmp_path, MINIMAL.replace('["PySpark"]', '["PySpark", "spark-submit"]'))
    changed = load_taxonomy(path)
    assert changed.version != first.version
    assert tags(find_mentions(changed, "spark-submit --master yarn")) == ["Spark"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[component]\nname = 'x'", "invalid TOML"),
        (
            MINIMAL + '\n[[component]]\nname = "spark"\ncategory = "data processing"\n',
            "duplicate component name 'spark'",
        ),
        (
            MINIMAL + '\n[[component]]\nname = "Flink"\ncategory = "data processing"\n'
            'aliases = ["pyspark"]\n',
            "alias 'pyspark' of component 'Flink' is already claimed by component 'Spark'",
        ),
        (
            MINIMAL + '\n[[component]]\nname = "Hadoop"\ncategory = "data processing"\n'
            'aliases = ["Down Time"]\n',
            "alias 'downtime' of impact 'outage' is already claimed by component 'Hadoop'",
        ),
        (
            MINIMAL + '\n[[impact]]\nid = "outage"\nname = "Again"\ndescription = "x. y."\n',
            "duplicate impact id 'outage'",
        ),
        (
            MINIMAL + '\n[[component]]\nname = "Foo"\ncategory = "databases"\n',
            "unknown category 'databases'",
        ),
        (MINIMAL + '\n[[component]]\nname = "Foo"\ncategory = "hardware"\nalias = []\n', "alias"),
        (MINIMAL + '\n[[component]]\ncategory = "hardware"\n', "`name` must be"),
        (MINIMAL.replace('id = "outage"', 'id = "Big Outage"'), "lowercase words"),
        (MINIMAL + "\n[meta]\nx = 1\n", "unknown top-level keys: meta"),
    ],
)
def test_bad_taxonomy_files_raise_taxonomy_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, MlopsmortemError)


def test_missing_file_raises_taxonomy_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(TaxonomyError, match="cannot read taxonomy"):
        load_taxonomy(missing)


# --- coverage of a real curated list -----------------------------------------------------------


def list_items(text: str, field: str) -> list[str]:
    lines = re.findall(rf"^\s*[*-]\s*{field}:(.*)$", text, flags=re.MULTILINE)
    return [item.strip() for line in lines for item in line.split(",") if item.strip()]


@pytest.mark.parametrize("field", ["involved", "impact"])
def test_k8s_failure_stories_items_mostly_map(taxonomy: Taxonomy, field: str) -> None:
    if not K8S_LIST.is_file():
        pytest.skip(f"{K8S_LIST} not present")
    items = list_items(K8S_LIST.read_text(encoding="utf-8"), field)
    assert len(items) > 50
    unmapped = [item for item in items if not map_list_item(taxonomy, item)]
    coverage = 1 - len(unmapped) / len(items)
    print(f"{field}: {coverage:.1%} of {len(items)} items mapped; unmapped: {unmapped}")
    assert coverage >= 0.8
