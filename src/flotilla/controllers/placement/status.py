"""Status aggregation: what the agents report per cluster, summed onto the binding and
the template (``flotilla get deploy shop -o wide`` reads it from the template).

A cluster that is not Ready keeps its last report in ``aggregatedStatus`` (marked
``reachable: false`` and health Unknown) but contributes no ready replicas to the
totals: replicas nobody can reach are not serving users.
"""

from __future__ import annotations

import logging
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.mutate import mutate
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.placement.rendering import LABEL_BINDING, binding_of_work
from flotilla.resources.conditions import find
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ClusterView
from flotilla.resources.wellknown import cluster_of_execution_namespace

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
WORK = by_kind("Work")
CLUSTER = by_kind("Cluster")
COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


def cluster_ready(cluster: Object | None) -> bool:
    return cluster is not None and ClusterView.of(cluster).ready


def item_for(work: Object, template_kind: str, template_name: str,
             reachable: bool) -> dict[str, Any]:
    status = work.get("status") or {}
    applied = find(status.get("conditions"), "Applied")
    manifest = next((m for m in status.get("manifestStatuses") or []
                     if m["identifier"].get("kind") == template_kind
                     and m["identifier"].get("name") == template_name), None)
    cluster = cluster_of_execution_namespace(work["metadata"]["namespace"]) or ""
    return {
        "clusterName": cluster,
        "status": dict((manifest or {}).get("status") or {}),
        "applied": bool(applied and applied.get("status") == "True"),
        "appliedMessage": str((applied or {}).get("message") or ""),
        "health": str((manifest or {}).get("health") or "Unknown") if reachable else "Unknown",
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
        ref = binding["spec"]["resource"]
        works = self.works.cache.list(f"{LABEL_BINDING}={key.namespace}.{key.name}")
        reachable = {}
        items = []
        for work in works:
            cluster = cluster_of_execution_namespace(work["metadata"]["namespace"]) or ""
            reachable[cluster] = cluster_ready(self.clusters.cache.get(ObjectKey("", cluster)))
            items.append(item_for(work, ref["kind"], ref["name"], reachable[cluster]))
        items.sort(key=lambda i: i["clusterName"])
        summary = [{**i, "reachable": reachable[i["clusterName"]]} for i in items]

        def set_binding(obj: Object) -> bool:
            status = obj.setdefault("status", {})
            new = [{k: v for k, v in i.items() if k != "reachable"} for i in summary]
            if status.get("aggregatedStatus") == new:
                return False
            status["aggregatedStatus"] = new
            return True

        await mutate(self.client, BINDING, key.namespace, key.name, set_binding, status=True)
        if ref["kind"] == "Deployment":
            await self._set_template(ref, binding, summary, totals(items, reachable))
        return None

    async def _set_template(self, ref: Object, binding: Object, items: list[dict[str, Any]],
                            sums: dict[str, int]) -> None:
        per_cluster = [
            {"name": i["clusterName"], "reachable": i["reachable"], "health": i["health"],
             **{k: int(i["status"].get(k) or 0) for k in COUNTS},
             "desiredReplicas": next((int(t.get("replicas") or 0)
                                      for t in binding["spec"].get("clusters") or []
                                      if t["name"] == i["clusterName"]), 0)}
            for i in items
        ]

        def change(obj: Object) -> bool:
            status = obj.setdefault("status", {})
            new = {**sums, "clusters": per_cluster,
                   "observedGeneration": obj["metadata"].get("generation", 0)}
            if all(status.get(k) == v for k, v in new.items()):
                return False
            status.update(new)
            return True

        # The template may be gone already (mutate then does nothing).
        await mutate(self.client, by_kind("Deployment"), ref.get("namespace") or "default",
                     ref["name"], change, status=True)


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
