"""ResourceBinding, Work, EndpointSlice and TrafficPolicy views, built from the example
manifests as the API stores them (created and status-written through the registry over
a real SQLite file), and read-only all the way down."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from flotilla.api.registry import Registry
from flotilla.resources.conditions import Condition
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import (
    ClusterStatus,
    EndpointSliceView,
    EvictionTask,
    PolicyRef,
    ResourceBindingView,
    ResourceRef,
    SliceEndpoint,
    SlicePort,
    TargetCluster,
    TrafficPolicyView,
    WorkView,
    binding_of_label,
)
from tests.resources.conftest import load_documents
from tests.resources.stored import registry_at

EVERY_KIND = load_documents(Path(__file__).parent / "examples" / "every-kind.yaml")


def example(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in EVERY_KIND if d["kind"] == kind))


async def stored(registry: Registry, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as the store holds it after a create and, if it has one, a status write."""
    created = await registry.create(copy.deepcopy(doc))
    if "status" in doc and by_kind(doc["kind"]).has_status:
        created["status"] = copy.deepcopy(doc["status"])
        await registry.update_status(created)
    meta = created["metadata"]
    return await registry.get(by_kind(doc["kind"]), meta.get("namespace") or "", meta["name"])


async def test_binding_view_reads_the_stored_example(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored(registry, example("ResourceBinding"))
    view = ResourceBindingView.of(obj)
    assert (view.namespace, view.name, view.meta.generation) == \
        ("default", "shop-deployment", 1)
    assert view.resource == ResourceRef("apps/v1", "Deployment", "default", "shop", "5f0c")
    assert view.has_replicas
    assert view.policy == PolicyRef("PropagationPolicy", "default", "shop")
    assert view.replicas == 6
    assert dict(view.placement) == {"clusterAffinity": {"clusterNames": ["east-1", "south-1"]}}
    assert view.clusters == (TargetCluster("east-1", 4), TargetCluster("south-1", 2))
    assert dict(view.targets) == {"east-1": 4, "south-1": 2}
    (task,) = view.eviction_tasks
    assert task == EvictionTask("west-1", 2, "TaintUntolerated", "", "failover", "", False,
                                "2026-01-01T00:00:00Z", None)
    assert not task.released
    assert view.holding_tasks == (task,)
    assert view.evicting == frozenset({"west-1"})
    assert view.aggregated == (ClusterStatus("east-1", True, "Healthy", 4, 4, 0, None),)
    assert view.condition("Scheduled") == Condition("Scheduled", "True", "Success")
    assert view.condition("Failover") is None
    assert view.work_label == "default.shop-deployment"


def test_released_tasks_hold_nothing_but_still_keep_the_cluster_out() -> None:
    obj = example("ResourceBinding")
    obj["spec"]["gracefulEvictionTasks"] = [
        {"fromCluster": "a", "purgeMode": "Immediately"},
        {"fromCluster": "b", "purgeMode": "Directly", "gracePeriodSeconds": 30},
        {"fromCluster": "c", "purgeMode": "Graciously", "suppressDeletion": True}]
    view = ResourceBindingView.of(obj)
    assert [t.released for t in view.eviction_tasks] == [True, True, False]
    assert [t.from_cluster for t in view.holding_tasks] == ["c"]
    assert view.evicting == frozenset({"a", "b", "c"})
    assert view.eviction_tasks[1].grace_period_seconds == 30.0
    assert view.eviction_tasks[2].suppress_deletion


def test_a_service_binding_carries_no_replicas() -> None:
    obj = example("ResourceBinding")
    obj["spec"]["resource"]["kind"] = "Service"
    assert not ResourceBindingView.of(obj).has_replicas


async def test_work_view_reads_cluster_binding_and_statuses(tmp_path: Path) -> None:
    doc = example("Work")
    doc["metadata"]["labels"] = {"flotilla.io/binding": "default.shop-deployment"}
    doc["spec"]["workload"]["manifests"].append(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
         "spec": {"ports": [{"name": "http", "port": 80}]}})
    async with registry_at(tmp_path) as registry:
        obj = await stored(registry, doc)
    view = WorkView.of(obj)
    assert view.cluster == "east-1"
    assert view.binding == ("default", "shop-deployment")
    assert view.is_applied
    status = view.manifest_status("Deployment", "shop")
    assert status is not None
    assert (status.namespace, status.health, dict(status.status)) == \
        ("default", "Healthy", {"readyReplicas": 4})
    assert view.manifest_status("Deployment", "other") is None
    assert [s["metadata"]["name"] for s in view.services] == ["shop"]


def test_a_work_outside_an_execution_namespace_names_no_cluster_or_binding() -> None:
    obj = example("Work")
    obj["metadata"]["namespace"] = "default"
    obj["metadata"]["labels"] = {"flotilla.io/binding": "no-dot"}
    view = WorkView.of(obj)
    assert (view.cluster, view.binding) == ("", None)
    assert binding_of_label(None) is None
    assert binding_of_label("a.b.c") == ("a", "b.c")


async def test_endpoint_slice_view_reads_the_stored_example(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored(registry, example("EndpointSlice"))
    view = EndpointSliceView.of(obj)
    assert (view.meta.namespace, view.service, view.cluster, view.region, view.zone) == \
        ("default", "shop", "east-1", "cn-east", "cn-east-1a")
    assert view.ingress_address == "127.0.1.1"
    assert view.endpoints == (
        SliceEndpoint("127.0.0.1", True, "shop-abc", "cn-east-1a",
                      (SlicePort("http", 40001, "TCP"),)),
        SliceEndpoint("127.0.0.1", False, "shop-def", "", (SlicePort("http", 40002, "TCP"),)))
    assert view.ready_endpoints == view.endpoints[:1]
    assert view.endpoints[0].proxied_port == 40001


def test_only_ready_true_is_ready_and_udp_ports_are_not_proxied() -> None:
    obj = example("EndpointSlice")
    obj["spec"]["endpoints"] = [
        {"address": "127.0.0.1", "ready": "true", "ports": [{"port": 1}]},
        {"address": "127.0.0.2", "ready": True,
         "ports": [{"port": 53, "protocol": "udp"}, {"port": "x"}, {"port": 8080}]}]
    view = EndpointSliceView.of(obj)
    assert [e.ready for e in view.endpoints] == [False, True]
    assert view.endpoints[1].ports[0].protocol == "UDP"
    assert view.endpoints[1].ports[1].port is None
    assert view.endpoints[1].proxied_port == 8080


async def test_traffic_policy_view_reads_the_stored_example(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored(registry, example("TrafficPolicy"))
    view = TrafficPolicyView.of(obj)
    assert (view.ref, view.service, view.strategy) == \
        ("default/shop-weighted", "shop", "WeightedRoundRobin")
    assert view.hosts == ("shop.example.test", "*.shop.example.test")
    assert view.paths == ("/api", "/static")
    assert dict(view.weights) == {"east-1": 3, "south-1": 1}
    assert (view.weight_of("east-1"), view.weight_of("west-1")) == (3, 1)
    assert view.failover == ("cn-south",)
    assert dict(view.dns) == {"ttl": "30s", "strategy": "Failover"}


def test_weights_as_a_list_under_the_strategy_read_the_same() -> None:
    obj = example("TrafficPolicy")
    del obj["spec"]["weights"]
    obj["spec"]["strategy"]["weights"] = [{"cluster": "east-1", "weight": 3},
                                          {"name": "south-1", "weight": 0},
                                          {"cluster": "x", "weight": True}]
    assert dict(TrafficPolicyView.of(obj).weights) == {"east-1": 3, "south-1": 0}


@pytest.mark.parametrize("kind", ["ResourceBinding", "Work", "EndpointSlice", "TrafficPolicy"])
def test_odd_objects_read_as_empty_instead_of_raising(kind: str) -> None:
    view_of = {"ResourceBinding": ResourceBindingView.of, "Work": WorkView.of,
               "EndpointSlice": EndpointSliceView.of, "TrafficPolicy": TrafficPolicyView.of}[kind]
    for odd in (None, {}, {"metadata": [], "spec": "x", "status": 3},
                {"spec": {"clusters": "x", "endpoints": [1, None], "hosts": {}, "workload": 1,
                          "gracefulEvictionTasks": [[]], "resource": []}}):
        view_of(odd)  # type: ignore[operator]


def test_views_are_read_only_and_share_nothing_with_the_dict() -> None:
    obj = example("ResourceBinding")
    view = ResourceBindingView.of(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.replicas = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.placement["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        view.meta.labels["x"] = "y"  # type: ignore[index]
    obj["spec"]["placement"]["clusterAffinity"]["clusterNames"].append("west-1")
    obj["spec"]["clusters"][0]["replicas"] = 99
    assert view.placement["clusterAffinity"]["clusterNames"] == ["east-1", "south-1"]
    assert view.targets["east-1"] == 4

    slice_obj = example("EndpointSlice")
    slice_view = EndpointSliceView.of(slice_obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        slice_view.endpoints[0].ready = False  # type: ignore[misc]
    traffic = TrafficPolicyView.of(example("TrafficPolicy"))
    with pytest.raises(TypeError):
        traffic.weights["east-1"] = 0  # type: ignore[index]
