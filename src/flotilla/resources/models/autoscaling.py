"""FederatedHPA: one HorizontalPodAutoscaler for a Deployment across all its clusters.

Karmada's ``autoscaling.karmada.io/v1alpha1`` FederatedHPA with its exact field names
(the spec is ``autoscaling/v2``'s HorizontalPodAutoscalerSpec), so a Karmada user's YAML
applies unchanged; the same shape is served as ``autoscaling.flotilla.io/v1alpha1``.
What Flotilla does not implement is refused by name (`Unsupported`): ``External`` and
``ContainerResource`` metrics and a per-rule ``tolerance``. Object metrics are the
gateway's (``flotilla.io/requests-per-second``, ``flotilla.io/latency-p99``) of a
Service, the one signal a per-cluster HPA has no access to.

The controller (``flotilla.controllers.autoscaling``) runs the Kubernetes algorithm
and writes ``status`` in the autoscaling/v2 HorizontalPodAutoscalerStatus shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from flotilla.resources.cron import CronError, parse_schedule, zone
from flotilla.resources.models.common import (
    Condition,
    Model,
    NonNegInt,
    PosInt,
    Quantity,
    Timestamp,
    Unsupported,
)
from flotilla.resources.models.meta import Object

__all__ = [
    "FEDERATED_HPA_METRICS",
    "CronFederatedHPA",
    "CronFederatedHPARule",
    "CronFederatedHPASpec",
    "FederatedHPA",
    "FederatedHPASpec",
    "FederatedHPAStatus",
    "HPABehavior",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "MetricSpec",
    "MetricStatus",
    "MetricTarget",
]

#: The Object metrics the gateway provides, per Service (and per cluster in status).
REQUESTS_PER_SECOND = "flotilla.io/requests-per-second"
LATENCY_P99 = "flotilla.io/latency-p99"
FEDERATED_HPA_METRICS = (REQUESTS_PER_SECOND, LATENCY_P99)


class CrossVersionObjectReference(Model):
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    api_version: str = ""


class ScaleTargetRef(CrossVersionObjectReference):
    """Only Deployments are scaled (the kind with ``.../scale`` here)."""

    kind: Literal["Deployment"]
    api_version: Literal["apps/v1", ""] = "apps/v1"


class MetricTarget(Model):
    type: Literal["Utilization", "Value", "AverageValue"]
    value: Quantity | None = None
    average_value: Quantity | None = None
    average_utilization: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_for_type(self) -> MetricTarget:
        needed = {"Utilization": "averageUtilization", "Value": "value",
                  "AverageValue": "averageValue"}[self.type]
        given = {"averageUtilization": self.average_utilization, "value": self.value,
                 "averageValue": self.average_value}
        if given[needed] is None:
            raise ValueError(f"target type {self.type} needs {needed}")
        return self


class MetricIdentifier(Model):
    name: str = Field(min_length=1)
    selector: Unsupported = None


class ResourceMetricSource(Model):
    name: Literal["cpu", "memory"]
    target: MetricTarget

    @model_validator(mode="after")
    def _no_value(self) -> ResourceMetricSource:
        if self.target.type == "Value":
            raise ValueError("a Resource metric's target is Utilization or AverageValue")
        return self


class PodsMetricSource(Model):
    metric: MetricIdentifier
    target: MetricTarget

    @model_validator(mode="after")
    def _average(self) -> PodsMetricSource:
        if self.target.type != "AverageValue":
            raise ValueError("a Pods metric's target is AverageValue")
        return self


class ObjectMetricSource(Model):
    described_object: CrossVersionObjectReference
    metric: MetricIdentifier
    target: MetricTarget

    @model_validator(mode="after")
    def _gateway_metric(self) -> ObjectMetricSource:
        if self.metric.name not in FEDERATED_HPA_METRICS:
            raise ValueError(f"unknown Object metric {self.metric.name!r}; "
                             f"known: {', '.join(FEDERATED_HPA_METRICS)}")
        if self.described_object.kind != "Service":
            raise ValueError("the gateway's metrics describe a Service")
        if self.target.type == "Utilization":
            raise ValueError("an Object metric's target is Value or AverageValue")
        return self


class MetricSpec(Model):
    type: Literal["Resource", "Pods", "Object", "External", "ContainerResource"]
    resource: ResourceMetricSource | None = None
    pods: PodsMetricSource | None = None
    object: ObjectMetricSource | None = None
    external: Unsupported = None
    container_resource: Unsupported = None

    @model_validator(mode="after")
    def _source_for_type(self) -> MetricSpec:
        if self.type in ("External", "ContainerResource"):
            raise ValueError(f"metric type {self.type} is not supported by Flotilla")
        field = self.type.lower()
        if getattr(self, field) is None:
            raise ValueError(f"metric type {self.type} needs {field}")
        return self


class HPAScalingPolicy(Model):
    type: Literal["Pods", "Percent"]
    value: PosInt
    period_seconds: Annotated[int, Field(ge=1, le=1800)]


class HPAScalingRules(Model):
    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[HPAScalingPolicy] | None = None
    tolerance: Unsupported = None


class HPABehavior(Model):
    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


class FederatedHPASpec(Model):
    scale_target_ref: ScaleTargetRef
    min_replicas: PosInt = 1
    max_replicas: PosInt
    metrics: list[MetricSpec] = Field(default_factory=list)
    behavior: HPABehavior | None = None

    @model_validator(mode="after")
    def _bounds(self) -> FederatedHPASpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class MetricStatus(Model):
    """autoscaling/v2 MetricStatus, with what the controller measured."""

    type: str
    resource: dict[str, Any] | None = None
    pods: dict[str, Any] | None = None
    object: dict[str, Any] | None = None


class FederatedHPAStatus(Model):
    observed_generation: NonNegInt | None = None
    last_scale_time: Timestamp | None = None
    current_replicas: NonNegInt = 0
    desired_replicas: NonNegInt = 0
    current_metrics: list[MetricStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)


class FederatedHPA(Object):
    spec: FederatedHPASpec
    status: FederatedHPAStatus = Field(default_factory=FederatedHPAStatus)


# --- CronFederatedHPA ---------------------------------------------------------------

class CronTargetRef(CrossVersionObjectReference):
    """A FederatedHPA (its min/max are set) or a Deployment (its replicas are set)."""

    kind: Literal["FederatedHPA", "Deployment"]


class CronFederatedHPARule(Model):
    """One scheduled change (Karmada's CronFederatedHPARule)."""

    name: str = Field(min_length=1)
    schedule: str = Field(min_length=1)
    target_replicas: NonNegInt | None = None
    target_min_replicas: PosInt | None = None
    target_max_replicas: PosInt | None = None
    suspend: bool = False
    time_zone: str | None = None
    successful_history_limit: Annotated[int, Field(ge=1, le=32)] = 3
    failed_history_limit: Annotated[int, Field(ge=1, le=32)] = 3

    @model_validator(mode="after")
    def _readable(self) -> CronFederatedHPARule:
        try:
            parse_schedule(self.schedule, with_seconds=True)
            zone(self.time_zone)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        if (self.target_min_replicas is not None and self.target_max_replicas is not None
                and self.target_min_replicas > self.target_max_replicas):
            raise ValueError("targetMinReplicas must not exceed targetMaxReplicas")
        return self


class CronFederatedHPASpec(Model):
    scale_target_ref: CronTargetRef
    rules: list[CronFederatedHPARule] = Field(min_length=1)

    @model_validator(mode="after")
    def _fits_target(self) -> CronFederatedHPASpec:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        for rule in self.rules:
            if self.scale_target_ref.kind == "Deployment" and rule.target_replicas is None:
                raise ValueError(f"rule {rule.name}: a Deployment target needs "
                                 "targetReplicas")
            if self.scale_target_ref.kind == "FederatedHPA" and (
                    rule.target_min_replicas is None and rule.target_max_replicas is None):
                raise ValueError(f"rule {rule.name}: a FederatedHPA target needs "
                                 "targetMinReplicas or targetMaxReplicas")
        return self


class SuccessfulExecution(Model):
    schedule_time: Timestamp | None = None
    execution_time: Timestamp | None = None
    applied_replicas: NonNegInt | None = None
    applied_max_replicas: NonNegInt | None = None
    applied_min_replicas: NonNegInt | None = None


class FailedExecution(Model):
    schedule_time: Timestamp | None = None
    execution_time: Timestamp | None = None
    message: str = ""


class ExecutionHistory(Model):
    rule_name: str
    next_execution_time: Timestamp | None = None
    successful_executions: list[SuccessfulExecution] = Field(default_factory=list)
    failed_executions: list[FailedExecution] = Field(default_factory=list)


class CronFederatedHPAStatus(Model):
    execution_histories: list[ExecutionHistory] = Field(default_factory=list)


class CronFederatedHPA(Object):
    """Karmada's CronFederatedHPA: scheduled changes to a FederatedHPA's bounds or a
    Deployment's replicas (a known peak is scaled for before its traffic arrives)."""

    spec: CronFederatedHPASpec
    status: CronFederatedHPAStatus = Field(default_factory=CronFederatedHPAStatus)
