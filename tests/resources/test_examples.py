"""The shop's policies validate as a user writes them, every kind has a model, and typed values read
as what the user meant (seconds, cores, bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.resources.kinds import KINDS
from flotilla.resources.models import (
    MODELS,
    Cluster,
    Deployment,
    RolloutPolicy,
    TrafficPolicy,
)
from flotilla.resources.validation import InvalidObject, parse_as, parse_typed, validate_object
from tests.resources.conftest import load_documents

EXAMPLES = Path(__file__).parent / "examples"
EVERY_KIND = load_documents(EXAMPLES / "every-kind.yaml")


def _errors(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidObject) as info:
        validate_object(obj)
    return {e.path: e.message for e in info.value.errors}


def test_the_shop_traffic_policy_applies_as_written() -> None:
    doc = load_documents(EXAMPLES / "shop-trafficpolicy.yaml")[0]
    assert validate_object(doc).kind == "TrafficPolicy"
    spec = parse_as(doc, TrafficPolicy).spec
    assert spec.strategy.type == "Locality"
    assert spec.strategy.hash_source == ("header", "x-user")
    assert spec.locality is not None
    assert spec.locality.failover == ["cn-east", "cn-south"]
    assert spec.health_check is not None
    assert (spec.health_check.interval, spec.health_check.timeout) == (1.0, 0.5)
    assert spec.outlier_detection is not None
    assert spec.outlier_detection.base_ejection_time == 10.0
    assert spec.retries.retry_on == ["connect-failure", "reset", "503"]
    assert (spec.timeouts.connect, spec.timeouts.per_try, spec.timeouts.total) == (1.0, 2.0, 5.0)


def test_the_shop_rollout_policy_applies_as_written() -> None:
    doc = load_documents(EXAMPLES / "shop-rolloutpolicy.yaml")[0]
    assert validate_object(doc).kind == "RolloutPolicy"
    spec = parse_as(doc, RolloutPolicy).spec
    assert [w.clusters or w.percent for w in spec.waves] == [["east-1"], 50, 100]
    assert spec.pause == 10.0
    assert spec.analysis is not None
    assert spec.analysis.max_p99_latency == 0.5
    assert spec.analysis.max_error_rate == 0.05
    assert spec.auto_rollback is True


def test_every_served_kind_has_a_model_and_an_example() -> None:
    assert set(MODELS) == {k.kind for k in KINDS}
    assert {d["kind"] for d in EVERY_KIND} == {k.kind for k in KINDS}


@pytest.mark.parametrize("doc", EVERY_KIND, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_typed_objects_dump_back_to_valid_input(doc: dict[str, Any]) -> None:
    validate_object(doc)
    typed = parse_typed(doc)
    dumped = typed.model_dump(mode="json", by_alias=True, exclude_none=True)
    validate_object(dumped)
    assert parse_typed(dumped) == typed


def test_typed_cluster_reads_health_and_capacity() -> None:
    doc = next(d for d in EVERY_KIND if d["kind"] == "Cluster")
    cluster = parse_as(doc, Cluster)
    assert cluster.ready
    assert cluster.status.last_heartbeat_time is not None
    assert cluster.status.last_heartbeat_time.tzinfo is not None
    assert cluster.spec.taints[0].effect == "NoExecute"


def test_typed_deployment_reads_quantities_and_keeps_unknown_fields() -> None:
    doc = next(d for d in EVERY_KIND if d["kind"] == "Deployment")
    doc = {**doc, "spec": {**doc["spec"], "progressDeadlineSeconds": 60}}
    dep = parse_as(doc, Deployment)
    container = dep.spec.template.spec.containers[0]
    assert container.resources.requests.cpu_millis == 100
    assert container.resources.limits.memory_bytes == 128 * 2**20
    assert container.env[0].value_from is not None
    assert container.env[0].value_from.config_map_key_ref is not None
    assert container.readiness_probe is not None
    assert container.readiness_probe.http_get is not None
    assert container.readiness_probe.http_get.port == "http"
    assert dep.spec.model_extra == {"progressDeadlineSeconds": 60}
    dumped = dep.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped["spec"]["progressDeadlineSeconds"] == 60


def test_parse_as_refuses_the_wrong_model() -> None:
    doc = load_documents(EXAMPLES / "shop-rolloutpolicy.yaml")[0]
    with pytest.raises(InvalidObject, match="expected TrafficPolicy, got RolloutPolicy"):
        parse_as(doc, TrafficPolicy)


def test_traffic_policy_mistakes() -> None:
    doc = load_documents(EXAMPLES / "shop-trafficpolicy.yaml")[0]
    doc["spec"]["strategy"] = {"type": "Fastest", "hashOn": "query:user"}
    doc["spec"]["retries"]["retryOn"] = ["connect-failure", 404]
    doc["spec"]["timeouts"]["perTry"] = "10s"
    doc["spec"]["hosts"] = ["shop example"]
    errors = _errors(doc)
    assert set(errors) == {"spec.strategy.type", "spec.strategy.hashOn",
                           "spec.retries.retryOn[1]", "spec.timeouts", "spec.hosts[0]"}
    assert errors["spec.strategy.hashOn"] == \
        "expected 'header:NAME', 'cookie:NAME' or 'source-ip', got 'query:user'"
    assert errors["spec.timeouts"] == "perTry must not be longer than total"


def test_rollout_policy_mistakes() -> None:
    doc = load_documents(EXAMPLES / "shop-rolloutpolicy.yaml")[0]
    doc["spec"]["waves"] = [{"clusters": ["a"], "percent": 10}, {}]
    errors = _errors(doc)
    assert errors["spec.waves[0]"].startswith("a wave needs exactly one of")
    assert "(got clusters, percent)" in errors["spec.waves[0]"]
    assert set(errors) == {"spec.waves[0]", "spec.waves[1]"}
    doc["spec"]["waves"] = [{"percent": 50}, {"percent": 20}]
    assert _errors(doc) == {
        "spec": "waves: percent is cumulative and must grow from wave to wave"}


def test_status_is_refused_on_kinds_without_one() -> None:
    doc = next(d for d in EVERY_KIND if d["kind"] == "EndpointSlice")
    assert _errors({**doc, "status": {}}) == {"status": "unknown field"}


def test_model_strictness_follows_the_kind_table() -> None:
    """Our kinds refuse unknown fields; Kubernetes manifests keep them (Kind.strict)."""
    for kind in KINDS:
        extra = MODELS[kind.kind].model_config.get("extra")
        assert extra == ("forbid" if kind.strict else "allow"), kind.kind


def test_kubectl_dry_run_output_with_nulls_is_accepted() -> None:
    doc = load_documents(EXAMPLES / "kubectl-dry-run-deployment.yaml")[0]
    assert validate_object(doc).kind == "Deployment"
    assert parse_as(doc, Deployment).spec.template.spec.containers[0].image == "shop:1"


def test_null_means_not_set_but_not_inside_lists() -> None:
    doc = load_documents(EXAMPLES / "shop-rolloutpolicy.yaml")[0]
    doc["metadata"]["labels"] = None
    doc["spec"]["analysis"]["maxP99Latency"] = None
    spec = parse_as(doc, RolloutPolicy).spec
    assert spec.analysis is not None
    assert spec.analysis.max_p99_latency is None
    doc["spec"]["waves"].append(None)
    assert _errors(doc) == {"spec.waves[3]": "expected an object, got null"}


def test_cluster_capacity_accepts_kubernetes_node_figures() -> None:
    doc = next(d for d in EVERY_KIND if d["kind"] == "Cluster")
    doc = {**doc, "status": {"capacity": {"cpu": 4, "memory": "8053040Ki", "pods": "110"}}}
    capacity = parse_as(doc, Cluster).status.capacity
    assert capacity is not None
    assert (capacity.cpu_millis, capacity.memory_bytes, capacity.pods) == (
        4000, 8053040 * 1024, 110)
    doc["status"]["capacity"]["pods"] = "lots"
    assert _errors(doc) == {
        "status.capacity.pods": "expected a non-negative integer, got 'lots'"}
