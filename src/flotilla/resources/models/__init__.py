"""Typed models of every kind Flotilla serves, one module per theme.

``MODELS`` maps a kind name (``"PropagationPolicy"``) to its model class; validation and
`flotilla.resources.validation.parse_typed` go through it, so adding a kind means adding
its model here and its row in `flotilla.resources.kinds`.
"""

from __future__ import annotations

from pydantic import BaseModel

from flotilla.resources.models.autoscaling import CronFederatedHPA, FederatedHPA
from flotilla.resources.models.batch import CronJob, Job
from flotilla.resources.models.cluster import Cluster, Taint
from flotilla.resources.models.common import (
    Condition,
    LabelSelector,
    format_duration,
    parse_duration,
    scaled_int_or_percent,
)
from flotilla.resources.models.discovery import EndpointSlice, ServiceExport, ServiceImport
from flotilla.resources.models.gateway_report import GatewayReport
from flotilla.resources.models.lease import Lease
from flotilla.resources.models.meta import KubeObject, Object, ObjectMeta
from flotilla.resources.models.policy import (
    ClusterAffinity,
    ClusterOverridePolicy,
    ClusterPropagationPolicy,
    OverridePolicy,
    Placement,
    PropagationPolicy,
)
from flotilla.resources.models.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from flotilla.resources.models.rollout import RolloutPolicy
from flotilla.resources.models.traffic import TrafficPolicy
from flotilla.resources.models.work import ResourceBinding, Work
from flotilla.resources.models.workloads import ConfigMap, Deployment, Event, Secret, Service

__all__ = [
    "MODELS",
    "Cluster",
    "ClusterAffinity",
    "ClusterOverridePolicy",
    "ClusterPropagationPolicy",
    "ClusterRole",
    "ClusterRoleBinding",
    "Condition",
    "ConfigMap",
    "CronFederatedHPA",
    "CronJob",
    "Deployment",
    "EndpointSlice",
    "Event",
    "FederatedHPA",
    "GatewayReport",
    "Job",
    "KubeObject",
    "LabelSelector",
    "Lease",
    "Object",
    "ObjectMeta",
    "OverridePolicy",
    "Placement",
    "PropagationPolicy",
    "ResourceBinding",
    "Role",
    "RoleBinding",
    "RolloutPolicy",
    "Secret",
    "Service",
    "ServiceExport",
    "ServiceImport",
    "Taint",
    "TrafficPolicy",
    "Work",
    "format_duration",
    "parse_duration",
    "scaled_int_or_percent",
]

MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in (
        Cluster, Deployment, Service, ConfigMap, Secret, PropagationPolicy,
        ClusterPropagationPolicy, OverridePolicy, ClusterOverridePolicy, ResourceBinding, Work,
        TrafficPolicy, ServiceExport, ServiceImport, RolloutPolicy, FederatedHPA, CronFederatedHPA,
        Event,
        EndpointSlice, Lease, Role, ClusterRole, RoleBinding, ClusterRoleBinding, Job,
        CronJob, GatewayReport,
    )
}
