"""The scheduling controller: runs the placement decision for each ResourceBinding.

It compiles the member clusters once per change of the cluster set (a `Scheduler`
snapshot with its caches), and for each binding decides ``spec.clusters`` starting from
the current assignment, so rescheduling moves as few replicas as the strategy allows.
The outcome is a ``Scheduled`` condition, and an Event whenever the decision changes.
"""

from __future__ import annotations

import logging
import time

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.metrics import ACTIVE
from flotilla.controllers.permanent import PermanentError
from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.quantity import QuantityError
from flotilla.resources.views import ResourceBindingView
from flotilla.resources.wellknown import now_rfc3339
from flotilla.scheduler import (
    InvalidQuantity,
    PlacementError,
    Scheduler,
    ScheduleResult,
    schedule_binding,
    scheduled_condition,
    scheduler_for,
    target_clusters,
)

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
CLUSTER = by_kind("Cluster")


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
        view = ResourceBindingView.of(binding)
        if binding is None or view.meta.deleting:
            return None
        started = time.monotonic()
        try:
            result = self.decide(binding)
        except (InvalidQuantity, QuantityError) as exc:  # the binding's own bad input
            raise PermanentError("InvalidInput", f"cannot schedule: {exc}") from None
        except PlacementError as exc:  # the same placement fails the same way: stall
            raise PermanentError("InvalidPlacement", f"invalid placement: {exc}") from None
        except ValueError as exc:  # a count in the binding that does not parse
            raise PermanentError("InvalidInput", f"cannot schedule: {exc}") from None
        metrics = ACTIVE.get()
        if metrics is not None:
            metrics.scheduling.observe(time.monotonic() - started)
        current = [{"name": t.name, "replicas": t.replicas} for t in view.clusters]
        targets = target_clusters(result) if result.scheduled else current
        # Objects without replicas carry none per cluster.
        if not view.has_replicas:
            targets = [{"name": t["name"], "replicas": 0} for t in targets]
        moved = targets != current
        condition = scheduled_condition(result, now_rfc3339(), view.meta.generation)
        held = view.condition("Scheduled")
        changed = held is None or (held.status, held.reason, held.message) != \
            (condition["status"], condition["reason"], condition["message"])

        def desire(obj: Object) -> None:
            if moved:
                obj["spec"]["clusters"] = targets
            if changed:
                set_conditions(obj, [Condition.of(condition)])
                status = obj.setdefault("status", {})
                status["schedulerObservedGeneration"] = condition["observedGeneration"]

        await converge(self.client, BINDING, key.namespace, key.name, desire, read=binding)
        if moved:
            where = ", ".join(f"{t['name']}:{t['replicas']}" for t in targets) or "nowhere"
            await self.events.record(binding, "Normal", "Scheduled", f"placed on {where}")
        if changed and not result.scheduled:
            await self.events.record(binding, "Warning", "ScheduleFailed", result.reason or "")
        return None


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
