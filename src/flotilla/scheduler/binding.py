"""The seam to ResourceBinding objects: what the scheduling controller reads and writes.

Kept apart from the decision so the decision stays free of API shapes. Field names follow
Karmada's ResourceBinding (``spec.clusters[{name, replicas}]``, a ``Scheduled``
condition with reason ``Success`` or ``NoClusterFit``) so that ``describe`` output reads
the same to a Karmada user.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.resources.conditions import Condition
from flotilla.resources.views.binding import ResourceBindingView

from .compile import PlacementError, compile_cluster, compile_placement, compile_requests
from .core import Scheduler
from .types import ScheduleResult, Target, WorkloadInfo

log = logging.getLogger(__name__)
SCHEDULED = "Scheduled"


def current_targets(binding: Mapping[str, Any] | None) -> tuple[Target, ...]:
    """The assignment a binding holds now (``spec.clusters``), for stable rescheduling."""
    if not binding:
        return ()
    spec = binding.get("spec") or {}
    out = []
    for item in spec.get("clusters") or []:
        if isinstance(item, Mapping) and item.get("name"):
            out.append((str(item["name"]), int(item.get("replicas") or 0)))
    return tuple(sorted(out))


def workload_of(binding: Mapping[str, Any]) -> WorkloadInfo:
    """What a binding asks the scheduler to place: its replicas and per-replica requests."""
    res = ResourceBindingView.of(binding).resource
    spec = binding.get("spec") or {}
    requests: dict[str, int] = {}
    if res.has_replicas:
        requests["pods"] = 1
        reqs = ((spec.get("replicaRequirements") or {}).get("resourceRequest")) or {}
        requests.update(compile_requests({n: reqs[n] for n in ("cpu", "memory") if n in reqs},
                                         "spec.replicaRequirements.resourceRequest"))
    key = f"{res.kind}/{res.namespace}/{res.name}"
    # Objects without replicas (Services, ConfigMaps) go everywhere the placement allows.
    # Read raw, not through the view (which reads an odd count as 0): a count that does
    # not parse must stop scheduling (InvalidInput), not place nothing.
    replicas = int(spec.get("replicas") or 0) if res.has_replicas else 1
    return WorkloadInfo(key=key, replicas=replicas, requests=requests,
                        current=current_targets(binding))


def scheduler_for(clusters: Iterable[Mapping[str, Any]]) -> Scheduler:
    """The scheduler over a set of Cluster objects; one the scheduler cannot read (a bad
    taint effect) is left out, and said so, rather than stopping all scheduling."""
    infos = []
    for c in clusters:
        try:
            infos.append(compile_cluster(c))
        except PlacementError as exc:
            log.warning("cluster %s left out of scheduling: %s",
                        (c.get("metadata") or {}).get("name"), exc)
    return Scheduler(infos)


def schedule_binding(scheduler: Scheduler, binding: Mapping[str, Any],
                     lost: frozenset[str] = frozenset()) -> ScheduleResult:
    """The placement decision for one binding: the scheduling controller's, and what-if's
    (`flotilla.scheduler.whatif`), so a what-if can never disagree with it.

    ``lost`` are clusters to decide as if failover had already evicted them (what-if's
    failed clusters): their replicas are no longer in the current assignment and they
    take none, like a cluster with a graceful-eviction task.
    """
    view = ResourceBindingView.of(binding)
    placement = compile_placement(view.placement)
    if not view.has_replicas:
        placement = dataclasses.replace(placement, scheduling_type="Duplicated")
    # Clusters being evicted (failover) take no replicas of this binding until their
    # graceful-eviction task is finished.
    evicting = lost | view.evicting
    if evicting:
        placement = dataclasses.replace(placement, affinities=tuple(
            dataclasses.replace(a, exclude=a.exclude | evicting)
            for a in placement.affinities))
    workload = workload_of(binding)
    if lost:
        workload = dataclasses.replace(workload, current=tuple(
            (n, r) for n, r in workload.current if n not in lost))
    return scheduler.schedule(workload, placement)


def target_clusters(result: ScheduleResult) -> list[dict[str, Any]]:
    """``spec.clusters`` for a binding; empty when the result is unscheduled."""
    return [{"name": name, "replicas": replicas} for name, replicas in result.targets]


def scheduled(result: ScheduleResult, generation: int = 0) -> Condition:
    """The ``Scheduled`` condition describing ``result``, to set with
    `flotilla.resources.conditions.set_condition` (which keeps the stored transition time
    while the status stays the same)."""
    if result.scheduled:
        message = "Binding has been scheduled successfully."
        if result.affinity:
            message += f" Cluster affinity group {result.affinity!r} was used."
        return Condition(SCHEDULED, "True", "Success", message, generation)
    return Condition(SCHEDULED, "False", "NoClusterFit", result.reason or "", generation)


def scheduled_condition(result: ScheduleResult, now: str, generation: int = 0
                        ) -> dict[str, Any]:
    """`scheduled` as a ``metav1.Condition`` dict that (newly) transitioned at ``now``."""
    return scheduled(result, generation).as_dict(now)
