"""Cluster: one member cluster, its place (region/zone/provider), taints and health."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flotilla.resources.models.common import Condition, Model, NonNegInt, Quantity, Timestamp
from flotilla.resources.models.meta import Object

__all__ = [
    "Cluster",
    "ClusterSpec",
    "ClusterStatus",
    "NodeSummary",
    "ResourceSummary",
    "Taint",
    "TaintEffect",
]

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Taint(Model):
    """``corev1.Taint`` on a cluster, as Karmada uses it (``cluster.karmada.io/...``)."""

    key: str
    value: str = ""
    effect: TaintEffect
    time_added: Timestamp | None = None


class ClusterSpec(Model):
    region: str = ""
    zone: str = ""
    provider: str = ""
    taints: list[Taint] = []
    #: Cordon: no new placements, existing replicas stay.
    unschedulable: bool = False
    #: The address (host or host:port) users reach this cluster's ingress at.
    ingress_address: str = ""
    runtime: Literal["local", "kubernetes"] = "local"
    api_endpoint: str | None = None


class ResourceSummary(Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    pods: NonNegInt | None = None


class NodeSummary(Model):
    total: NonNegInt = 0
    ready: NonNegInt = 0


class ClusterStatus(Model):
    conditions: list[Condition] = []
    capacity: ResourceSummary | None = None
    allocatable: ResourceSummary | None = None
    allocated: ResourceSummary | None = None
    node_summary: NodeSummary | None = None
    last_heartbeat_time: Timestamp | None = None
    kubernetes_version: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class Cluster(Object):
    spec: ClusterSpec = Field(default_factory=ClusterSpec)
    status: ClusterStatus = Field(default_factory=ClusterStatus)

    @property
    def ready(self) -> bool:
        cond = self.status.condition("Ready")
        return cond is not None and cond.status == "True"
