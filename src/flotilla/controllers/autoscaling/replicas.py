"""The replica calculator of the Kubernetes HPA, as pure functions.

Kubernetes' ``pkg/controller/podautoscaler/replica_calculator.go`` in Python, so a
FederatedHPA recommends exactly what a HorizontalPodAutoscaler would for the same
numbers: ``desired = ceil(current * metric / target)``, nothing done while the ratio is
within the tolerance (10 %), pods without a metric or not yet ready counted
conservatively (they may only damp a change, never reverse it).

Two simplifications, because Flotilla's agents report what the pod reports: a pod's
"hot CPU" state (started within the CPU initialisation period) is folded by the caller
into ``PodSample.ready``, and External metrics are not supported (the FederatedHPA
model refuses them by name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "TOLERANCE",
    "MetricError",
    "PodSample",
    "Recommendation",
    "object_average_replicas",
    "object_value_replicas",
    "pods_average_replicas",
    "resource_utilization_replicas",
]

#: Kubernetes' default ``--horizontal-pod-autoscaler-tolerance``.
TOLERANCE = 0.1

Phase = Literal["Running", "Pending", "Failed", "Succeeded"]


class MetricError(ValueError):
    """The metric cannot give a recommendation (no samples, a pod without a request)."""


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod of the target as the calculator sees it."""

    name: str
    #: the metric's current value for this pod; None when the pod reported none
    value: float | None
    #: the resource request (utilisation only), in the value's unit
    request: float | None = None
    phase: Phase = "Running"
    #: Ready, and (CPU) past its initialisation period
    ready: bool = True
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class Recommendation:
    replicas: int
    #: what the metric stands at, in the target's unit (percent, value or average value)
    current: float


@dataclass(slots=True)
class _Groups:
    ready: int
    unready: set[str]
    missing: set[str]
    values: dict[str, float]


def _group(pods: Sequence[PodSample], *, readiness_counts: bool) -> _Groups:
    """Kubernetes' ``groupPods``: deleted and failed pods are ignored, pending ones (and,
    for CPU, not-ready ones) are unready, pods without a sample are missing."""
    groups = _Groups(0, set(), set(), {})
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            continue
        if pod.phase == "Pending":
            groups.unready.add(pod.name)
            continue
        if pod.value is None:
            groups.missing.add(pod.name)
            continue
        if readiness_counts and not pod.ready:
            groups.unready.add(pod.name)
            continue
        groups.values[pod.name] = pod.value
        groups.ready += 1
    return groups


def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def _settle(current: int, ratio: float, new_ratio: float, counted: int,
            tolerance: float) -> int:
    """The second pass once missing/unready pods are filled in: the filled-in ratio may
    damp a change, never reverse its direction."""
    if (_within(new_ratio, tolerance) or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_utilization_replicas(
    current: int, pods: Sequence[PodSample], target_percent: int, *,
    cpu: bool = True, tolerance: float = TOLERANCE,
) -> Recommendation:
    """A Resource metric with a ``Utilization`` target: usage as a percentage of the
    pods' requests (Kubernetes' ``GetResourceReplicas``)."""
    groups = _group(pods, readiness_counts=cpu)
    if not groups.values:
        raise MetricError("no metrics returned for the target's pods")
    requests = {pod.name: pod.request for pod in pods}
    for name in (*groups.values, *groups.missing, *groups.unready):
        if not requests.get(name):
            raise MetricError(f"missing request for pod {name}")

    def ratio_of(values: dict[str, float]) -> tuple[float, float]:
        used = sum(values.values())
        requested = sum(float(requests[name] or 0) for name in values)
        utilization = used * 100 / requested
        return utilization / target_percent, utilization

    ratio, utilization = ratio_of(groups.values)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if _within(ratio, tolerance):
            return Recommendation(current, utilization)
        return Recommendation(math.ceil(ratio * groups.ready), utilization)
    filled = dict(groups.values)
    if ratio < 1.0:
        fallback = max(100, target_percent) / 100
        filled.update({name: float(requests[name] or 0) * fallback for name in groups.missing})
    elif ratio > 1.0:
        filled.update(dict.fromkeys(groups.missing, 0.0))
    if scale_up_with_unready:
        filled.update(dict.fromkeys(groups.unready, 0.0))
    new_ratio, _ = ratio_of(filled)
    return Recommendation(
        _settle(current, ratio, new_ratio, len(filled), tolerance), utilization)


def pods_average_replicas(
    current: int, pods: Sequence[PodSample], target_average: float, *,
    cpu: bool = False, tolerance: float = TOLERANCE,
) -> Recommendation:
    """A Pods metric, or a Resource metric with an ``AverageValue`` target: the average
    over the pods against the target (Kubernetes' ``calcPlainMetricReplicas``)."""
    groups = _group(pods, readiness_counts=cpu)
    if not groups.values:
        raise MetricError("no metrics returned for the target's pods")
    average = sum(groups.values.values()) / len(groups.values)
    ratio = average / target_average
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if _within(ratio, tolerance):
            return Recommendation(current, average)
        return Recommendation(math.ceil(ratio * groups.ready), average)
    filled = dict(groups.values)
    if ratio < 1.0:
        filled.update(dict.fromkeys(groups.missing, float(target_average)))
    elif ratio > 1.0:
        filled.update(dict.fromkeys(groups.missing, 0.0))
    if scale_up_with_unready:
        filled.update(dict.fromkeys(groups.unready, 0.0))
    new_ratio = sum(filled.values()) / len(filled) / target_average
    return Recommendation(
        _settle(current, ratio, new_ratio, len(filled), tolerance), average)


def object_value_replicas(
    current: int, ready_pods: int, value: float, target_value: float, *,
    tolerance: float = TOLERANCE,
) -> Recommendation:
    """An Object metric with a ``Value`` target: one number for the whole target, scaled
    over the ready pods (Kubernetes' ``GetObjectMetricReplicas``)."""
    ratio = value / target_value
    if _within(ratio, tolerance):
        return Recommendation(current, value)
    return Recommendation(math.ceil(ratio * ready_pods), value)


def object_average_replicas(
    current: int, value: float, target_average: float, *, tolerance: float = TOLERANCE,
) -> Recommendation:
    """An Object metric with an ``AverageValue`` target: the total divided by the target
    per replica (Kubernetes' ``GetObjectPerPodMetricReplicas``). The gateway's requests
    per second are this shape: 200 req/s at 20 per replica is 10 replicas."""
    average = value / max(current, 1)
    ratio = value / (target_average * max(current, 1))
    if _within(ratio, tolerance):
        return Recommendation(current, average)
    return Recommendation(math.ceil(value / target_average), average)
