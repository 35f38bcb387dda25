"""A ResourceBinding as the placement, failover and rollout controllers read it.

The rules that several controllers must agree on live here: which eviction tasks still
hold their old replicas (the renderer keeps those Works, failover waits on them), which
clusters take no new replicas while being evicted (the scheduler and what-if), which
bindings carry replicas at all (only Deployments), and the label that ties a binding to
the Works rendered from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flotilla.resources.conditions import Condition
from flotilla.resources.views.fields import (
    Meta,
    empty,
    entries,
    frozen_json,
    integer,
    mapping,
    number,
    text,
)

#: The template kinds whose replicas are divided between clusters (a Job's replicas are
#: its completions, docs/batch.md); every other template (Service, ConfigMap, Secret)
#: goes whole to each target.
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})
#: purgeModes under which the old replicas are already released: the task only keeps
#: the cluster out of scheduling until it times out.
RELEASED_PURGE_MODES = frozenset({"Immediately", "Directly"})
#: The label every Work rendered from a binding carries: ``<namespace>.<binding>``.
LABEL_BINDING = "flotilla.io/binding"


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """``spec.resource``: the template the binding places."""

    api_version: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""

    @property
    def has_replicas(self) -> bool:
        """Replicas are divided only for workloads; other kinds go whole everywhere."""
        return self.kind in WORKLOAD_KINDS


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """``spec.policy``: the (Cluster)PropagationPolicy the binding came from."""

    kind: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class TargetCluster:
    name: str
    replicas: int = 0


@dataclass(frozen=True, slots=True)
class EvictionTask:
    """One ``spec.gracefulEvictionTasks`` entry: replicas leaving ``from_cluster``."""

    from_cluster: str
    replicas: int = 0
    reason: str = ""
    message: str = ""
    producer: str = ""
    purge_mode: str = ""
    suppress_deletion: bool = False
    creation_timestamp: str = ""
    #: ``gracePeriodSeconds``; None when the policy's eviction timeout applies.
    grace_period_seconds: float | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> EvictionTask:
        return cls(str(raw.get("fromCluster")), integer(raw.get("replicas")),
                   text(raw.get("reason")), text(raw.get("message")),
                   text(raw.get("producer")), text(raw.get("purgeMode")),
                   raw.get("suppressDeletion") is True, text(raw.get("creationTimestamp")),
                   number(raw.get("gracePeriodSeconds")) or None)

    @property
    def released(self) -> bool:
        """The old replicas are gone (or being removed now): nothing waits on them."""
        return self.purge_mode in RELEASED_PURGE_MODES


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """One ``status.aggregatedStatus`` entry: what the agent of a cluster reported."""

    cluster: str
    applied: bool = False
    health: str = ""
    ready_replicas: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    #: The member's ``observedGeneration`` of the workload; None before it reported one.
    observed_generation: int | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> ClusterStatus:
        status = mapping(raw.get("status"))
        return cls(str(raw.get("clusterName")), raw.get("applied") is True,
                   text(raw.get("health")), integer(status.get("readyReplicas")),
                   integer(status.get("replicas")), integer(status.get("updatedReplicas")),
                   integer(status.get("observedGeneration"))
                   if "observedGeneration" in status else None)


@dataclass(frozen=True, slots=True)
class ResourceBindingView:
    """What the controllers read of a ResourceBinding. Build it with `of`."""

    meta: Meta = field(default_factory=Meta)
    resource: ResourceRef = field(default_factory=ResourceRef)
    policy: PolicyRef = field(default_factory=PolicyRef)
    #: ``spec.replicas``: the total the template asks for.
    replicas: int = 0
    #: ``spec.placement`` as stored, for `flotilla.scheduler.compile_placement`.
    placement: Mapping[str, Any] = field(default_factory=empty, hash=False)
    clusters: tuple[TargetCluster, ...] = ()
    eviction_tasks: tuple[EvictionTask, ...] = ()
    aggregated: tuple[ClusterStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> ResourceBindingView:
        """The view of a stored ResourceBinding dict; never raises."""
        obj = mapping(obj)
        spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
        res, pol = mapping(spec.get("resource")), mapping(spec.get("policy"))
        return cls(
            meta=Meta.of(obj.get("metadata")),
            resource=ResourceRef(text(res.get("apiVersion")), text(res.get("kind")),
                                 text(res.get("namespace")), text(res.get("name")),
                                 text(res.get("uid"))),
            policy=PolicyRef(text(pol.get("kind")), text(pol.get("namespace")),
                             text(pol.get("name"))),
            replicas=integer(spec.get("replicas")),
            placement=frozen_json(spec.get("placement")),
            clusters=tuple(TargetCluster(str(t.get("name")), integer(t.get("replicas")))
                           for t in entries(spec.get("clusters")) if t.get("name")),
            eviction_tasks=tuple(EvictionTask.of(t)
                                 for t in entries(spec.get("gracefulEvictionTasks"))),
            aggregated=tuple(ClusterStatus.of(i) for i in entries(status.get("aggregatedStatus"))),
            conditions=tuple(Condition.of(c)
                             for c in entries(status.get("conditions"))),
        )

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def has_replicas(self) -> bool:
        return self.resource.has_replicas

    @property
    def targets(self) -> Mapping[str, int]:
        """``spec.clusters`` as cluster -> replicas."""
        return MappingProxyType({t.name: t.replicas for t in self.clusters})

    @property
    def holding_tasks(self) -> tuple[EvictionTask, ...]:
        """Eviction tasks whose old replicas still run: their Works stay."""
        return tuple(t for t in self.eviction_tasks if not t.released)

    @property
    def evicting(self) -> frozenset[str]:
        """Clusters with an eviction task: they take no replicas of this binding until
        the task is finished, released or not."""
        return frozenset(t.from_cluster for t in self.eviction_tasks)

    @property
    def work_label(self) -> str:
        """The `LABEL_BINDING` value (and the name) of the Works rendered from it."""
        return f"{self.namespace}.{self.name}"

    def condition(self, type_: str) -> Condition | None:
        """The condition of ``type_`` that counts (the first), or None."""
        return next((c for c in self.conditions if c.type == type_), None)
