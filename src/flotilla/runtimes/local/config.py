"""Configuration of one local cluster: identity, nodes, timings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.resources.quantity import cpu_millis, memory_bytes
from flotilla.runtimes.base import Resources, RuntimeOptions
from flotilla.runtimes.local.containment import ENV as CONTAINMENT_ENV
from flotilla.runtimes.local.containment import parse_mode
from flotilla.runtimes.local.users import PodUser, parse_pod_user


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    capacity: Resources
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Timings:
    """Kubernetes defaults; tests shrink them so a crash loop takes a second, not minutes."""

    #: first restart delay of a crashing container; doubles per crash up to the cap
    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    #: a container that ran this long without crashing starts again from the base delay
    backoff_reset: float = 600.0
    #: upper bound on any terminationGracePeriodSeconds (keeps agent shutdown bounded)
    max_grace: float = 30.0


@dataclass(frozen=True, slots=True)
class LocalClusterConfig:
    name: str
    state_dir: Path
    address: str = "127.0.0.1"
    region: str = ""
    zone: str = ""
    nodes: tuple[NodeConfig, ...] = ()
    timings: Timings = Timings()
    #: address pods bind to and endpoints advertise
    pod_address: str = "127.0.0.1"
    #: who pods run as unless their securityContext says; None: nobody when the agent
    #: is root, else the agent's own user (see `flotilla.runtimes.local.users`)
    pod_user: PodUser | None = None
    #: how pods are contained: "auto" (a cgroup v2 per container when one is writable,
    #: else process trees + subreaper), "cgroup" (required) or "process" (see
    #: `flotilla.runtimes.local.containment`)
    containment: str = "auto"

    @classmethod
    def uniform(cls, name: str, state_dir: Path, *, nodes: int = 3, cpu: str = "4",
                memory: str = "8Gi", pods: int = 110, address: str = "127.0.0.1",
                region: str = "", zone: str = "", timings: Timings | None = None,
                pod_user: PodUser | None = None,
                containment: str = "auto",
                pod_address: str = "127.0.0.1") -> LocalClusterConfig:
        """N identical nodes named ``<cluster>-node-<i>``, as ``flotilla agent --nodes`` makes."""
        if nodes < 1:
            raise ValueError(f"nodes: a cluster needs at least one node, got {nodes}")
        capacity = Resources(cpu_millis(cpu, "node cpu"), memory_bytes(memory, "node memory"),
                             pods)
        labels = {"topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone}
        node_list = tuple(
            NodeConfig(f"{name}-node-{i}", capacity,
                       {**labels, "kubernetes.io/hostname": f"{name}-node-{i}"})
            for i in range(1, nodes + 1))
        return cls(name=name, state_dir=state_dir, address=address, region=region, zone=zone,
                   nodes=node_list, timings=timings or Timings(), pod_user=pod_user,
                   containment=parse_mode(containment), pod_address=pod_address)

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> LocalClusterConfig:
        extra = options.extra
        defaults = Timings()
        timings = Timings(
            backoff_base=float(extra.get("backoff-base", defaults.backoff_base)),
            backoff_cap=float(extra.get("backoff-cap", defaults.backoff_cap)),
        )
        return cls.uniform(options.cluster, options.state_dir, nodes=options.nodes,
                           cpu=options.node_cpu, memory=options.node_memory,
                           pods=options.node_pods, address=options.address,
                           region=options.region, zone=options.zone, timings=timings,
                           pod_user=parse_pod_user(extra.get("pod-user")),
                           containment=extra.get("containment")
                           or os.environ.get(CONTAINMENT_ENV, "auto"),
                           pod_address=extra.get("pod-address") or "127.0.0.1")
