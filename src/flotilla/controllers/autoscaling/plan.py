"""One FederatedHPA decision, pure: measurements in, replicas, status and Events out.

The order is Kubernetes' ``reconcileAutoscaler``: a target at zero replicas is left
alone (scaling disabled), one outside min/max is brought inside, otherwise each metric
recommends (`replicas`), the largest recommendation wins (a metric that could not be
read blocks a scale-down, never a scale-up), and `behavior.normalize` stabilises and
rate-limits it. History (recommendations, scale events) is handed in and handed back,
so the controller keeps it and the tests drive time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flotilla.controllers.autoscaling import behavior as bh
from flotilla.controllers.autoscaling.replicas import (
    MetricError,
    PodSample,
    Recommendation,
    object_average_replicas,
    object_value_replicas,
    pods_average_replicas,
    resource_utilization_replicas,
)
from flotilla.resources.conditions import FALSE, TRUE, Condition
from flotilla.resources.views import FederatedHPAView, MetricView

EventType = Literal["Normal", "Warning"]

__all__ = ["History", "Measurement", "Plan", "plan", "rules_of"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One metric's reading: its value (None with ``problem`` when it could not be had)."""

    metric: MetricView
    #: Object metrics: the one value (None with ``problem`` when it could not be had)
    value: float | None
    problem: str = ""
    #: Resource metrics: one sample a pod (value in millicores or bytes, request too)
    pods: tuple[PodSample, ...] = ()


@dataclass(frozen=True, slots=True)
class History:
    recommendations: tuple[bh.TimedRecommendation, ...] = ()
    ups: tuple[bh.ScaleEvent, ...] = ()
    downs: tuple[bh.ScaleEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    desired: int
    rescale: bool
    #: why, in Kubernetes' words ("New size: 8; reason: ...")
    reason: str
    conditions: tuple[Condition, ...]
    current_metrics: tuple[dict[str, Any], ...]
    history: History
    events: tuple[tuple[EventType, str, str], ...] = field(default=())


def rules_of(behavior: Mapping[str, Any], direction: str) -> bh.ScalingRules:
    """The spec's rules for ``scaleUp``/``scaleDown`` over Kubernetes' defaults, field by
    field (``GenerateHPAScaleUpRules``)."""
    default = bh.DEFAULT_SCALE_UP if direction == "scaleUp" else bh.DEFAULT_SCALE_DOWN
    given = behavior.get(direction)
    if not isinstance(given, Mapping):
        return default
    window = given.get("stabilizationWindowSeconds")
    select = given.get("selectPolicy")
    policies = given.get("policies")
    return bh.ScalingRules(
        window if isinstance(window, int) else default.stabilization_window_seconds,
        select if select in ("Max", "Min", "Disabled") else default.select_policy,
        tuple(bh.ScalingPolicy(p["type"], int(p["value"]), int(p["periodSeconds"]))
              for p in policies if isinstance(p, Mapping))
        if isinstance(policies, list) and policies else default.policies,
    )


def _recommend(current: int, ready: int, m: Measurement) -> Recommendation:
    if m.metric.type == "Resource" and not m.problem:
        cpu = m.metric.name == "cpu"
        if m.metric.target_type == "Utilization":
            return resource_utilization_replicas(current, m.pods, int(m.metric.target),
                                                 cpu=cpu)
        target = m.metric.target * (1000 if cpu else 1)  # quantity -> millicores
        return pods_average_replicas(current, m.pods, target, cpu=cpu)
    if m.value is None:
        raise MetricError(m.problem or "no value")
    if m.metric.type != "Object":
        raise MetricError(f"{m.metric.type} metrics need per-pod samples, not reported yet")
    if m.metric.target_type == "Value":
        return object_value_replicas(current, ready, m.value, m.metric.target)
    return object_average_replicas(current, m.value, m.metric.target)


def plan(now: float, view: FederatedHPAView, current: int, ready: int,
         measurements: Sequence[Measurement], history: History) -> Plan:
    """The decision for one sync of one FederatedHPA."""
    lo, hi = view.min_replicas, view.max_replicas
    if current == 0 and lo != 0:
        return Plan(0, False, "", (Condition("ScalingActive", FALSE, "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero"),),
                    (), history)
    if current > hi or current < lo:
        desired = hi if current > hi else lo
        why = ("Current number of replicas above Spec.MaxReplicas" if current > hi
               else "Current number of replicas below Spec.MinReplicas")
        return Plan(desired, True, why,
                    (Condition("AbleToScale", TRUE, "SucceededRescale", why),),
                    (), history)
    best: int | None = None
    best_name = ""
    invalid: list[str] = []
    statuses: list[dict[str, Any]] = []
    for m in measurements:
        try:
            rec = _recommend(current, ready, m)
        except MetricError as exc:
            invalid.append(f"{m.metric.name}: {exc}")
            continue
        cpu_average = (m.metric.type, m.metric.name, m.metric.target_type) == (
            "Resource", "cpu", "AverageValue")
        statuses.append(m.metric.status_entry(rec.current / 1000 if cpu_average
                                              else rec.current))
        if best is None or rec.replicas > best:
            best, best_name = rec.replicas, m.metric.name
    if best is None or (invalid and best < current):
        message = "; ".join(invalid) or "no metrics"
        return Plan(current, False, "", (
            Condition("AbleToScale", TRUE, "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale"),
            Condition("ScalingActive", FALSE, "FailedGetObjectMetric", message)),
            tuple(statuses), history)
    up = rules_of(view.behavior, "scaleUp")
    down = rules_of(view.behavior, "scaleDown")
    out = bh.normalize(now, current, best, lo, hi, history.recommendations, history.ups,
                       history.downs, up, down)
    rescale = out.replicas != current
    reason = f"{best_name} above target" if best > current else "All metrics below target"
    ups, downs = history.ups, history.downs
    if out.replicas > current:
        ups = bh.record_event(now, ups, out.replicas - current, up)
    elif out.replicas < current:
        downs = bh.record_event(now, downs, current - out.replicas, down)
    able = ("ReadyForNewScale" if out.able_reason == "ReadyForNewScale" else out.able_reason)
    conditions = (
        Condition("AbleToScale", TRUE, able,
                  "recommended size matches current size" if able == "ReadyForNewScale"
                  else "recent recommendations were "
                  + ("lower" if able == "ScaleUpStabilized" else "higher")
                  + " than current one, applying the "
                  + ("lowest" if able == "ScaleUpStabilized" else "highest")
                  + " recent recommendation"),
        Condition("ScalingActive", TRUE, "ValidMetricFound",
                  f"the HPA was able to successfully calculate a replica count from "
                  f"{best_name}"),
        Condition("ScalingLimited", TRUE if out.limited else FALSE, out.limit_reason,
                  _LIMIT_MESSAGES.get(out.limit_reason, "")),
    )
    events: tuple[tuple[EventType, str, str], ...] = ()
    if rescale:
        events = (("Normal", "SuccessfulRescale",
                   f"New size: {out.replicas}; reason: {reason}"),)
    return Plan(out.replicas, rescale, reason, conditions, tuple(statuses),
                History(out.history, ups, downs), events)


_LIMIT_MESSAGES = {
    "DesiredWithinRange": "the desired count is within the acceptable range",
    "TooManyReplicas": "the desired replica count is more than the maximum replica count",
    "TooFewReplicas": "the desired replica count is less than the minimum replica count",
    "ScaleUpLimit": "the desired replica count is increasing faster than the maximum scale rate",
    "ScaleDownLimit":
        "the desired replica count is decreasing faster than the maximum scale rate",
}
