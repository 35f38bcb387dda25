"""Kubernetes manifests Flotilla propagates and runs: Deployment, Service, ConfigMap,
Secret, and the Event record.

They are stored exactly as the user wrote them (``extra="allow"`` everywhere), so any
field Flotilla does not read still reaches a real Kubernetes member cluster. The fields
Flotilla *does* read — what the scheduler counts, what the local runtime executes, what
the gateway routes to — are type-checked, so a mistake is reported at apply time rather
than by a pod that never starts.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    IntOrPercent,
    LabelKey,
    LabelSelector,
    LabelValue,
    Loose,
    NonNegInt,
    PosInt,
    Quantity,
    Timestamp,
)
from flotilla.resources.models.meta import KubeObject, KubeObjectMeta
from flotilla.resources.quantity import QuantityError, cpu_millis, memory_bytes, parse_quantity

__all__ = [
    "ConfigMap",
    "Container",
    "ContainerPort",
    "Deployment",
    "DeploymentSpec",
    "DeploymentStatus",
    "EnvVar",
    "Event",
    "PodSpec",
    "PodTemplate",
    "Probe",
    "ResourceList",
    "Secret",
    "Service",
    "ServicePort",
    "ServiceSpec",
]

Protocol = Literal["TCP", "UDP", "SCTP"]
Port = Annotated[int, Field(ge=1, le=65535)]
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _int_or_name(value: Any) -> int | str:
    """``IntOrString`` for ports: a number 1-65535 or the name of a container port."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    if isinstance(value, str) and len(value) <= 15 and _PORT_NAME.match(value):
        return value
    raise PydanticCustomError(
        "port", "expected a port number 1-65535 or a port name (up to 15 of a-z, 0-9, '-'), "
        "got {got}", {"got": repr(value)},
    )


PortOrName = Annotated[int | str, PlainValidator(_int_or_name)]


def _base64(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("base64", "expected a base64 string, got {got}",
                                  {"got": repr(value)})
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "base64", "invalid base64 data (use stringData for plain text)") from None
    return value


def _config_key(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _CONFIG_KEY.match(value):
        raise PydanticCustomError(
            "config_key", "invalid key {got}: letters, digits, '-', '_' or '.'",
            {"got": repr(value)},
        )
    return value


Base64 = Annotated[str, PlainValidator(_base64, json_schema_input_type=str)]
ConfigKey = Annotated[str, PlainValidator(_config_key, json_schema_input_type=str)]


# --- containers ------------------------------------------------------------------------

class KeyRef(Loose):
    name: str
    key: str
    optional: bool | None = None


class EnvVarSource(Loose):
    config_map_key_ref: KeyRef | None = None
    secret_key_ref: KeyRef | None = None


class EnvVar(Loose):
    name: str = Field(min_length=1)
    value: str | None = None
    value_from: EnvVarSource | None = None


class ContainerPort(Loose):
    name: str | None = None
    container_port: Port
    protocol: Protocol = "TCP"


class ResourceList(Loose):
    """Requests or limits. Every value, extended resources too, must be a non-negative
    quantity: the scheduler sums them all when it fits a replica."""

    cpu: Quantity | None = None
    memory: Quantity | None = None

    @model_validator(mode="after")
    def _extended_are_quantities(self) -> ResourceList:
        for name, value in (self.model_extra or {}).items():
            try:
                parse_quantity(value, negative=False)
            except QuantityError as e:
                raise PydanticCustomError(
                    "quantity", "{name}: {problem}", {"name": name, "problem": str(e)},
                ) from None
        return self

    @property
    def cpu_millis(self) -> int | None:
        return None if self.cpu is None else cpu_millis(self.cpu)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else memory_bytes(self.memory)


class ResourceRequirements(Loose):
    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)


class HTTPGetAction(Loose):
    path: str = "/"
    port: PortOrName
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"


class TCPSocketAction(Loose):
    port: PortOrName


class ExecAction(Loose):
    command: list[str] = Field(min_length=1)


class Probe(Loose):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: NonNegInt = 0
    period_seconds: PosInt = 10
    timeout_seconds: PosInt = 1
    failure_threshold: PosInt = 3
    success_threshold: PosInt = 1

    @model_validator(mode="after")
    def _one_handler(self) -> Probe:
        handlers = [h for h in (self.http_get, self.tcp_socket, self.exec) if h is not None]
        if len(handlers) != 1:
            raise ValueError("a probe needs exactly one of httpGet, tcpSocket or exec")
        return self


class Container(Loose):
    name: str = Field(min_length=1, max_length=63)
    image: str = Field(min_length=1)
    command: list[str] = []
    args: list[str] = []
    env: list[EnvVar] = []
    ports: list[ContainerPort] = []
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None


class PodSpec(Loose):
    containers: list[Container] = Field(min_length=1)
    #: Read for their requests (Kubernetes' effective request rule, resources/requests.py).
    init_containers: list[Container] = []
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    termination_grace_period_seconds: NonNegInt = 30


class PodTemplateMeta(Loose):
    labels: dict[LabelKey, LabelValue] = {}
    annotations: dict[LabelKey, str] = {}


class PodTemplate(Loose):
    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: PodSpec


# --- Deployment ------------------------------------------------------------------------

class RollingUpdate(Loose):
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = "25%"


class DeploymentStrategy(Loose):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdate | None = None


class DeploymentSpec(Loose):
    replicas: NonNegInt = 1
    selector: LabelSelector
    template: PodTemplate
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    min_ready_seconds: NonNegInt = 0
    revision_history_limit: NonNegInt = 10
    paused: bool = False

    @model_validator(mode="after")
    def _selector_matches_template(self) -> DeploymentSpec:
        # Kubernetes refuses this too: the Deployment would never see its own pods.
        if not self.selector.selector().matches(self.template.metadata.labels):
            raise ValueError("selector does not match template labels")
        return self


class DeploymentStatus(Loose):
    observed_generation: NonNegInt | None = None
    replicas: NonNegInt = 0
    ready_replicas: NonNegInt = 0
    updated_replicas: NonNegInt = 0
    available_replicas: NonNegInt = 0
    unavailable_replicas: NonNegInt = 0
    conditions: list[dict[str, Any]] = []


class Deployment(KubeObject):
    spec: DeploymentSpec
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)


# --- Service ---------------------------------------------------------------------------

class ServicePort(Loose):
    name: str | None = None
    port: Port
    target_port: PortOrName | None = None
    protocol: Protocol = "TCP"

    @property
    def effective_target_port(self) -> int | str:
        """Kubernetes defaults ``targetPort`` to ``port``."""
        return self.port if self.target_port is None else self.target_port


class ServiceSpec(Loose):
    selector: dict[LabelKey, LabelValue] = {}
    ports: list[ServicePort] = []
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"


_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _service_name(value: Any) -> str:
    # A Service name becomes a DNS label (NAME.NS.svc.clusterset.local), so Kubernetes
    # holds it to RFC 1035: at most 63 characters, starting with a letter.
    if isinstance(value, str) and len(value) <= 63 and _DNS_1035.match(value):
        return value
    raise PydanticCustomError(
        "name", "invalid Service name {got}: at most 63 lower-case letters, digits or '-', "
        "starting with a letter and ending with a letter or digit", {"got": repr(value)},
    )


class ServiceMeta(KubeObjectMeta):
    name: Annotated[str, PlainValidator(_service_name, json_schema_input_type=str)]


class Service(KubeObject):
    metadata: ServiceMeta
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: dict[str, Any] = {}


# --- ConfigMap / Secret ----------------------------------------------------------------

class ConfigMap(KubeObject):
    data: dict[ConfigKey, str] = {}
    binary_data: dict[ConfigKey, Base64] = {}
    immutable: bool | None = None


class Secret(KubeObject):
    #: Values are base64 (as in Kubernetes); `decoded` returns the bytes.
    data: dict[ConfigKey, Base64] = {}
    string_data: dict[ConfigKey, str] = {}
    type: str = "Opaque"
    immutable: bool | None = None

    def decoded(self) -> dict[str, bytes]:
        """All values as bytes, ``stringData`` winning over ``data`` as in Kubernetes."""
        out = {k: base64.b64decode(v) for k, v in self.data.items()}
        out.update({k: v.encode() for k, v in self.string_data.items()})
        return out


# --- Event -----------------------------------------------------------------------------

class ObjectReference(Loose):
    api_version: str = ""
    kind: str
    namespace: str = ""
    name: str
    uid: str = ""


class EventSource(Loose):
    component: str = ""
    host: str = ""


class Event(KubeObject):
    """A ``v1`` Event: what happened to which object, counted and de-duplicated."""

    involved_object: ObjectReference
    reason: str = ""
    message: str = ""
    type: Literal["Normal", "Warning"] = "Normal"
    count: PosInt = 1
    first_timestamp: Timestamp | None = None
    last_timestamp: Timestamp | None = None
    source: EventSource = Field(default_factory=EventSource)
