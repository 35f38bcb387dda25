"""Typed, read-only views of stored objects, and the shared rules about them as methods.

Controllers and data planes receive objects as the store holds them: JSON dicts. Reading
those dicts by hand in every component is how one rule ("does this cluster serve
traffic") came to be written several times and read differently. A view is the one
place that reads a kind's dict and the one place its rules live; every component asks
the view instead of the dict.

The pattern every view in this package follows (Cluster, ResourceBinding, Work,
EndpointSlice, TrafficPolicy):

* one module per kind, named after it (``cluster.py``), holding a
  ``@dataclass(frozen=True, slots=True)`` named ``<Kind>View`` and the small value types
  its fields need (``Taint``, ``EvictionTask``); `fields` holds the defensive readers
  and the ``metadata`` every view shares (`fields.Meta`);
* built by ``<Kind>View.of(obj)`` from the stored dict. ``of`` never raises: it reads
  defensively (a field of the wrong type reads as empty), because the data planes must
  keep working for every other object when one object is odd, and validation is the
  API's job (`flotilla.resources.validation`);
* read-only all the way down: tuples, frozensets and ``MappingProxyType`` over a copy,
  never a list or dict a caller could change in place, and nothing that aliases the
  cached dict it came from;
* field names in Python style for what the dict spells in camelCase
  (``spec.unschedulable`` is ``cordoned``, ``spec.ingressAddress`` is
  ``ingress_address``), plus raw strings where a later parse belongs to someone else
  (capacity quantities stay as stored: `flotilla.scheduler` parses them);
* each shared rule is a property of the view (``ClusterView.serves_traffic``), written
  once here and documented with the reason for it; a rule that needs another source of
  truth (the clock, another kind) is a function taking views, in the same module.

Views are for reading. A controller writes by building the desired object (a plain
copy of what it read, changed) and handing both to `flotilla.client.desired`, which
writes the spec and the status at most once each; conditions are set with
`flotilla.resources.conditions`.
"""

from flotilla.resources.views.binding import (
    LABEL_BINDING,
    ClusterStatus,
    EvictionTask,
    PolicyRef,
    ResourceBindingView,
    ResourceRef,
    TargetCluster,
)
from flotilla.resources.views.cluster import ClusterView, Taint
from flotilla.resources.views.cronjob import CronJobView
from flotilla.resources.views.endpoint_slice import EndpointSliceView, SliceEndpoint, SlicePort
from flotilla.resources.views.federated_hpa import FederatedHPAView, MetricView
from flotilla.resources.views.fields import Meta
from flotilla.resources.views.gateway_report import ClusterReach, GatewayReportView
from flotilla.resources.views.job import JobView
from flotilla.resources.views.traffic_policy import TrafficPolicyView
from flotilla.resources.views.work import ManifestStatus, WorkView, binding_of_label

__all__ = [
    "LABEL_BINDING",
    "ClusterReach",
    "ClusterStatus",
    "ClusterView",
    "CronJobView",
    "EndpointSliceView",
    "EvictionTask",
    "FederatedHPAView",
    "GatewayReportView",
    "JobView",
    "ManifestStatus",
    "Meta",
    "MetricView",
    "PolicyRef",
    "ResourceBindingView",
    "ResourceRef",
    "SliceEndpoint",
    "SlicePort",
    "Taint",
    "TargetCluster",
    "TrafficPolicyView",
    "WorkView",
    "binding_of_label",
]
