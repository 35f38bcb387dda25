"""The Runtime seam: what an agent needs from the thing that actually runs workloads.

The agent speaks only this protocol, so the same agent drives the embedded ``local``
runtime (processes on this machine) and, later, ``kubernetes`` (a real cluster through
its API). The contract is deliberately declarative and small:

* ``apply`` takes the *complete* desired set of manifests for the cluster; anything
  applied before and absent now is removed. The agent never computes diffs.
* Status is read back as plain, immutable dataclasses, so the agent can compare two
  snapshots cheaply and report only when something changed.
* ``changes()`` lets the agent wait for "something changed" instead of polling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Manifest = dict[str, Any]


#: how a manifest is named between the agent and its runtime:
#: (apiVersion, kind, namespace or "default", name)
ManifestIdentifier = tuple[str, str, str, str]


def manifest_identifier(manifest: Manifest) -> ManifestIdentifier:
    meta = manifest.get("metadata") or {}
    return (str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")),
            str(meta.get("namespace") or "default"), str(meta.get("name", "")))


#: how `ClusterInfo.unapplied` says "not written yet" (as opposed to "refused")
APPLYING = "applying"


class ManifestError(ValueError):
    """A manifest the runtime cannot run; the message names the object and field."""


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A Job's progress on this cluster, in the terms of Kubernetes ``JobStatus``."""

    active: int
    succeeded: int
    failed: int
    #: compact index text (`flotilla.resources.indexes`); "" for NonIndexed Jobs
    completed_indexes: str = ""
    #: the indexes this cluster owes, same text; "" for NonIndexed Jobs
    indexes: str = ""
    #: failures a podFailurePolicy rule said to ignore (not counted against backoffLimit)
    ignored: int = 0
    start_time: float | None = None
    completion_time: float | None = None


@dataclass(frozen=True, slots=True)
class PodUsage:
    """One pod's measured use (the metrics API's PodMetrics, summed over containers):
    CPU in millicores averaged since the previous measurement, memory as resident bytes."""

    name: str
    cpu_millicores: int
    memory_bytes: int
    ready: bool


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """A Deployment's status, in the shape of Kubernetes ``DeploymentStatus``; a Job's
    (``kind`` "Job") carries its counts in ``job``, replica fields being its pods."""

    kind: str
    namespace: str
    name: str
    desired_replicas: int
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    observed_generation: int
    conditions: tuple[Condition, ...] = ()
    job: JobProgress | None = None
    #: per-pod usage where the runtime measures it (the autoscaler's Resource metrics)
    pod_usage: tuple[PodUsage, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    image: str
    #: "waiting" | "running" | "terminated"
    state: str
    #: e.g. ContainerCreating, CrashLoopBackOff, CreateContainerConfigError, Error
    reason: str
    message: str
    ready: bool
    restart_count: int
    pid: int | None
    #: container port name (or number as text) -> port assigned on this machine
    ports: dict[str, int] = field(default_factory=dict)
    last_exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class PodStatus:
    namespace: str
    name: str
    #: owning workload, e.g. "Deployment/web"
    owner: str
    node: str | None
    #: Pending | Running | Succeeded | Failed
    phase: str
    #: what ``kubectl get pods`` shows in STATUS: Running, Pending, CrashLoopBackOff...
    status: str
    reason: str
    message: str
    ready: bool
    terminating: bool
    restarts: int
    address: str
    labels: dict[str, str]
    template_hash: str
    created: float
    containers: tuple[ContainerStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """Cpu in millicores, memory in bytes, pods as a count."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis,
                         self.memory_bytes + other.memory_bytes, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis - other.cpu_millis,
                         self.memory_bytes - other.memory_bytes, self.pods - other.pods)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    ready: bool
    capacity: Resources
    allocatable: Resources
    allocated: Resources
    pods: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeSummary:
    total: int
    ready: int


@dataclass(frozen=True, slots=True)
class CapacityStatus:
    capacity: Resources
    allocatable: Resources
    #: sum of the requests of pods bound to Ready nodes
    allocated: Resources
    nodes: NodeSummary


@dataclass(frozen=True, slots=True)
class ServicePortStatus:
    name: str
    port: int
    protocol: str
    target_port: int | str
    #: where the cluster's ingress listens for this port (None: not exposed, e.g. conflict)
    ingress_address: str | None = None
    ingress_port: int | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    #: Service port name ("" for an unnamed single port) -> port on ``address``
    ports: dict[str, int]
    pod: str
    node: str | None
    ready: bool = True


@dataclass(frozen=True, slots=True)
class ServiceEndpoints:
    namespace: str
    name: str
    ports: tuple[ServicePortStatus, ...]
    #: ready endpoints only: a not-ready pod never receives traffic
    endpoints: tuple[Endpoint, ...]


@dataclass(slots=True)
class RuntimeCounters:
    """Monotonic counts a runtime keeps for the agent's /metrics: events that leave no
    trace in the status snapshots (a probe that failed once and then passed). Optional:
    a runtime that has one exposes it as ``counters``; the agent exports zeros else."""

    #: failed probe runs by probe kind ("liveness", "readiness")
    probe_failures: dict[str, int] = field(default_factory=lambda: {
        "liveness": 0, "readiness": 0})

    def probe_failed(self, kind: str) -> None:
        self.probe_failures[kind] = self.probe_failures.get(kind, 0) + 1

@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What a runtime knows about its cluster beyond capacity: conditions the agent
    reports on the Cluster (e.g. ``APIServerReachable`` of a Kubernetes member) and the
    cluster software's version ("" when it has none)."""

    conditions: tuple[Condition, ...] = ()
    kubernetes_version: str = ""
    #: manifests of the desired set that are not applied in the cluster yet, as
    #: ((apiVersion, kind, namespace, name), why) pairs: "applying" until the runtime
    #: has written them, else the cluster's refusal. A runtime whose ``apply`` takes
    #: effect before it returns leaves it empty; one that applies in the background
    #: (``kubernetes``) lists every manifest until the set is written, so a Work is
    #: not reported Applied before its objects exist.
    unapplied: tuple[tuple[ManifestIdentifier, str], ...] = ()


class Runtime(Protocol):
    """One member cluster as the agent sees it. See the module docstring for the contract."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None:
        """Start serving; adopt what a previous run left running and still wanted, kill
        the rest. Must be called once, before anything else."""

    async def apply(self, manifests: list[Manifest]) -> None:
        """Make the desired set exactly ``manifests``. Raises ManifestError (and changes
        nothing) if any manifest is invalid."""

    def workloads(self) -> list[WorkloadStatus]: ...

    def pods(self) -> list[PodStatus]: ...

    def nodes(self) -> list[NodeStatus]: ...

    def endpoints(self) -> list[ServiceEndpoints]: ...

    def capacity(self) -> CapacityStatus: ...

    def info(self) -> ClusterInfo: ...

    def estimate_replicas(self, pod_template: Manifest) -> int:
        """How many more pods of this template would fit now (input for dynamic weights)."""

    def changes(self) -> AsyncIterator[int]:
        """Yields a growing version number each time observable state changed; several
        changes between two reads are coalesced into one yield."""

    async def fail_node(self, name: str) -> None: ...

    async def recover_node(self, name: str) -> None: ...

    async def kill_pod(self, namespace: str, name: str) -> None:
        """Kill a pod's processes at once (SIGKILL), as a crash would; its owner replaces it."""

    def logs(self, namespace: str, pod: str, container: str | None = None,
             tail: int | None = None) -> str: ...

    def log_path(self, namespace: str, pod: str, container: str | None = None) -> Path: ...

    async def stop(self, *, keep_pods: bool) -> None:
        """keep_pods=True leaves the processes running for the next run to adopt (agent
        restart); False terminates every pod gracefully."""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """What an agent knows about its cluster from its command line, for any runtime."""

    cluster: str
    region: str = ""
    zone: str = ""
    address: str = "127.0.0.1"
    state_dir: Path = Path(".flotilla/cluster")
    nodes: int = 3
    node_cpu: str = "4"
    node_memory: str = "8Gi"
    node_pods: int = 110
    #: runtime-specific settings (e.g. kubeconfig path for ``kubernetes``)
    extra: dict[str, str] = field(default_factory=dict)


RuntimeFactory = Callable[[RuntimeOptions], Runtime]
