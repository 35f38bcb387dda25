"""Karmada's own assignment test cases, transcribed from karmada-io/karmada
``pkg/scheduler/core/assignment_test.go`` (Test_assignByStaticWeightStrategy,
Test_dynamicScale, Test_dynamicScaleUp, Test_assignByDuplicatedStrategy) and run through
our public `schedule`. Where Karmada accepts several answers (its random tie-break), the
comment names the alternatives; ours is the name-ordered one, always."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.scheduler import ClusterInfo, WorkloadInfo, compile_placement, schedule

M1, M2, M3, M4 = "member1", "member2", "member3", "member4"


def divided(preference: str, weights: dict[str, int] | None = None,
            dynamic: bool = False) -> dict[str, Any]:
    rs: dict[str, Any] = {"replicaSchedulingType": "Divided",
                          "replicaDivisionPreference": preference}
    if weights is not None:
        rs["weightPreference"] = {"staticWeightList": [
            {"targetCluster": {"clusterNames": [name]}, "weight": w}
            for name, w in weights.items()]}
    if dynamic:
        rs["weightPreference"] = {"dynamicWeight": "AvailableReplicas"}
    return {"replicaScheduling": rs}


def pods(**free: int) -> list[ClusterInfo]:
    return [ClusterInfo(name, free={"pods": n}) for name, n in free.items()]


STATIC = [
    # (name, clusters, weights, replicas, want)
    ("replica 12, weight 3:2:1", [M1, M2, M3], [(M1, 3), (M2, 2), (M3, 1)], 12,
     {M1: 6, M2: 4, M3: 2}),
    ("replica 12, default weight", [M1, M2, M3], None, 12, {M1: 4, M2: 4, M3: 4}),
    ("replica 14, weight 3:2:1", [M1, M2, M3], [(M1, 3), (M2, 2), (M3, 1)], 14,
     {M1: 8, M2: 4, M3: 2}),
    # Karmada lists both clusters with 0; we drop zero-replica targets (as its scheduler
    # does before writing the binding).
    ("insufficient replica assignment should get 0 replica", [M1, M2], [(M1, 1), (M2, 1)], 0,
     {}),
    ("selected cluster without weight should be ignored", [M1, M2], [(M1, 1)], 2, {M1: 2}),
    ("cluster with multiple weights", [M1, M2], [(M1, 1), (M2, 1), (M1, 2)], 3,
     {M1: 2, M2: 1}),
]


@pytest.mark.parametrize(("name", "clusters", "weights", "replicas", "want"), STATIC,
                         ids=[c[0] for c in STATIC])
def test_static_weight(name: str, clusters: list[str], weights: list[tuple[str, int]] | None,
                       replicas: int, want: dict[str, int]) -> None:
    rs: dict[str, Any] = {"replicaSchedulingType": "Divided",
                          "replicaDivisionPreference": "Weighted"}
    if weights is not None:
        rs["weightPreference"] = {"staticWeightList": [
            {"targetCluster": {"clusterNames": [n]}, "weight": w} for n, w in weights]}
    result = schedule(WorkloadInfo("w", replicas), compile_placement({"replicaScheduling": rs}),
                      [ClusterInfo(n) for n in clusters])
    assert result.scheduled, result.reason
    assert dict(result.targets) == want


DYNAMIC = [
    # (name, free pods per cluster, strategy, current, replicas, want or None for error)
    ("replica 12 -> 6, dynamic weighted 1:1:1", {M1: 1, M2: 1, M3: 1}, "dynamic",
     {M1: 2, M2: 4, M3: 6}, 6, {M1: 1, M2: 2, M3: 3}),
    ("replica 12 -> 24, dynamic weighted 10:10:10", {M1: 10, M2: 10, M3: 10}, "dynamic",
     {M1: 2, M2: 4, M3: 6}, 24, {M1: 6, M2: 8, M3: 10}),
    ("replica 12 -> 24, dynamic weighted 1:1:1", {M1: 1, M2: 1, M3: 1}, "dynamic",
     {M1: 2, M2: 4, M3: 6}, 24, None),
    ("replica 12 -> 6, aggregated 1:1:1", {M1: 1, M2: 1, M3: 1}, "aggregated",
     {M1: 4, M2: 8}, 6, {M2: 6}),
    ("replica 12 -> 8, aggregated 100:100", {M1: 100, M2: 100}, "aggregated",
     {M1: 4, M2: 8}, 8, {M2: 8}),
    ("replica 12 -> 24, aggregated 4:6:8", {M1: 4, M2: 6, M3: 8}, "aggregated",
     {M1: 4, M2: 8}, 24, {M1: 6, M2: 12, M3: 6}),
    ("replica 12 -> 24, aggregated 6:6:20", {M1: 6, M2: 6, M3: 20}, "aggregated",
     {M1: 4, M2: 8}, 24, {M1: 10, M2: 14}),
    ("replica 12 -> 24, aggregated 1:1:1", {M1: 1, M2: 1, M3: 1}, "aggregated",
     {M1: 4, M2: 8}, 24, None),
    ("replica 12 -> 24, aggregated 4:8:12, cluster2 gone, cluster4 new",
     {M1: 4, M3: 8, M4: 12}, "aggregated", {M1: 4, M2: 8}, 24, {M1: 7, M3: 6, M4: 11}),
    # Test_dynamicScaleUp
    ("replica 12, dynamic weight 6:8:10", {M1: 6, M2: 8, M3: 10}, "dynamic", {}, 12,
     {M1: 3, M2: 4, M3: 5}),
    # Karmada accepts 4:3:5 or 3:4:5 (random tie-break); name order gives 4:3:5.
    ("replica 12, dynamic weight 8:8:10", {M1: 8, M2: 8, M3: 10}, "dynamic", {}, 12,
     {M1: 4, M2: 3, M3: 5}),
    ("replica 12, dynamic weight 3:3:3", {M1: 3, M2: 3, M3: 3}, "dynamic", {}, 12, None),
    ("replica 12, aggregated 6:8:10", {M1: 6, M2: 8, M3: 10}, "aggregated", {}, 12,
     {M2: 5, M3: 7}),
    ("replica 12, aggregated 12:8:10", {M1: 12, M2: 8, M3: 10}, "aggregated", {}, 12,
     {M1: 12}),
    ("replica 12, aggregated 3:3:3", {M1: 3, M2: 3, M3: 3}, "aggregated", {}, 12, None),
    ("replica 12, dynamic weight 3:3, cluster3 gone, cluster2 new", {M1: 3, M2: 3},
     "dynamic", {M1: 6, M3: 6}, 12, {M1: 9, M2: 3}),
]


@pytest.mark.parametrize(("name", "free", "strategy", "current", "replicas", "want"), DYNAMIC,
                         ids=[c[0] for c in DYNAMIC])
def test_dynamic(name: str, free: dict[str, int], strategy: str, current: dict[str, int],
                 replicas: int, want: dict[str, int] | None) -> None:
    placement = compile_placement(
        divided("Weighted", dynamic=True) if strategy == "dynamic" else divided("Aggregated"))
    workload = WorkloadInfo("w", replicas, requests={"pods": 1},
                            current=tuple(sorted(current.items())))
    result = schedule(workload, placement, pods(**free))
    if want is None:
        assert not result.scheduled
        assert "more replicas" in (result.reason or "")
    else:
        assert result.scheduled, result.reason
        assert dict(result.targets) == want


def test_duplicated() -> None:
    placement = compile_placement({})
    assert schedule(WorkloadInfo("w", 2), placement,
                    [ClusterInfo("cluster1"), ClusterInfo("cluster2")]).targets == (
        ("cluster1", 2), ("cluster2", 2))
    empty = schedule(WorkloadInfo("w", 2), placement, [])
    assert not empty.scheduled
    assert empty.reason == "0/0 clusters available"
    assert schedule(WorkloadInfo("w", 0), placement,
                    [ClusterInfo("cluster1"), ClusterInfo("cluster2")]).targets == (
        ("cluster1", 0), ("cluster2", 0))
