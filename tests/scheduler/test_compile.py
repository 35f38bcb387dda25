"""Compiling API dicts: Karmada's field names in, clear field-path errors out."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flotilla.resources.quantity import integer_amount
from flotilla.scheduler import (
    PlacementError,
    Taint,
    WorkloadInfo,
    compile_cluster,
    compile_placement,
    compile_requests,
    compile_workload,
    current_targets,
    schedule,
    scheduled_condition,
    target_clusters,
)

# Karmada's samples/nginx/propagationpolicy.yaml, unchanged.
KARMADA_SAMPLE = """
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: nginx-propagation
spec:
  resourceSelectors:
    - apiVersion: apps/v1
      kind: Deployment
      name: nginx
  placement:
    clusterAffinity:
      clusterNames:
        - member1
        - member2
    replicaScheduling:
      replicaDivisionPreference: Weighted
      replicaSchedulingType: Divided
      weightPreference:
        staticWeightList:
          - targetCluster:
              clusterNames:
                - member1
            weight: 1
          - targetCluster:
              clusterNames:
                - member2
            weight: 1
"""


def cluster(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "labels": {"env": "prod"}},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "allocated": {"cpu": "1500m", "memory": "1Gi", "pods": "10"}},
    }


def test_karmada_sample_policy_applies_unchanged() -> None:
    policy = yaml.safe_load(KARMADA_SAMPLE)
    placement = compile_placement(policy["spec"]["placement"])
    clusters = [compile_cluster(cluster(n)) for n in ("member1", "member2", "member3")]
    result = schedule(WorkloadInfo("nginx", 2), placement, clusters)
    assert result.targets == (("member1", 1), ("member2", 1))
    assert result.cluster_reasons == {"member3": "excluded by affinity"}


@pytest.mark.parametrize(("spec", "message"), [
    ({"clusterAffinity": {"clusterNames": ["a"], "regions": ["x"]}},
     "spec.placement.clusterAffinity.regions: field not supported by the scheduler"),
    ({"spreadConstraints": [{"spreadByField": "rack"}]},
     "spec.placement.spreadConstraints[0].spreadByField: expected one of cluster, region, "
     "zone, provider, got 'rack'"),
    ({"spreadConstraints": [{"spreadByField": "region", "minGroups": 3, "maxGroups": 2}]},
     "spec.placement.spreadConstraints[0].maxGroups: must not be lower than minGroups"),
    ({"clusterAffinity": {"labelSelector": {"matchExpressions": [
        {"key": "env", "operator": "Near", "values": ["x"]}]}}},
     "spec.placement.clusterAffinity.labelSelector.matchExpressions[0].operator"),
    ({"clusterAffinity": {"fieldSelector": {"matchExpressions": [
        {"key": "city", "operator": "In", "values": ["x"]}]}}},
     "spec.placement.clusterAffinity.fieldSelector.matchExpressions[0].key"),
    ({"replicaScheduling": {"replicaSchedulingType": "Divided",
                            "weightPreference": {"dynamicWeight": "CPU"}}},
     "spec.placement.replicaScheduling.weightPreference.dynamicWeight"),
    ({"replicaScheduling": {"weightPreference": {"staticWeightList": [
        {"targetCluster": {}, "weight": 0}]}}},
     "spec.placement.replicaScheduling.weightPreference.staticWeightList[0].weight"),
    ({"clusterTolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
     "spec.placement.clusterTolerations[0].value"),
    ({"clusterAffinities": [{"clusterNames": ["a"]}]},
     "spec.placement.clusterAffinities: every group needs a distinct affinityName"),
])
def test_bad_placement_names_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PlacementError) as err:
        compile_placement(spec)
    assert str(err.value).startswith(message)


def test_cluster_object_compiles() -> None:
    info = compile_cluster(cluster("east", region="eu", zone="eu-1", provider="aws",
                                   taints=[{"key": "k", "effect": "NoExecute"}],
                                   unschedulable=True))
    assert (info.region, info.zone, info.provider, info.ready, info.unschedulable) == (
        "eu", "eu-1", "aws", True, True)
    assert info.taints == (Taint("k", "", "NoExecute"),)
    assert dict(info.free) == {"cpu": 2500, "memory": 7 * 2**30, "pods": 100}
    assert dict(info.labels) == {"env": "prod"}
    not_ready = cluster("x")
    not_ready["status"]["conditions"][0]["status"] = "Unknown"
    assert not compile_cluster(not_ready).ready


def test_workload_requests_sum_containers_and_bound_the_estimate() -> None:
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"replicas": 6, "template": {"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "0.25"}}}]}}},
    }
    w = compile_workload(deploy, current=[("b", 2), ("a", 4)])
    assert (w.key, w.replicas, w.current) == ("Deployment/default/shop", 6,
                                              (("a", 4), ("b", 2)))
    assert dict(w.requests) == {"pods": 1, "cpu": 750, "memory": 2**30}
    placement = compile_placement({"replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}})
    # 2500m free / 750m = 3 replicas fit on each cluster: 6 needs two clusters.
    fresh = WorkloadInfo(w.key, 6, w.requests)
    result = schedule(fresh, placement, [compile_cluster(cluster(n)) for n in "abc"])
    assert result.targets == (("a", 3), ("b", 3))


@pytest.mark.parametrize(("value", "resource", "want"), [
    ("500m", "cpu", 500), ("2", "cpu", 2000), ("0.1", "cpu", 100), (1, "cpu", 1000),
    ("1Gi", "memory", 2**30), ("128M", "memory", 128 * 10**6), ("110", "pods", 110),
    ("1.5Ki", "memory", 1536), ("1m", "memory", 1),
])
def test_scheduler_units(value: Any, resource: str, want: int) -> None:
    assert integer_amount(resource, value) == want
    assert compile_requests({resource: value}, "status.allocatable") == {resource: want}


def test_unparsable_quantity_is_a_placement_error_naming_field_and_value() -> None:
    with pytest.raises(ValueError, match="cpu: invalid quantity 'lots'"):
        integer_amount("cpu", "lots")
    with pytest.raises(PlacementError,
                       match=r"^status.allocatable.cpu: invalid quantity 'lots'"):
        compile_requests({"cpu": "lots"}, "status.allocatable")


def test_binding_round_trip() -> None:
    placement = compile_placement({"replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"}})
    clusters = [compile_cluster(cluster(n)) for n in ("east", "west")]
    binding = {"spec": {"clusters": [{"name": "west", "replicas": 1},
                                     {"name": "east", "replicas": 2}]}}
    current = current_targets(binding)
    assert current == (("east", 2), ("west", 1))
    result = schedule(WorkloadInfo("w", 5, current=current), placement, clusters)
    assert target_clusters(result) == [{"name": "east", "replicas": 3},
                                       {"name": "west", "replicas": 2}]
    ok = scheduled_condition(result, "2026-01-01T00:00:00Z", 3)
    assert (ok["status"], ok["reason"], ok["observedGeneration"]) == ("True", "Success", 3)
    failed = schedule(WorkloadInfo("w", 1), compile_placement(
        {"clusterAffinity": {"clusterNames": ["north"]}}), clusters)
    condition = scheduled_condition(failed, "2026-01-01T00:00:00Z")
    assert (condition["status"], condition["reason"]) == ("False", "NoClusterFit")
    assert condition["message"] == "0/2 clusters available: 2 excluded by affinity"


def test_cluster_with_only_capacity_offers_it() -> None:
    obj = cluster("east")
    del obj["status"]["allocatable"]
    obj["status"]["capacity"] = {"cpu": "2", "pods": 20}
    assert dict(compile_cluster(obj).free) == {"cpu": 500, "pods": 10}
