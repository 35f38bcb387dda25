"""ResourceBinding (the scheduler's decision) and Work (what one cluster must run).

Shapes follow Karmada's ``work.karmada.io`` types, trimmed to what Flotilla uses, so the
vocabulary (``spec.clusters``, ``aggregatedStatus``, ``manifestStatuses``) is the one a
Karmada user already knows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    Condition,
    Model,
    NonNegInt,
    Quantity,
    Timestamp,
)
from flotilla.resources.models.meta import Object
from flotilla.resources.models.policy import Placement, PurgeMode

__all__ = [
    "AggregatedStatusItem",
    "GracefulEvictionTask",
    "ManifestStatus",
    "ObjectReference",
    "ResourceBinding",
    "ResourceBindingSpec",
    "ResourceBindingStatus",
    "TargetCluster",
    "Work",
    "WorkSpec",
    "WorkStatus",
]

Health = Literal["Healthy", "Unhealthy", "Unknown"]


class ObjectReference(Model):
    """The resource template a binding is for."""

    api_version: str
    kind: str
    namespace: str = ""
    name: str
    uid: str = ""
    resource_version: str = ""


class PolicyReference(Model):
    kind: Literal["PropagationPolicy", "ClusterPropagationPolicy"]
    namespace: str = ""
    name: str


class TargetCluster(Model):
    name: str
    replicas: NonNegInt = 0


class ResourceRequest(Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class ReplicaRequirements(Model):
    """Per-replica requests the scheduler checks against each cluster's free capacity."""

    resource_request: ResourceRequest = Field(default_factory=ResourceRequest)


class GracefulEvictionTask(Model):
    """A cluster being left: its replicas stay until replacements are ready elsewhere."""

    from_cluster: str
    replicas: NonNegInt | None = None
    reason: str = ""
    message: str = ""
    #: The controller that asked for the eviction (failover, taint manager...).
    producer: str = ""
    #: Keep the old replicas until a person clears this (purgeMode Never).
    suppress_deletion: bool | None = None
    purge_mode: PurgeMode = "Graciously"
    grace_period_seconds: NonNegInt | None = None
    creation_timestamp: Timestamp | None = None


class ResourceBindingSpec(Model):
    resource: ObjectReference
    replicas: NonNegInt = 0
    replica_requirements: ReplicaRequirements | None = None
    clusters: list[TargetCluster] = []
    #: The policy's placement as of scheduling, so a policy edit is seen as a change.
    placement: Placement | None = None
    policy: PolicyReference | None = None
    graceful_eviction_tasks: list[GracefulEvictionTask] = []


class AggregatedStatusItem(Model):
    cluster_name: str
    #: The workload's status as the member cluster reported it (e.g. Deployment status).
    status: dict[str, Any] = {}
    applied: bool = False
    applied_message: str = ""
    health: Health = "Unknown"


class ResourceBindingStatus(Model):
    scheduler_observed_generation: NonNegInt | None = None
    conditions: list[Condition] = []
    aggregated_status: list[AggregatedStatusItem] = []


class ResourceBinding(Object):
    spec: ResourceBindingSpec
    status: ResourceBindingStatus = Field(default_factory=ResourceBindingStatus)


def _manifest(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PydanticCustomError("manifest", "expected an object (a Kubernetes manifest)")
    missing = [f for f in ("apiVersion", "kind") if not isinstance(value.get(f), str)]
    meta = value.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        missing.append("metadata.name")
    if missing:
        raise PydanticCustomError("manifest", "manifest lacks {fields}",
                                  {"fields": ", ".join(missing)})
    return value


#: A rendered manifest, kept as raw JSON: it is the exact object the agent applies.
Manifest = Annotated[dict[str, Any], PlainValidator(_manifest)]


class WorkloadTemplate(Model):
    manifests: list[Manifest] = []


class WorkSpec(Model):
    workload: WorkloadTemplate = Field(default_factory=WorkloadTemplate)


class ResourceIdentifier(Model):
    ordinal: NonNegInt
    group: str = ""
    version: str = ""
    kind: str
    namespace: str = ""
    name: str


class ManifestStatus(Model):
    identifier: ResourceIdentifier
    status: dict[str, Any] = {}
    health: Health = "Unknown"


class WorkStatus(Model):
    conditions: list[Condition] = []
    manifest_statuses: list[ManifestStatus] = []


class Work(Object):
    spec: WorkSpec = Field(default_factory=WorkSpec)
    status: WorkStatus = Field(default_factory=WorkStatus)
