"""FederatedAutoscaler: one replica count for a template across all its clusters, driven
by a load metric, spilling into burst clusters at peak.

Deliberately small: one metric target, min/max, burst clusters and stabilisation
windows. The scheduler divides the resulting count as the template's policy says.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from flotilla.resources.models.common import (
    Condition,
    Duration,
    Model,
    NonNegInt,
    PosInt,
    Timestamp,
)
from flotilla.resources.models.meta import Object

__all__ = [
    "FederatedAutoscaler",
    "FederatedAutoscalerSpec",
    "FederatedAutoscalerStatus",
    "MetricTarget",
    "ScaleBehavior",
    "ScaleTargetRef",
]


class ScaleTargetRef(Model):
    api_version: str = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(min_length=1)


class MetricTarget(Model):
    """Exactly one target per autoscaler; replicas = ceil(total load / target)."""

    #: Requests per second each replica should serve (from the gateway's metrics).
    requests_per_second_per_replica: Annotated[float, Field(gt=0)] | None = None
    #: Average CPU use per replica as a percentage of its request (from the agents).
    cpu_utilization_percent: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MetricTarget:
        given = [v for v in (self.requests_per_second_per_replica,
                             self.cpu_utilization_percent) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of requestsPerSecondPerReplica or cpuUtilizationPercent")
        return self


class ScaleRule(Model):
    #: The recommendation used is the extreme over this window (flapping guard).
    stabilization_window: Duration = 0.0
    #: Largest change per step, as a percentage of current replicas (at least 1 replica).
    max_step_percent: Annotated[int, Field(ge=1)] = 100


class ScaleBehavior(Model):
    scale_up: ScaleRule = Field(default_factory=ScaleRule)
    scale_down: ScaleRule = Field(default_factory=lambda: ScaleRule(stabilization_window=300.0))


class FederatedAutoscalerSpec(Model):
    scale_target_ref: ScaleTargetRef
    min_replicas: PosInt = 1
    max_replicas: PosInt
    target: MetricTarget
    #: Clusters used only when the regular placement is full (peak load); drained first.
    burst_clusters: list[str] = []
    behavior: ScaleBehavior = Field(default_factory=ScaleBehavior)

    @model_validator(mode="after")
    def _bounds(self) -> FederatedAutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class FederatedAutoscalerStatus(Model):
    current_replicas: NonNegInt = 0
    desired_replicas: NonNegInt = 0
    current_metric: float | None = None
    last_scale_time: Timestamp | None = None
    conditions: list[Condition] = []


class FederatedAutoscaler(Object):
    spec: FederatedAutoscalerSpec
    status: FederatedAutoscalerStatus = Field(default_factory=FederatedAutoscalerStatus)
