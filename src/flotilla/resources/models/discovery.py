"""Cross-cluster service discovery: the MCS API's ServiceExport/ServiceImport
(``multicluster.x-k8s.io/v1alpha1``, KEP-1645 shapes) and Flotilla's own EndpointSlice.

EndpointSlice is ours rather than ``discovery.k8s.io``'s because a local-runtime pod
listens on its own port, and a Kubernetes EndpointSlice has one port list for the slice.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flotilla.resources.models.common import Condition, Model
from flotilla.resources.models.meta import Object

__all__ = [
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "EndpointSliceSpec",
    "ImportedEndpoint",
    "IngressPoint",
    "ServiceExport",
    "ServiceImport",
    "ServiceImportSpec",
]

Port = Annotated[int, Field(ge=1, le=65535)]
Protocol = Literal["TCP", "UDP", "SCTP"]


class ServiceExportSpec(Model):
    """Empty in MCS v1alpha1: exporting is the object's existence."""


class ServiceExportStatus(Model):
    conditions: list[Condition] = []


class ServiceExport(Object):
    spec: ServiceExportSpec = Field(default_factory=ServiceExportSpec)
    status: ServiceExportStatus = Field(default_factory=ServiceExportStatus)


class ServicePort(Model):
    name: str = ""
    protocol: Protocol = "TCP"
    app_protocol: str | None = None
    port: Port


class ServiceImportSpec(Model):
    ips: list[str] = []
    type: Literal["ClusterSetIP", "Headless"] = "ClusterSetIP"
    ports: list[ServicePort] = []
    session_affinity: Literal["None", "ClientIP"] = "None"


class ClusterStatus(Model):
    cluster: str


class ImportedEndpoint(Model):
    """Flotilla's extension of the MCS status: one (pod, port) of one exporting cluster,
    so a client can discover addresses without the DNS (written by the discovery
    controller)."""

    cluster: str
    region: str = ""
    zone: str = ""
    address: str
    port: Port
    port_name: str = ""
    protocol: Protocol = "TCP"
    ready: bool = False
    pod: str = ""


class ServiceImportStatus(Model):
    clusters: list[ClusterStatus] = []
    endpoints: list[ImportedEndpoint] = []


class ServiceImport(Object):
    spec: ServiceImportSpec = Field(default_factory=ServiceImportSpec)
    status: ServiceImportStatus = Field(default_factory=ServiceImportStatus)


class EndpointPort(Model):
    name: str = ""
    port: Port
    protocol: Protocol = "TCP"


class IngressPoint(Model):
    """The cluster's ingress listener: where the gateway and DNS send users."""

    address: str = Field(min_length=1)
    ports: list[EndpointPort] = []


class Endpoint(Model):
    """One pod: its own address and ports (local-runtime pods each have their own)."""

    address: str = Field(min_length=1)
    ports: list[EndpointPort] = []
    ready: bool = False
    pod: str = ""
    node: str = ""
    zone: str = ""


class EndpointSliceSpec(Model):
    service: str = Field(min_length=1)
    cluster: str = Field(min_length=1)
    region: str = ""
    zone: str = ""
    ingress: IngressPoint | None = None
    endpoints: list[Endpoint] = []


class EndpointSlice(Object):
    spec: EndpointSliceSpec
