"""The replica calculator against Kubernetes' own cases.

Each test is one case of ``pkg/controller/podautoscaler/replica_calculator_test.go``
(named in its comment), with the same inputs and expected replicas. CPU levels and
requests are in millicores; Kubernetes multiplies both by the containers per pod, which
the ratio does not see. A hot-CPU pod is passed as ``ready=False`` (the calculator's
caller folds that rule in).
"""

from __future__ import annotations

import math

import pytest

from flotilla.controllers.autoscaling.replicas import (
    MetricError,
    PodSample,
    object_average_replicas,
    object_value_replicas,
    pods_average_replicas,
    resource_utilization_replicas,
)


def cpu_pods(levels: list[int | None], requests: list[int] | None = None, *,
             ready: list[bool] | None = None, phase: list[str] | None = None,
             deleting: list[bool] | None = None, count: int | None = None) -> list[PodSample]:
    """Pods ``0..count-1``; pod i has ``levels[i]`` (missing when beyond the list)."""
    n = count if count is not None else len(levels)
    return [PodSample(
        name=f"pod-{i}",
        value=levels[i] if i < len(levels) else None,
        request=(requests[i] if requests else 1000),
        ready=ready[i] if ready else True,
        phase=phase[i] if phase else "Running",  # type: ignore[arg-type]
        deleting=deleting[i] if deleting else False,
    ) for i in range(n)]


# -- Resource, Utilization target ---------------------------------------------------

def test_scale_up() -> None:  # TestReplicaCalcScaleUp
    rec = resource_utilization_replicas(3, cpu_pods([300, 500, 700]), 30)
    assert (rec.replicas, round(rec.current)) == (5, 50)


def test_scale_up_unready_less_scale() -> None:
    # TestReplicaCalcScaleUpUnreadyLessScale; TestReplicaCalcScaleUpHotCpuLessScale is
    # the same case with the hot pod passed as not ready
    ready = [False, True, True]
    rec = resource_utilization_replicas(3, cpu_pods([300, 500, 700], ready=ready), 30)
    assert (rec.replicas, round(rec.current)) == (4, 60)


def test_scale_up_unready_no_scale() -> None:
    # TestReplicaCalcScaleUpUnreadyNoScale and TestReplicaCalcScaleHotCpuNoScale
    rec = resource_utilization_replicas(
        3, cpu_pods([400, 500, 700], ready=[True, False, False]), 30)
    assert (rec.replicas, round(rec.current)) == (3, 40)


def test_scale_up_ignores_failed_pods() -> None:  # TestReplicaCalcScaleUpIgnoresFailedPods
    pods = cpu_pods([500, 700], ready=[True, True, False, False],
                    phase=["Running", "Running", "Failed", "Failed"], count=4)
    rec = resource_utilization_replicas(2, pods, 30)
    assert (rec.replicas, round(rec.current)) == (4, 60)


def test_scale_up_ignores_deletion_pods() -> None:  # TestReplicaCalcScaleUpIgnoresDeletionPods
    pods = cpu_pods([500, 700], ready=[True, True, False, False],
                    deleting=[False, False, True, True], count=4)
    assert resource_utilization_replicas(2, pods, 30).replicas == 4


def test_scale_down() -> None:  # TestReplicaCalcScaleDown
    rec = resource_utilization_replicas(5, cpu_pods([100, 300, 500, 250, 250]), 50)
    assert (rec.replicas, round(rec.current)) == (3, 28)


def test_scale_down_unready() -> None:
    # TestReplicaCalcScaleDownIncludeUnreadyPods; TestReplicaCalcScaleDownIgnoreHotCpuPods
    # is the same case with the hot pods passed as not ready
    ready = [True, True, True, False, False]
    rec = resource_utilization_replicas(5, cpu_pods([100, 300, 500, 250, 250], ready=ready), 50)
    assert (rec.replicas, round(rec.current)) == (2, 30)


def test_scale_down_exclude_unscheduled_pods() -> None:
    # TestReplicaCalcScaleDownExcludeUnscheduledPods
    pods = cpu_pods([100], ready=[True, False, False, False, False],
                    phase=["Running", "Pending", "Pending", "Pending", "Pending"], count=5)
    rec = resource_utilization_replicas(5, pods, 50)
    assert (rec.replicas, round(rec.current)) == (1, 10)


def test_scale_down_ignores_failed_and_deleted_pods() -> None:
    # TestReplicaCalcScaleDownIgnoresFailedPods, TestReplicaCalcScaleDownIgnoresDeletionPods
    failed = cpu_pods([100, 300, 500, 250, 250], phase=["Running"] * 5 + ["Failed"] * 2,
                      count=7)
    deleted = cpu_pods([100, 300, 500, 250, 250], deleting=[False] * 5 + [True] * 2, count=7)
    assert resource_utilization_replicas(5, failed, 50).replicas == 3
    assert resource_utilization_replicas(5, deleted, 50).replicas == 3


def test_tolerance() -> None:  # TestReplicaCalcTolerance
    rec = resource_utilization_replicas(3, cpu_pods([1010, 1030, 1020], [900, 1000, 1100]), 100)
    assert (rec.replicas, round(rec.current)) == (3, 102)


def test_missing_metrics() -> None:  # TestReplicaCalcMissingMetrics
    rec = resource_utilization_replicas(4, cpu_pods([400, 95], count=4), 100)
    assert (rec.replicas, math.floor(rec.current)) == (3, 24)


def test_empty_metrics_and_missing_request_are_errors() -> None:
    # TestReplicaCalcEmptyMetrics, TestReplicaCalcEmptyCPURequest
    with pytest.raises(MetricError, match="no metrics"):
        resource_utilization_replicas(4, cpu_pods([], count=3), 100)
    with pytest.raises(MetricError, match="missing request"):
        resource_utilization_replicas(
            1, [PodSample("pod-0", 200, request=None)], 100)


@pytest.mark.parametrize(("level", "utilization"), [
    (1000, 100),  # TestReplicaCalcMissingMetricsNoChangeEq
    (1900, 190),  # TestReplicaCalcMissingMetricsNoChangeGt
    (600, 60),    # TestReplicaCalcMissingMetricsNoChangeLt
])
def test_missing_metrics_no_change(level: int, utilization: int) -> None:
    rec = resource_utilization_replicas(2, cpu_pods([level], count=2), 100)
    assert (rec.replicas, round(rec.current)) == (2, utilization)


def test_missing_metrics_unready_change() -> None:
    # TestReplicaCalcMissingMetricsUnreadyChange, TestReplicaCalcMissingMetricsHotCpuNoChange
    rec = resource_utilization_replicas(
        3, cpu_pods([100, 450], ready=[False, True, True], count=3), 50)
    assert (rec.replicas, round(rec.current)) == (3, 45)


def test_missing_metrics_unready_scale_up() -> None:
    # TestReplicaCalcMissingMetricsUnreadyScaleUp, TestReplicaCalcMissingMetricsHotCpuScaleUp
    rec = resource_utilization_replicas(
        3, cpu_pods([100, 2000], ready=[False, True, True], count=3), 50)
    assert (rec.replicas, round(rec.current)) == (4, 200)


def test_missing_metrics_unready_scale_down() -> None:
    # TestReplicaCalcMissingMetricsUnreadyScaleDown
    rec = resource_utilization_replicas(
        4, cpu_pods([100, 100, 100], ready=[False, True, True, True], count=4), 50)
    assert (rec.replicas, round(rec.current)) == (3, 10)


def test_during_rolling_update_with_max_surge() -> None:
    # TestReplicaCalcDuringRollingUpdateWithMaxSurge
    rec = resource_utilization_replicas(2, cpu_pods([100, 100], count=3), 50)
    assert (rec.replicas, round(rec.current)) == (2, 10)


def test_computed_tolerance() -> None:  # TestReplicaCalcComputedToleranceAlgImplementation
    per_pod = 300
    requests = [per_pod + d for d in (100, -100, 10, -10, 2, -2, 1, -1, 0, 0)]
    pods = cpu_pods([150] * 10, requests)
    target = abs(1 / (2.0 * (1 - 0.1))) + 0.01
    used_ratio = 1500 / (3000 * target)
    rec = resource_utilization_replicas(10, pods, int(target * 100))
    assert rec.replicas == math.ceil(used_ratio * 10) == 9
    # just inside the tolerance: no change
    target = abs(1 / (2.0 * (1 - 0.1))) + 0.004
    assert resource_utilization_replicas(10, pods, int(target * 100)).replicas == 10


# -- Pods metric (and Resource AverageValue) ----------------------------------------

def plain(levels: list[float], ready: list[bool] | None = None) -> list[PodSample]:
    return [PodSample(f"pod-{i}", v, ready=ready[i] if ready else True)
            for i, v in enumerate(levels)]


@pytest.mark.parametrize(("current", "levels", "target", "ready", "expected", "average"), [
    (3, [20000, 10000, 30000], 15000, None, 4, 20000),  # TestReplicaCalcScaleUpCM
    # TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale: readiness is CPU's rule only
    (3, [50000, 10000, 30000], 15000, [True, True, False], 6, 30000),
    # TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown
    (3, [50000, 15000, 30000], 15000, [False, True, False], 7, 31666),
    (5, [12000] * 5, 20000, None, 3, 12000),              # TestReplicaCalcScaleDownCM
    (3, [20000, 21000, 21000], 20000, None, 3, 20666),    # TestReplicaCalcToleranceCM
])
def test_pods_metric(current: int, levels: list[float], target: float,
                     ready: list[bool] | None, expected: int, average: int) -> None:
    rec = pods_average_replicas(current, plain(levels, ready), target)
    assert (rec.replicas, math.floor(rec.current)) == (expected, average)


# -- Object metric -----------------------------------------------------------------

@pytest.mark.parametrize(("current", "ready", "value", "target", "expected"), [
    (3, 3, 20000, 15000, 4),   # TestReplicaCalcScaleUpCMObject
    (3, 1, 50000, 10000, 5),   # TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods
    (5, 5, 12000, 20000, 3),   # TestReplicaCalcScaleDownCMObject
    (3, 3, 20666, 20000, 3),   # TestReplicaCalcToleranceCMObject
])
def test_object_value(current: int, ready: int, value: float, target: float,
                      expected: int) -> None:
    assert object_value_replicas(current, ready, value, target).replicas == expected


@pytest.mark.parametrize(("current", "value", "target", "expected", "average"), [
    (3, 20000, 5000, 4, 6667),  # TestReplicaCalcScaleUpCMPerPodObject
    (5, 6000, 2000, 3, 1200),   # TestReplicaCalcScaleDownPerPodCMObject
    (4, 20166, 5000, 4, 5042),  # TestReplicaCalcTolerancePerPodCMObject
])
def test_object_average(current: int, value: float, target: float, expected: int,
                        average: int) -> None:
    rec = object_average_replicas(current, value, target)
    assert (rec.replicas, round(rec.current)) == (expected, average)


def test_requests_per_second_shape() -> None:
    """The gateway's 200 req/s at 20 per replica over 2 replicas asks for 10."""
    assert object_average_replicas(2, 200.0, 20.0).replicas == 10
