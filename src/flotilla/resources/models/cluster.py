"""Cluster: one member cluster, its place (region/zone/provider), taints and health."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    Condition,
    Model,
    NonNegInt,
    Quantity,
    Timestamp,
    show_value,
)
from flotilla.resources.models.meta import Object
from flotilla.resources.quantity import cpu_millis, memory_bytes

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


def _cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("cidr", "expected a CIDR such as 127.0.11.0/24, got {got}",
                                  {"got": show_value(value)})
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise PydanticCustomError("cidr", "not a CIDR: {why}", {"why": str(exc)}) from None
    return value


Cidr = Annotated[str, PlainValidator(_cidr, json_schema_input_type=str)]


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
    #: CIDRs every address this cluster's agent reports (endpoints, ingress, its own
    #: endpoint) must lie in; empty refuses every address. Set by an operator (or
    #: `flotilla up`), never by the agent.
    address_range: list[Cidr] = []


def _count(value: Any) -> int:
    """A pod count: an integer, or Kubernetes' quantity string form (``"110"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise PydanticCustomError("count", "expected a non-negative integer, got {got}",
                              {"got": show_value(value)})


class ResourceSummary(Model):
    """Capacity figures; an agent may copy them from Kubernetes nodes (all strings)."""

    cpu: Quantity | None = None
    memory: Quantity | None = None
    pods: Annotated[int, PlainValidator(_count, json_schema_input_type=int | str)] | None = None

    @property
    def cpu_millis(self) -> int | None:
        return None if self.cpu is None else cpu_millis(self.cpu)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else memory_bytes(self.memory)


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
