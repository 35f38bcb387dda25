"""The Deployment controller's arithmetic, as a pure function of the current pods.

Given the desired spec and a view of the pods that exist, `plan` says how many pods of
the current template to create and which pods to delete this round. The runtime calls
it again whenever a pod changes, so a rolling update advances as pods become ready,
exactly as the Kubernetes deployment controller does with ReplicaSets:

* new pods may be added while the total stays <= replicas + maxSurge (rounded up);
* old pods may be removed while ready pods stay >= replicas - maxUnavailable (rounded
  down); not-ready old pods go first, as they cost no availability;
* scale-down removes unscheduled, then not-ready, then the newest pods first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flotilla.runtimes.local.manifests import DeploymentSpec


@dataclass(frozen=True, slots=True)
class PodView:
    name: str
    template_hash: str
    ready: bool
    bound: bool
    created: float
    terminating: bool = False


@dataclass(slots=True)
class Plan:
    create: int = 0
    delete: list[str] = field(default_factory=list)


def resolve(value: int | str, replicas: int, *, round_up: bool) -> int:
    """maxSurge / maxUnavailable as a pod count: percentages of ``replicas``, surge
    rounded up and unavailability rounded down, as Kubernetes does."""
    if isinstance(value, int):
        return value
    scaled = int(value.rstrip("%")) * replicas / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def deletion_order(pods: list[PodView]) -> list[PodView]:
    return sorted(pods, key=lambda p: (p.bound, p.ready, -p.created))


def plan(spec: DeploymentSpec, pods: list[PodView]) -> Plan:
    active = [p for p in pods if not p.terminating]
    new = [p for p in active if p.template_hash == spec.template.hash]
    old = [p for p in active if p.template_hash != spec.template.hash]
    want = spec.replicas
    if not old:
        if spec.strategy == "Recreate" and any(
                p.terminating and p.template_hash != spec.template.hash for p in pods):
            return Plan()  # Recreate: old pods must be gone before new ones start
        return _scale(new, want)
    if spec.strategy == "Recreate":
        return Plan(delete=[p.name for p in old])
    surge = resolve(spec.max_surge, want, round_up=True)
    unavailable = resolve(spec.max_unavailable, want, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    result = Plan()
    if len(new) > want:
        extra = {p.name for p in deletion_order(new)[:len(new) - want]}
        result.delete += sorted(extra)
        new = [p for p in new if p.name not in extra]
    result.create = max(0, min(want + surge - len(active), want - len(new)))
    min_available = want - unavailable
    new_unavailable = sum(not p.ready for p in new)
    budget = len(active) - min_available - new_unavailable
    if budget <= 0:
        return result
    unhealthy = [p for p in deletion_order(old) if not p.ready][:budget]
    result.delete += [p.name for p in unhealthy]
    budget -= len(unhealthy)
    available = sum(p.ready for p in active)
    healthy = [p for p in deletion_order(old) if p.ready]
    count = max(0, min(budget, available - min_available, len(healthy)))
    result.delete += [p.name for p in healthy[:count]]
    return result


def _scale(pods: list[PodView], want: int) -> Plan:
    if len(pods) > want:
        return Plan(delete=[p.name for p in deletion_order(pods)[:len(pods) - want]])
    return Plan(create=want - len(pods))
