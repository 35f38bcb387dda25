"""`flotilla what-if --fail-cluster` predicts exactly what the plane then does.

For each placement, the plane's own path is run step by step: cluster health marks the
dead cluster (taints, Ready=Unknown), the failover decision evicts it once the toleration
ran out and moves it into a graceful-eviction task as the failover controller writes
it, and the scheduling controller decides the binding from its informer caches. What-if,
asked beforehand on the healthy objects, must have named the same clusters and counts.
"""

from __future__ import annotations

import copy
import time
from typing import Any, cast

import pytest

from flotilla.client.base import ResourceClient, WatchEvent
from flotilla.controllers.cluster_health import set_health_taints
from flotilla.controllers.failover.decide import Eviction, taint_evictions
from flotilla.controllers.failover.timers import timers_for
from flotilla.controllers.informer import Informer
from flotilla.controllers.placement.scheduling import SchedulingController
from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import TAINT_UNREACHABLE
from flotilla.scheduler import target_clusters
from flotilla.scheduler.whatif import what_if

Obj = dict[str, Any]
DEAD = "east"


def cluster(name: str, region: str, cpu: str) -> Obj:
    return {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"region": region, "zone": f"{region}-a", "taints": []},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "ClusterReady"}],
                       "allocatable": {"cpu": cpu, "memory": "64Gi", "pods": 100}}}


CLUSTERS = [cluster("east", "cn-east", "8"), cluster("east-2", "cn-east", "2"),
            cluster("south", "cn-south", "4"), cluster("west", "us-west", "1")]


def binding(name: str, placement: Obj, current: dict[str, int], replicas: int = 8,
            tasks: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "ResourceBinding",
            "metadata": {"name": f"{name}-deployment", "namespace": "default",
                         "resourceVersion": "1"},
            "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "namespace": "default", "name": name},
                     "replicas": replicas, "placement": placement,
                     "replicaRequirements": {"resourceRequest": {"cpu": "500m"}},
                     "clusters": [{"name": n, "replicas": r} for n, r in current.items()],
                     "gracefulEvictionTasks": tasks or []}}


def divided(preference: str, **extra: Any) -> Obj:
    return {"replicaScheduling": {"replicaSchedulingType": "Divided",
                                  "replicaDivisionPreference": preference, **extra}}


STATIC = divided("Weighted", weightPreference={"staticWeightList": [
    {"targetCluster": {"clusterNames": ["east"]}, "weight": 2},
    {"targetCluster": {"clusterNames": ["south", "east-2"]}, "weight": 1}]})
DYNAMIC = divided("Weighted", weightPreference={"dynamicWeight": "AvailableReplicas"})
REGION_BOUND = {**divided("Aggregated"), "clusterAffinity": {"fieldSelector": {
    "matchExpressions": [{"key": "region", "operator": "In", "values": ["cn-east"]}]}}}
EARLIER_TASK = [{"fromCluster": "south", "replicas": 2, "producer": "taint-manager",
                 "purgeMode": "Graciously", "creationTimestamp": "2027-01-15T08:00:00Z"}]

BINDINGS = [
    binding("static", STATIC, {"east": 4, "east-2": 2, "south": 2}),
    binding("dynamic", DYNAMIC, {"east": 5, "east-2": 1, "south": 2}),
    binding("aggregated", divided("Aggregated"), {"east": 8}),
    binding("duplicated", {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}},
            {"east": 2, "south": 2, "west": 2}, replicas=2),
    binding("region-bound", REGION_BOUND, {"east": 6, "east-2": 2}),
    binding("nowhere-left", {"clusterAffinity": {"clusterNames": ["east"]}}, {"east": 3},
            replicas=3),
    binding("evicting-already", DYNAMIC, {"east": 6, "east-2": 2}, tasks=EARLIER_TASK),
]


def dead(obj: Obj) -> Obj:
    """The cluster as cluster health leaves it when its Lease stops being renewed."""
    out = copy.deepcopy(obj)
    set_health_taints(out, TAINT_UNREACHABLE)
    set_conditions(out, [Condition("Ready", "Unknown", "ClusterStatusUnknown")])
    return out


def evicted(b: Obj, evictions: list[Eviction]) -> Obj:
    """The binding as the failover controller writes it after ``evictions``."""
    out = copy.deepcopy(b)
    gone = {e.cluster for e in evictions}
    out["spec"]["clusters"] = [t for t in out["spec"]["clusters"] if t["name"] not in gone]
    out["spec"]["gracefulEvictionTasks"] += [
        {"fromCluster": e.cluster, "replicas": e.replicas, "reason": e.reason,
         "producer": e.producer, "purgeMode": e.purge} for e in evictions]
    return out


def informer(kind: str, objs: list[Obj]) -> Informer:
    inf = Informer(cast(ResourceClient, None), by_kind(kind))
    for obj in objs:
        inf._apply(WatchEvent("ADDED", obj))  # type: ignore[arg-type]
    return inf


@pytest.mark.parametrize("b", BINDINGS, ids=[b["spec"]["resource"]["name"] for b in BINDINGS])
def test_what_if_predicts_the_failover_and_the_rescheduling(b: Obj) -> None:
    predicted = {w.binding: w for w in what_if([DEAD], CLUSTERS, [b]).workloads}
    (outcome,) = predicted.values()

    after_death = [dead(c) if c["metadata"]["name"] == DEAD else c for c in CLUSTERS]
    timers = timers_for({"apiVersion": "policy.flotilla.io/v1alpha1"},
                        b["spec"]["placement"], 3, 1)
    evictions, _ = taint_evictions(b, {c["metadata"]["name"]: c for c in after_death},
                                   timers, time.time() + 60)
    assert [e.cluster for e in evictions] == ([DEAD] if outcome.before.get(DEAD) else [])
    moved = evicted(b, evictions)
    scheduler = SchedulingController(cast(ResourceClient, None), informer(
        "ResourceBinding", [moved]), informer("Cluster", after_death))
    result = scheduler.decide(moved)
    # The reconcile keeps the old assignment when nothing fits (what-if says the same).
    placed = target_clusters(result) if result.scheduled else moved["spec"]["clusters"]

    assert dict(outcome.after) == {t["name"]: t["replicas"] for t in placed}
    assert outcome.problem == result.reason
    assert DEAD not in outcome.after
