"""Property-based tests of the decision (hypothesis, bounded example counts)."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotilla.scheduler import (
    ClusterInfo,
    Placement,
    Scheduler,
    Taint,
    WorkloadInfo,
    compile_placement,
    schedule,
)
from flotilla.scheduler.filter import estimate

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

REGIONS = ("eu", "us", "ap")
TAINT = Taint("dedicated", "db", "NoSchedule")


@st.composite
def clusters(draw: st.DrawFn, min_size: int = 1, healthy: bool = False) -> list[ClusterInfo]:
    n = draw(st.integers(min_size, 8))
    out = []
    for i in range(n):
        region = draw(st.sampled_from(REGIONS))
        out.append(ClusterInfo(
            name=f"c{i}", region=region, zone=f"{region}-{draw(st.integers(0, 1))}",
            labels={"tier": draw(st.sampled_from(["gold", "silver"]))},
            taints=() if healthy or draw(st.integers(0, 4)) else (TAINT,),
            ready=True if healthy else draw(st.integers(0, 6)) > 0,
            unschedulable=False if healthy else draw(st.integers(0, 8)) == 0,
            free={"pods": draw(st.integers(1 if healthy else 0, 20))}))
    return out


def replica_scheduling(kind: str, names: list[str], weights: list[int]) -> dict[str, Any]:
    if kind == "Duplicated":
        return {"replicaSchedulingType": "Duplicated"}
    if kind == "Aggregated":
        return {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}
    if kind == "DynamicWeight":
        return {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                "weightPreference": {"dynamicWeight": "AvailableReplicas"}}
    return {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
            "weightPreference": {"staticWeightList": [
                {"targetCluster": {"clusterNames": [n]}, "weight": w}
                for n, w in zip(names, weights, strict=False)]}}


KINDS = ("Duplicated", "Aggregated", "DynamicWeight", "StaticWeight")


@st.composite
def placements(draw: st.DrawFn, spread: bool = True, kinds: tuple[str, ...] = KINDS
               ) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds))
    names = [f"c{i}" for i in range(8)]
    spec: dict[str, Any] = {"replicaScheduling": replica_scheduling(
        kind, names, draw(st.lists(st.integers(1, 5), min_size=8, max_size=8)))}
    if draw(st.booleans()):
        spec["clusterAffinity"] = {"exclude": draw(st.lists(st.sampled_from(names),
                                                            max_size=2, unique=True))}
        if draw(st.booleans()):
            spec["clusterAffinity"]["labelSelector"] = {"matchLabels": {"tier": "gold"}}
    if draw(st.booleans()):
        spec["clusterTolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if spread and draw(st.booleans()):
        field = draw(st.sampled_from(["region", "zone", "cluster"]))
        low = draw(st.integers(1, 3))
        high = draw(st.integers(low, 4))
        spec["spreadConstraints"] = [{"spreadByField": field, "minGroups": low,
                                      "maxGroups": high}]
        if field != "cluster" and draw(st.booleans()):
            spec["spreadConstraints"].append({"spreadByField": "cluster",
                                              "minGroups": low, "maxGroups": high + 2})
    return spec


def total(targets: tuple[tuple[str, int], ...]) -> int:
    return sum(n for _, n in targets)


def group_count(spec: dict[str, Any], field: str, names: list[str],
                by_name: dict[str, ClusterInfo]) -> int:
    return len({by_name[n].field_value(field) for n in names})


@FAST
@given(clusters(), placements(), st.integers(0, 30))
def test_totals_constraints_and_determinism(cs: list[ClusterInfo], spec: dict[str, Any],
                                            replicas: int) -> None:
    placement = compile_placement(spec)
    workload = WorkloadInfo("w", replicas, {"pods": 1})
    result = schedule(workload, placement, cs)
    # Same input, same output — whatever the order of the cluster list, cached or not.
    shuffled = list(cs)
    random.Random(replicas).shuffle(shuffled)
    assert schedule(workload, placement, shuffled) == result
    assert Scheduler(shuffled).schedule(workload, placement) == result
    if not result.scheduled:
        assert result.reason
        return
    names = [n for n, _ in result.targets]
    assert names == sorted(set(names))
    if placement.scheduling_type == "Duplicated":
        assert all(n == replicas for _, n in result.targets)
    else:
        assert total(result.targets) == replicas
    by_name = {c.name: c for c in cs}
    tolerated = bool(spec.get("clusterTolerations"))
    for name, n in result.targets:
        c = by_name[name]
        assert placement.affinities[0].matches(c)
        assert c.ready
        assert not c.unschedulable
        assert tolerated or not c.taints
        if placement.strategy in ("Aggregated", "DynamicWeight"):
            assert n <= estimate(c, workload)
        elif placement.strategy == "Duplicated":
            assert n <= estimate(c, workload) or replicas == 0
        else:
            assert estimate(c, workload) > 0
    for constraint in spec.get("spreadConstraints", []):
        groups = group_count(spec, constraint["spreadByField"], names, by_name)
        assert groups <= constraint["maxGroups"]
        if placement.scheduling_type == "Duplicated" and replicas > 0:
            assert groups >= constraint["minGroups"]


@FAST
@given(st.integers(1, 8), st.lists(st.integers(1, 9), min_size=8, max_size=8),
       st.integers(0, 200))
def test_static_weights_within_one_replica(n: int, weights: list[int], replicas: int) -> None:
    cs = [ClusterInfo(f"c{i}") for i in range(n)]
    placement = compile_placement({"replicaScheduling": replica_scheduling(
        "StaticWeight", [c.name for c in cs], weights)})
    result = schedule(WorkloadInfo("w", replicas), placement, cs)
    got = dict(result.targets)
    weight_sum = sum(weights[:n])
    for i, c in enumerate(cs):
        share = Fraction(weights[i] * replicas, weight_sum)
        assert abs(got.get(c.name, 0) - share) <= 1


@FAST
@given(clusters(min_size=2, healthy=True), placements(spread=False), st.integers(1, 30),
       st.data())
def test_cluster_leaving_moves_only_its_replicas(cs: list[ClusterInfo], spec: dict[str, Any],
                                                 replicas: int, data: st.DataObject) -> None:
    placement = compile_placement(spec)
    first = schedule(WorkloadInfo("w", replicas, {"pods": 1}), placement, cs)
    if not first.scheduled or not first.targets:
        return
    gone = data.draw(st.sampled_from([n for n, _ in first.targets]))
    after = schedule(WorkloadInfo("w", replicas, {"pods": 1}, current=first.targets),
                     placement, [c for c in cs if c.name != gone])
    if not after.scheduled:
        return
    before = dict(first.targets)
    for name, n in after.targets:
        assert n >= before.get(name, 0), (name, first.targets, after.targets)
    for name, n in before.items():
        if name != gone:
            assert after.replicas_of(name) >= n


@FAST
@given(clusters(healthy=True), placements(), st.integers(0, 20), st.integers(1, 10))
def test_scale_up_moves_no_cluster_down(cs: list[ClusterInfo], spec: dict[str, Any],
                                        replicas: int, k: int) -> None:
    placement: Placement = compile_placement(spec)
    first = schedule(WorkloadInfo("w", replicas, {"pods": 1}), placement, cs)
    if not first.scheduled:
        return
    up = schedule(WorkloadInfo("w", replicas + k, {"pods": 1}, current=first.targets),
                  placement, cs)
    if not up.scheduled:
        return
    for name, n in first.targets:
        assert up.replicas_of(name) >= n, (first.targets, up.targets)


@FAST
@given(clusters(), placements(), st.integers(0, 30))
def test_a_placed_workload_stays_put(cs: list[ClusterInfo], spec: dict[str, Any],
                                     replicas: int) -> None:
    """Rescheduling with nothing changed is a fixed point: no churn from re-running."""
    placement = compile_placement(spec)
    first = schedule(WorkloadInfo("w", replicas, {"pods": 1}), placement, cs)
    if not first.scheduled:
        return
    again = schedule(WorkloadInfo("w", replicas, {"pods": 1}, current=first.targets),
                     placement, cs)
    assert again.targets == first.targets
