"""Filters, reasons, fallback affinity groups and spread, through the public API."""

from __future__ import annotations

from typing import Any

from flotilla.scheduler import (
    ClusterInfo,
    Scheduler,
    Taint,
    WorkloadInfo,
    compile_placement,
    schedule,
)

UNREACHABLE = Taint("cluster.flotilla.io/unreachable", "", "NoSchedule")


def five() -> list[ClusterInfo]:
    return [
        ClusterInfo("a", region="eu", labels={"tier": "gold"}, free={"pods": 10}),
        ClusterInfo("b", region="eu", labels={"tier": "gold"}, free={"pods": 10},
                    taints=(UNREACHABLE,)),
        ClusterInfo("c", region="us", labels={"tier": "gold"}, free={"pods": 10},
                    taints=(UNREACHABLE,)),
        ClusterInfo("d", region="us", labels={"tier": "gold"}, free={"pods": 0}),
        ClusterInfo("e", region="ap", labels={"tier": "bronze"}, free={"pods": 10}),
    ]


def test_unschedulable_reason_counts_every_filter() -> None:
    placement = compile_placement({
        "clusterAffinity": {"labelSelector": {"matchLabels": {"tier": "gold"}},
                            "exclude": ["a"]}})
    result = schedule(WorkloadInfo("w", 3, requests={"pods": 1}), placement, five())
    assert not result.scheduled
    assert result.reason == (
        "0/5 clusters available: 2 excluded by affinity, "
        "2 tainted cluster.flotilla.io/unreachable:NoSchedule not tolerated, 1 has no capacity")
    assert result.cluster_reasons["d"] == "has no capacity"
    assert result.cluster_reasons["e"] == "excluded by affinity"


def test_tolerations_equal_and_exists() -> None:
    clusters = [ClusterInfo("a", taints=(Taint("k", "v", "NoSchedule"),)),
                ClusterInfo("b", taints=(Taint("k", "x", "NoExecute"),)),
                ClusterInfo("c", taints=(Taint("soft", "", "PreferNoSchedule"),))]
    equal = compile_placement({"clusterTolerations": [
        {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]})
    assert [n for n, _ in schedule(WorkloadInfo("w", 1), equal, clusters).targets] == ["a", "c"]
    exists = compile_placement({"clusterTolerations": [{"key": "k", "operator": "Exists"}]})
    assert len(schedule(WorkloadInfo("w", 1), exists, clusters).targets) == 3


def test_held_cluster_keeps_replicas_despite_new_taint_but_gets_no_more() -> None:
    placement = compile_placement({"replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
        "weightPreference": {"dynamicWeight": "AvailableReplicas"}}})
    clusters = [ClusterInfo("a", free={"pods": 10}, taints=(UNREACHABLE,)),
                ClusterInfo("b", free={"pods": 10})]
    result = schedule(WorkloadInfo("w", 6, {"pods": 1}, current=(("a", 3), ("b", 3))),
                      placement, clusters)
    assert result.targets == (("a", 3), ("b", 3))
    scaled = schedule(WorkloadInfo("w", 8, {"pods": 1}, current=(("a", 3), ("b", 3))),
                      placement, clusters)
    assert scaled.targets == (("a", 3), ("b", 5))


def test_not_ready_and_cordoned_are_not_chosen() -> None:
    clusters = [ClusterInfo("a", ready=False), ClusterInfo("b", unschedulable=True),
                ClusterInfo("c")]
    result = schedule(WorkloadInfo("w", 1), compile_placement({}), clusters)
    assert result.targets == (("c", 1),)
    assert result.cluster_reasons == {"a": "not ready", "b": "cordoned (unschedulable)"}


def test_field_selector_on_region_and_provider() -> None:
    clusters = [ClusterInfo("a", region="eu", provider="aws"),
                ClusterInfo("b", region="us", provider="aws"),
                ClusterInfo("c", region="eu", provider="gcp")]
    placement = compile_placement({"clusterAffinity": {"fieldSelector": {"matchExpressions": [
        {"key": "region", "operator": "In", "values": ["eu"]},
        {"key": "provider", "operator": "NotIn", "values": ["gcp"]}]}}})
    assert schedule(WorkloadInfo("w", 1), placement, clusters).targets == (("a", 1),)


def test_cluster_affinities_fall_back_in_order() -> None:
    spec: dict[str, Any] = {"clusterAffinities": [
        {"affinityName": "primary", "clusterNames": ["a"]},
        {"affinityName": "backup", "clusterNames": ["b", "c"]}],
        "replicaScheduling": {"replicaSchedulingType": "Divided",
                              "replicaDivisionPreference": "Aggregated"}}
    placement = compile_placement(spec)
    clusters = [ClusterInfo("a", free={"pods": 2}), ClusterInfo("b", free={"pods": 5}),
                ClusterInfo("c", free={"pods": 5})]
    small = schedule(WorkloadInfo("w", 2, {"pods": 1}), placement, clusters)
    assert (small.targets, small.affinity) == ((("a", 2),), "primary")
    big = schedule(WorkloadInfo("w", 4, {"pods": 1}), placement, clusters)
    assert (big.targets, big.affinity) == ((("b", 4),), "backup")
    none = schedule(WorkloadInfo("w", 40, {"pods": 1}), placement, clusters)
    assert not none.scheduled
    assert none.reason is not None
    assert none.reason.startswith(
        "no clusterAffinities group can hold the workload: primary: ")


def regions() -> list[ClusterInfo]:
    return [ClusterInfo(f"{r}{i}", region=r, zone=f"{r}-z{i % 2}", free={"pods": 4 + i})
            for r in ("eu", "us", "ap") for i in range(3)]


def test_spread_by_region_picks_min_groups_then_fills_clusters() -> None:
    placement = compile_placement({"spreadConstraints": [
        {"spreadByField": "region", "minGroups": 2, "maxGroups": 2},
        {"spreadByField": "cluster", "minGroups": 3, "maxGroups": 4}]})
    result = schedule(WorkloadInfo("w", 1), placement, regions())
    names = [n for n, _ in result.targets]
    assert len(names) == 4
    assert len({n[:2] for n in names}) == 2


def test_spread_unsatisfiable_says_why() -> None:
    placement = compile_placement({"spreadConstraints": [
        {"spreadByField": "region", "minGroups": 4}]})
    result = schedule(WorkloadInfo("w", 1), placement, regions())
    assert result.reason == ("9/9 clusters available; spread by region needs at least "
                             "4 groups, 3 feasible")


def test_spread_by_label_and_divided_capacity() -> None:
    clusters = [ClusterInfo(f"c{i}", labels={"rack": f"r{i % 3}"}, free={"pods": 2})
                for i in range(6)]
    placement = compile_placement({
        "spreadConstraints": [{"spreadByLabel": "rack", "minGroups": 1, "maxGroups": 3}],
        "replicaScheduling": {"replicaSchedulingType": "Divided",
                              "replicaDivisionPreference": "Aggregated"}})
    result = schedule(WorkloadInfo("w", 7, {"pods": 1}), placement, clusters)
    assert result.scheduled, result.reason
    assert sum(n for _, n in result.targets) == 7
    too_many = schedule(WorkloadInfo("w", 13, {"pods": 1}), placement, clusters)
    assert not too_many.scheduled


def test_scheduler_cache_matches_pure_function() -> None:
    placement = compile_placement({"spreadConstraints": [
        {"spreadByField": "zone", "minGroups": 2, "maxGroups": 3}],
        "replicaScheduling": {"replicaSchedulingType": "Divided",
                              "replicaDivisionPreference": "Weighted",
                              "weightPreference": {"dynamicWeight": "AvailableReplicas"}}})
    cached = Scheduler(regions())
    for replicas in range(1, 12):
        w = WorkloadInfo(f"w{replicas}", replicas, {"pods": 1})
        assert cached.schedule(w, placement) == schedule(w, placement, regions())
        assert cached.schedule(w, placement) == schedule(w, placement, regions())


def test_duplicated_needs_room_for_every_replica() -> None:
    clusters = [ClusterInfo("a", free={"pods": 2}), ClusterInfo("b", free={"pods": 5})]
    result = schedule(WorkloadInfo("w", 5, {"pods": 1}), compile_placement({}), clusters)
    assert result.targets == (("b", 5),)
    assert result.cluster_reasons == {"a": "has room for 2 of 5 replicas"}
    none = schedule(WorkloadInfo("w", 6, {"pods": 1}), compile_placement({}), clusters)
    assert none.reason == "0/2 clusters available: 2 have too little capacity"


def test_agent_estimate_wins_and_is_not_shared_between_workloads() -> None:
    clusters = [ClusterInfo("a", free={"pods": 100}, available_replicas={"shop": 1}),
                ClusterInfo("b", free={"pods": 100})]
    placement = compile_placement({"replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}})
    cached = Scheduler(clusters)
    shop = cached.schedule(WorkloadInfo("shop", 3, {"pods": 1}), placement)
    other = cached.schedule(WorkloadInfo("other", 3, {"pods": 1}), placement)
    assert shop.targets == (("b", 3),)  # "a" reported room for one replica of shop only
    assert other.targets == (("a", 3),)  # same shape, resource estimate: a tie, name wins
