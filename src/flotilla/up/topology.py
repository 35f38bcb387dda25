"""Which clusters `flotilla up` starts: the default three, or a ``clusters.yaml``.

    clusters:
    - name: east-1
      region: cn-east
      zone: cn-east-a
      labels: {tier: core}
      nodes: 3
      nodeCpu: "4"
      nodeMemory: 8Gi
      latency: 30ms                # WAN latency, one way (up --netns: docs/netns.md)
    - name: south-1
      runtime: kubernetes          # a real Kubernetes control plane (scripts/kube-up.sh)
    - name: west-1
      kubeconfig: ~/.kube/west-1   # an existing Kubernetes cluster (runtime implied)

See docs/kubernetes.md ("flotilla up with Kubernetes members").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flotilla.resources.models.common import parse_duration
from flotilla.resources.wellknown import LABEL_BURST


class TopologyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    name: str
    region: str
    zone: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    nodes: int = 3
    node_cpu: str = "4"
    node_memory: str = "8Gi"
    #: where the agent's own endpoint listens and its API connections come from ("":
    #: ``address``); `flotilla up --netns` gives it an address apart from the ingress,
    #: so the control-plane and data-plane paths can be cut separately
    agent_address: str = ""
    #: where pods bind ("": the local runtime's 127.0.0.1)
    pod_address: str = ""
    #: the cluster's own address block (CIDR), its ``spec.addressRange`` when set
    address_block: str = ""
    #: the agent's runtime: "local" (processes here) or "kubernetes"
    runtime: str = "local"
    #: kubernetes: the kubeconfig of an existing cluster; "": `up` starts one
    kubeconfig: str = ""
    #: WAN latency, seconds one way from the host (`up --netns` only: docs/netns.md)
    latency: float = 0.0

    @property
    def is_kubernetes(self) -> bool:
        return self.runtime == "kubernetes"


def loopback_address(index: int) -> str:
    """A distinct loopback address per cluster: 127.0.11.1, 127.0.12.1, ...
    (Linux routes all of 127.0.0.0/8 to lo, so no set-up is needed)."""
    return f"127.0.{11 + index}.1"


_DEFAULTS = (
    ("east-1", "cn-east", "cn-east-a", {"tier": "core"}),
    ("south-1", "cn-south", "cn-south-a", {"tier": "core"}),
    ("burst-1", "cn-south", "cn-south-b", {"tier": "burst", LABEL_BURST: "true"}),
)


def default_clusters(count: int = 3) -> list[ClusterPlan]:
    """Three clusters in two regions, the third a burst cluster; more cycle regions."""
    if count < 1:
        raise TopologyError("--clusters must be at least 1")
    plans = []
    for i in range(count):
        if i < len(_DEFAULTS):
            name, region, zone, labels = _DEFAULTS[i]
        else:
            region = ("cn-east", "cn-south")[i % 2]
            name, zone, labels = f"extra-{i}", f"{region}-c", {"tier": "extra"}
        plans.append(ClusterPlan(name, region, zone, loopback_address(i), dict(labels)))
    return plans


_FIELDS = {"name", "region", "zone", "labels", "nodes", "nodeCpu", "nodeMemory", "address",
           "runtime", "kubeconfig", "latency"}
RUNTIMES = ("local", "kubernetes")


def load_clusters(path: Path) -> list[ClusterPlan]:
    """Parse a clusters.yaml; errors name the file and the entry."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError(f"{path}: {exc}") from None
    entries = (doc or {}).get("clusters") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TopologyError(f"{path}: expected a top-level 'clusters:' list")
    plans, names = [], set()
    for i, raw in enumerate(entries):
        where = f"{path}: clusters[{i}]"
        if not isinstance(raw, dict):
            raise TopologyError(f"{where}: expected a mapping")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise TopologyError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise TopologyError(f"{where}.name: required")
        if name in names:
            raise TopologyError(f"{where}.name: duplicate cluster {name!r}")
        names.add(name)
        labels: Any = raw.get("labels") or {}
        if not isinstance(labels, dict):
            raise TopologyError(f"{where}.labels: expected a mapping")
        nodes = raw.get("nodes", 3)
        if not isinstance(nodes, int) or nodes < 1:
            raise TopologyError(f"{where}.nodes: expected a positive integer")
        kubeconfig = raw.get("kubeconfig") or ""
        if not isinstance(kubeconfig, str):
            raise TopologyError(f"{where}.kubeconfig: expected a path")
        runtime = raw.get("runtime") or ("kubernetes" if kubeconfig else "local")
        if runtime not in RUNTIMES:
            raise TopologyError(f"{where}.runtime: expected one of {', '.join(RUNTIMES)}")
        if kubeconfig and runtime != "kubernetes":
            raise TopologyError(f"{where}.kubeconfig: only with runtime: kubernetes")
        if kubeconfig:
            kubeconfig = str((path.parent / Path(kubeconfig).expanduser()).resolve())
        try:
            latency = parse_duration(str(raw.get("latency") or "0"))
        except ValueError as exc:
            raise TopologyError(f"{where}.latency: {exc}") from None
        plans.append(ClusterPlan(
            name=name,
            region=str(raw.get("region", "")),
            zone=str(raw.get("zone", "")),
            address=str(raw.get("address") or loopback_address(i)),
            labels={str(k): str(v) for k, v in labels.items()},
            nodes=nodes,
            node_cpu=str(raw.get("nodeCpu", "4")),
            node_memory=str(raw.get("nodeMemory", "8Gi")),
            runtime=str(runtime), kubeconfig=kubeconfig, latency=latency,
        ))
    return plans
