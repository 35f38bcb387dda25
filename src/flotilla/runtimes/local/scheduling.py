"""Pod placement on virtual nodes: filter by readiness, selector and free resources,
then prefer nodes with fewer pods of the same owner and the least allocation (the
default Kubernetes spread), so replicas land on different nodes when they can."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from flotilla.runtimes.base import Resources
from flotilla.runtimes.local.config import NodeConfig
from flotilla.runtimes.local.manifests import PodTemplate

#: what the Kubernetes scheduler assumes for scoring a pod that requests nothing
_DEFAULT_CPU = 100
_DEFAULT_MEMORY = 200 * 2**20


@dataclass(slots=True)
class NodeState:
    config: NodeConfig
    ready: bool = True

    @property
    def name(self) -> str:
        return self.config.name


def _shortfalls(node: NodeState, request: Resources, used: Resources,
                selector: Mapping[str, str]) -> list[str]:
    if not node.ready:
        return ["node(s) were not ready"]
    if any(node.config.labels.get(k) != v for k, v in selector.items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    cap = node.config.capacity
    out = []
    if used.cpu_millis + request.cpu_millis > cap.cpu_millis:
        out.append("Insufficient cpu")
    if used.memory_bytes + request.memory_bytes > cap.memory_bytes:
        out.append("Insufficient memory")
    if used.pods + 1 > cap.pods:
        out.append("Too many pods")
    return out


def place(template: PodTemplate, nodes: list[NodeState], used: Mapping[str, Resources],
          same_owner: Mapping[str, int]) -> tuple[str | None, str]:
    """(node name, "") or (None, a kube-scheduler style reason)."""
    request = template.requests
    reasons: Counter[str] = Counter()
    candidates = []
    for node in nodes:
        node_used = used.get(node.name, Resources())
        missing = _shortfalls(node, request, node_used, template.node_selector)
        if missing:
            reasons.update(missing)
            continue
        cap = node.config.capacity
        cpu = (node_used.cpu_millis + (request.cpu_millis or _DEFAULT_CPU)) / max(
            cap.cpu_millis, 1)
        memory = (node_used.memory_bytes + (request.memory_bytes or _DEFAULT_MEMORY)) / max(
            cap.memory_bytes, 1)
        candidates.append((same_owner.get(node.name, 0), (cpu + memory) / 2, node_used.pods,
                           node.name))
    if candidates:
        return min(candidates)[3], ""
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return None, f"0/{len(nodes)} nodes are available: {detail}."


def fit_count(template: PodTemplate, nodes: list[NodeState],
              used: Mapping[str, Resources]) -> int:
    """How many more pods of ``template`` fit on the ready nodes right now."""
    request = template.requests
    total = 0
    for node in nodes:
        if not node.ready or any(node.config.labels.get(k) != v
                                 for k, v in template.node_selector.items()):
            continue
        free = node.config.capacity - used.get(node.name, Resources())
        limits = [free.pods]
        if request.cpu_millis:
            limits.append(free.cpu_millis // request.cpu_millis)
        if request.memory_bytes:
            limits.append(free.memory_bytes // request.memory_bytes)
        total += max(0, min(limits))
    return total
