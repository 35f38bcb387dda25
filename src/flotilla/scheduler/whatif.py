"""What-if: the failover the plane would do if some clusters died, decided but not done.

The same decision as the scheduling controller (`schedule_binding`, with the failed
clusters evicted the way failover evicts them), run over a copy of the current objects
in which the named clusters carry the unreachable taint and are not Ready. Nothing is
written: the answer is a `Report` the CLI prints. It lives here, next to the decision
and not among the controllers, because it is a pure function of objects any reader may
list: ``flotilla what-if`` runs it client-side, with the user's own read access.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.views import EndpointSliceView, ResourceBindingView, TrafficPolicyView
from flotilla.resources.wellknown import TAINT_UNREACHABLE

from .binding import schedule_binding, scheduler_for
from .compile import PlacementError

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WorkloadOutcome:
    binding: str  # namespace/name of the ResourceBinding
    resource: str  # Kind/name of the template
    desired: int
    before: Mapping[str, int]
    after: Mapping[str, int]
    #: Why the scheduler could not place everything (capacity, residency), or None.
    problem: str | None
    #: Why each cluster left out was left out (the scheduler's own words).
    reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def unplaced(self) -> int:
        return max(0, self.desired - sum(self.after.values()))


@dataclass(frozen=True, slots=True)
class TrafficOutcome:
    policy: str  # namespace/name of the TrafficPolicy
    service: str
    endpoints_before: int
    endpoints_left: int
    #: Clusters that would hold the service's replicas after rescheduling.
    rebuilt_on: tuple[str, ...]

    @property
    def loses_all(self) -> bool:
        return self.endpoints_before > 0 and self.endpoints_left == 0


@dataclass(frozen=True, slots=True)
class Report:
    failed: tuple[str, ...]
    workloads: tuple[WorkloadOutcome, ...]
    traffic: tuple[TrafficOutcome, ...]


def failed_view(cluster: Obj) -> dict[str, Any]:
    """A copy of ``cluster`` as the plane would see it dead: tainted, Ready=Unknown."""
    out: dict[str, Any] = copy.deepcopy(dict(cluster))
    spec = out.setdefault("spec", {})
    spec["taints"] = [*(spec.get("taints") or []),
                      {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
                      {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}]
    set_conditions(out, [Condition("Ready", "Unknown", "WhatIf")])
    return out


def what_if(failed: Iterable[str], clusters: Sequence[Obj], bindings: Sequence[Obj],
            traffic_policies: Sequence[Obj] = (), slices: Sequence[Obj] = ()) -> Report:
    """Where every Deployment's replicas would go if ``failed`` died, and which
    TrafficPolicies would be left with no endpoint until they are rebuilt."""
    dead = frozenset(failed)
    scheduler = scheduler_for(failed_view(c) if c["metadata"]["name"] in dead else c
                              for c in clusters)
    workloads: list[WorkloadOutcome] = []
    placed_by_app: dict[tuple[str, str], tuple[str, ...]] = {}
    views = sorted(((ResourceBindingView.of(b), b) for b in bindings),
                   key=lambda vb: (vb[0].namespace, vb[0].name))
    for view, b in views:
        res = view.resource
        if not res.has_replicas:
            continue
        before = dict(view.targets)
        try:
            result = schedule_binding(scheduler, dict(b), dead)
            after = dict(result.targets) if result.scheduled else \
                {n: r for n, r in before.items() if n not in dead}
            problem = result.reason
            reasons = dict(result.cluster_reasons)
        except PlacementError as exc:
            after, problem, reasons = {}, f"invalid placement: {exc}", {}
        ns = view.namespace
        desired = view.replicas
        if problem is None and sum(after.values()) < desired:
            problem = f"only {sum(after.values())} of {desired} replicas fit"
        workloads.append(WorkloadOutcome(
            f"{ns}/{view.name}", f"Deployment/{res.name}", desired,
            before, after, problem, reasons))
        placed_by_app[(ns, res.name)] = tuple(sorted(n for n, r in after.items() if r > 0))
    traffic = [_traffic(tp, slices, dead, placed_by_app) for tp in traffic_policies]
    return Report(tuple(sorted(dead)), tuple(workloads), tuple(traffic))


def _traffic(tp: Obj, slices: Sequence[Obj], dead: frozenset[str],
             placed: Mapping[tuple[str, str], tuple[str, ...]]) -> TrafficOutcome:
    policy = TrafficPolicyView.of(tp)
    ns, service = policy.meta.namespace, policy.service
    before = left = 0
    for s in map(EndpointSliceView.of, slices):
        if s.service != service or s.meta.namespace != ns:
            continue
        ready = len(s.ready_endpoints)  # the gateway's and the DNS's rule: ready is true
        before += ready
        if s.cluster not in dead:
            left += ready
    # A Service is named like the Deployment it fronts in the common case (the shop).
    return TrafficOutcome(f"{ns}/{policy.meta.name}", service, before, left,
                          placed.get((ns, service), ()))
