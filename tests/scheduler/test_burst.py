"""Burst clusters (``flotilla.io/burst=true``) under a dynamic strategy: scaling up fills
the core clusters to their available replicas first and spills only the overflow into
burst clusters; scaling down empties the burst clusters first. ``free`` is how many more
replicas a cluster can take (the agents' allocated already counts the held ones)."""

from __future__ import annotations

import pytest

from flotilla.scheduler import ClusterInfo, WorkloadInfo, compile_placement, schedule
from tests.scheduler.test_karmada_cases import divided

BURST = {"flotilla.io/burst": "true"}


def clusters(core_a: int, core_b: int, burst: int) -> list[ClusterInfo]:
    return [ClusterInfo("core-a", free={"pods": core_a}),
            ClusterInfo("core-b", free={"pods": core_b}),
            ClusterInfo("burst", labels=BURST, free={"pods": burst})]


def place(strategy: str, replicas: int, current: dict[str, int],
          free: list[ClusterInfo]) -> dict[str, int]:
    placement = compile_placement(
        divided("Weighted", dynamic=True) if strategy == "dynamic" else divided("Aggregated"))
    workload = WorkloadInfo("w", replicas, requests={"pods": 1},
                            current=tuple(sorted(current.items())))
    result = schedule(workload, placement, free)
    assert result.scheduled, result.reason
    return dict(result.targets)


@pytest.mark.parametrize("strategy", ["dynamic", "aggregated"])
def test_first_placement_stays_on_core_while_it_fits(strategy: str) -> None:
    # the burst cluster has the most room, and Karmada alone would give it the most
    got = place(strategy, 2, {}, clusters(3, 3, 20))
    assert "burst" not in got
    assert sum(got.values()) == 2


@pytest.mark.parametrize("strategy", ["dynamic", "aggregated"])
def test_scale_up_fills_core_then_spills_the_overflow(strategy: str) -> None:
    # 2 placed (1 + 1), room for 2 more on each core cluster: 6 on core, 4 on burst
    assert place(strategy, 10, {"core-a": 1, "core-b": 1}, clusters(2, 2, 8)) == {
        "core-a": 3, "core-b": 3, "burst": 4}


def test_scale_up_with_core_full_goes_to_burst_only() -> None:
    assert place("dynamic", 8, {"core-a": 3, "core-b": 3}, clusters(0, 0, 8)) == {
        "core-a": 3, "core-b": 3, "burst": 2}


def test_scale_down_takes_burst_replicas_first() -> None:
    now = {"core-a": 3, "core-b": 3, "burst": 4}
    assert place("dynamic", 8, now, clusters(0, 0, 4)) == {
        "core-a": 3, "core-b": 3, "burst": 2}
    assert place("dynamic", 6, now, clusters(0, 0, 4)) == {"core-a": 3, "core-b": 3}
    assert place("dynamic", 2, now, clusters(0, 0, 4)) == {"core-a": 1, "core-b": 1}


def test_without_burst_candidates_it_is_karmada() -> None:
    free = [ClusterInfo("m1", free={"pods": 2}), ClusterInfo("m2", free={"pods": 6})]
    # Karmada's dynamic weight: the 8 new replicas by available replicas 2:6
    assert place("dynamic", 8, {}, free) == {"m1": 2, "m2": 6}


def test_not_enough_room_is_still_refused() -> None:
    placement = compile_placement(divided("Weighted", dynamic=True))
    result = schedule(WorkloadInfo("w", 12, requests={"pods": 1}), placement,
                      clusters(3, 3, 4))
    assert not result.scheduled
    assert "more replicas" in (result.reason or "")
