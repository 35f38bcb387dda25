"""Status aggregation: what the agents report per cluster, summed onto the binding and
the template (``flotilla get deploy shop -o wide`` reads it from the template).

A cluster that is not Ready keeps its last report in ``aggregatedStatus`` (marked
``reachable: false`` and health Unknown) but contributes no ready replicas to the
totals: replicas nobody can reach are not serving users.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.placement.jobs import federated_status, waiting_condition
from flotilla.controllers.placement.rendering import binding_of_work
from flotilla.resources.conditions import set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import (
    LABEL_BINDING,
    ClusterView,
    ResourceBindingView,
    ResourceRef,
    WorkView,
)
from flotilla.resources.wellknown import now_rfc3339

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
WORK = by_kind("Work")
CLUSTER = by_kind("Cluster")
JOB = by_kind("Job")
COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


def cluster_ready(cluster: Object | None) -> bool:
    return cluster is not None and ClusterView.of(cluster).ready


def item_for(work: WorkView, template_kind: str, template_name: str,
             reachable: bool) -> dict[str, Any]:
    manifest = work.manifest_status(template_kind, template_name)
    return {
        "clusterName": work.cluster,
        "status": copy.deepcopy(dict(manifest.status)) if manifest is not None else {},
        "applied": work.is_applied,
        "appliedMessage": work.applied.message if work.applied is not None else "",
        "health": (manifest.health if manifest is not None and manifest.health
                   else "Unknown") if reachable else "Unknown",
    }


def totals(items: list[dict[str, Any]], reachable: dict[str, bool]) -> dict[str, int]:
    out = dict.fromkeys(COUNTS, 0)
    for item in items:
        if not reachable.get(item["clusterName"]):
            continue
        for k in COUNTS:
            out[k] += int(item["status"].get(k) or 0)
    return out


class StatusAggregator:
    def __init__(self, client: ResourceClient, bindings: Informer, works: Informer,
                 clusters: Informer) -> None:
        self.client = client
        self.bindings = bindings
        self.works = works
        self.clusters = clusters

    async def reconcile(self, key: ObjectKey) -> Result | None:
        binding = self.bindings.cache.get(key)
        if binding is None:
            return None
        view = ResourceBindingView.of(binding)
        ref = view.resource
        reachable = {}
        items = []
        for work in map(WorkView.of, self.works.cache.list(
                f"{LABEL_BINDING}={view.work_label}")):
            reachable[work.cluster] = cluster_ready(
                self.clusters.cache.get(ObjectKey("", work.cluster)))
            items.append(item_for(work, ref.kind, ref.name, reachable[work.cluster]))
        items.sort(key=lambda i: i["clusterName"])
        summary = [{**i, "reachable": reachable[i["clusterName"]]} for i in items]
        new = [{k: v for k, v in i.items() if k != "reachable"} for i in summary]

        def set_binding(obj: Object) -> None:
            obj.setdefault("status", {})["aggregatedStatus"] = new

        await converge(self.client, BINDING, key.namespace, key.name, set_binding,
                       read=binding)
        if ref.kind == "Job":
            await self._set_job(ref, items, reachable)
        elif ref.has_replicas:
            await self._set_template(ref, view, summary, totals(items, reachable))
        return None

    async def _set_job(self, ref: ResourceRef, items: list[dict[str, Any]],
                       reachable: dict[str, bool]) -> None:
        """The federated Job status (`placement.jobs.federated_status`), its verdict set
        once with the shared condition rule."""

        def change(obj: Object) -> None:
            status, verdict = federated_status(obj, items, reachable)
            waiting = waiting_condition(obj, items, reachable)
            obj.setdefault("status", {}).update(status)
            if waiting is not None:
                set_conditions(obj, [waiting])
            if verdict is not None:
                set_conditions(obj, [verdict])
                obj["status"].setdefault("completionTime" if verdict.type == "Complete"
                                         else "failedTime", now_rfc3339())

        await converge(self.client, JOB, ref.namespace or "default", ref.name, change)

    async def _set_template(self, ref: ResourceRef, binding: ResourceBindingView,
                            items: list[dict[str, Any]], sums: dict[str, int]) -> None:
        targets = binding.targets
        per_cluster = [
            {"name": i["clusterName"], "reachable": i["reachable"], "health": i["health"],
             **{k: int(i["status"].get(k) or 0) for k in COUNTS},
             "desiredReplicas": targets.get(i["clusterName"], 0)}
            for i in items
        ]

        def change(obj: Object) -> None:
            status = obj.setdefault("status", {})
            status.update({**sums, "clusters": per_cluster,
                           "observedGeneration": obj["metadata"].get("generation", 0)})

        # The template may be gone already (converge then does nothing).
        await converge(self.client, by_kind("Deployment"), ref.namespace or "default",
                       ref.name, change)


def build(manager: ControllerManager) -> Controller:
    bindings, works = manager.informer(BINDING), manager.informer(WORK)
    clusters = manager.informer(CLUSTER)
    reconciler = StatusAggregator(manager.client, bindings, works, clusters)
    controller = Controller("status", reconciler, workers=2)
    controller.watches(bindings)
    controller.watches(works, lambda w: [k] if (k := binding_of_work(w)) else [])
    controller.watches(clusters, lambda _c: [ObjectKey.of(b) for b in bindings.cache.list()])
    manager.add(controller)
    return controller
