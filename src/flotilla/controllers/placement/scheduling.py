"""The scheduling controller: runs the placement decision for each ResourceBinding.

It compiles the member clusters once per change of the cluster set (a `Scheduler`
snapshot with its caches), and for each binding decides ``spec.clusters`` starting from
the current assignment, so rescheduling moves as few replicas as the strategy allows.
The outcome is a ``Scheduled`` condition, and an Event whenever the decision changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.mutate import mutate
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.permanent import PermanentError
from flotilla.resources.conditions import Condition, conditions_of, find, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.quantity import QuantityError
from flotilla.resources.wellknown import now_rfc3339
from flotilla.scheduler import (
    InvalidQuantity,
    PlacementError,
    Scheduler,
    ScheduleResult,
    WorkloadInfo,
    compile_cluster,
    compile_placement,
    compile_requests,
    current_targets,
    scheduled_condition,
    target_clusters,
)

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
CLUSTER = by_kind("Cluster")


def workload_of(binding: Object) -> WorkloadInfo:
    spec = binding.get("spec") or {}
    res = spec.get("resource") or {}
    requests: dict[str, int] = {}
    if res.get("kind") == "Deployment":
        requests["pods"] = 1
        reqs = ((spec.get("replicaRequirements") or {}).get("resourceRequest")) or {}
        requests.update(compile_requests({n: reqs[n] for n in ("cpu", "memory") if n in reqs},
                                         "spec.replicaRequirements.resourceRequest"))
    key = f"{res.get('kind')}/{res.get('namespace')}/{res.get('name')}"
    # Objects without replicas (Services, ConfigMaps) go everywhere the placement allows.
    replicas = int(spec.get("replicas") or 0) if res.get("kind") == "Deployment" else 1
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


def schedule_binding(scheduler: Scheduler, binding: Object,
                     lost: frozenset[str] = frozenset()) -> ScheduleResult:
    """The placement decision for one binding: the scheduling controller's, and what-if's
    (`flotilla.controllers.failover.whatif`), so a what-if can never disagree with it.

    ``lost`` are clusters to decide as if failover had already evicted them (what-if's
    failed clusters): their replicas are no longer in the current assignment and they
    take none, like a cluster with a graceful-eviction task.
    """
    spec = binding.get("spec") or {}
    placement = compile_placement(spec.get("placement") or {})
    if (spec.get("resource") or {}).get("kind") != "Deployment":
        placement = dataclasses.replace(placement, scheduling_type="Duplicated")
    # Clusters being evicted (failover) take no replicas of this binding until their
    # graceful-eviction task is finished.
    evicting = lost | frozenset(str(t.get("fromCluster"))
                                for t in spec.get("gracefulEvictionTasks") or [])
    if evicting:
        placement = dataclasses.replace(placement, affinities=tuple(
            dataclasses.replace(a, exclude=a.exclude | evicting)
            for a in placement.affinities))
    workload = workload_of(binding)
    if lost:
        workload = dataclasses.replace(workload, current=tuple(
            (n, r) for n, r in workload.current if n not in lost))
    return scheduler.schedule(workload, placement)


class SchedulingController:
    def __init__(self, client: ResourceClient, bindings: Informer, clusters: Informer) -> None:
        self.client = client
        self.bindings = bindings
        self.clusters = clusters
        self.events = EventRecorder(client, "scheduler")
        self._snapshot: Scheduler | None = None

    def invalidate(self) -> None:
        self._snapshot = None

    def scheduler(self) -> Scheduler:
        if self._snapshot is None:
            self._snapshot = scheduler_for(self.clusters.cache.list())
        return self._snapshot

    def decide(self, binding: Object) -> ScheduleResult:
        return schedule_binding(self.scheduler(), binding)

    async def reconcile(self, key: ObjectKey) -> Result | None:
        binding = self.bindings.cache.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp"):
            return None
        try:
            result = self.decide(binding)
        except (InvalidQuantity, QuantityError) as exc:  # the binding's own bad input
            raise PermanentError("InvalidInput", f"cannot schedule: {exc}") from None
        except PlacementError as exc:  # the same placement fails the same way: stall
            raise PermanentError("InvalidPlacement", f"invalid placement: {exc}") from None
        except ValueError as exc:  # a count in the binding that does not parse
            raise PermanentError("InvalidInput", f"cannot schedule: {exc}") from None
        targets = target_clusters(result) if result.scheduled else \
            (binding.get("spec") or {}).get("clusters") or []
        # Objects without replicas carry none per cluster.
        if (binding["spec"].get("resource") or {}).get("kind") != "Deployment":
            targets = [{"name": t["name"], "replicas": 0} for t in targets]
        if targets != ((binding.get("spec") or {}).get("clusters") or []):
            def set_clusters(obj: Object) -> bool:
                obj["spec"]["clusters"] = targets
                return True
            await mutate(self.client, BINDING, key.namespace, key.name, set_clusters)
            where = ", ".join(f"{t['name']}:{t['replicas']}" for t in targets) or "nowhere"
            await self.events.record(binding, "Normal", "Scheduled", f"placed on {where}")
        await self._set_condition(binding, result)
        return None

    async def _set_condition(self, binding: Object, result: ScheduleResult) -> None:
        condition = scheduled_condition(result, now_rfc3339(),
                                        int(binding["metadata"].get("generation") or 0))
        current = find(conditions_of(binding), "Scheduled")
        if current is not None and all(current.get(k) == condition[k]
                                       for k in ("status", "reason", "message")):
            return
        if not result.scheduled:
            await self.events.record(binding, "Warning", "ScheduleFailed", result.reason or "")

        def change(obj: Object) -> bool:
            set_conditions(obj, [Condition.of(condition)])
            obj["status"]["schedulerObservedGeneration"] = condition["observedGeneration"]
            return True

        meta = binding["metadata"]
        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change,
                     status=True)


def build(manager: ControllerManager) -> Controller:
    bindings, clusters = manager.informer(BINDING), manager.informer(CLUSTER)
    reconciler = SchedulingController(manager.client, bindings, clusters)
    controller = Controller("scheduler", reconciler, workers=2)

    def cluster_changed(_cluster: Object) -> list[ObjectKey]:
        reconciler.invalidate()
        return [ObjectKey.of(b) for b in bindings.cache.list()]

    controller.watches(bindings).watches(clusters, cluster_changed)
    manager.add(controller)
    return controller
