"""The failover controller: writes the decisions of `decide` onto ResourceBindings.

An eviction is one compare-and-set write of the binding: the cluster leaves
``spec.clusters`` and (unless purgeMode is Immediately) enters
``spec.gracefulEvictionTasks``. The scheduler then places the replicas on the remaining
allowed clusters (it leaves evicting clusters out), and the renderer keeps the old Work
until the task is finished here. Each step records an Event on the binding, so
``flotilla events`` tells the story: Evicting, then EvictionDone (or FailoverBlocked
when the policy leaves nowhere to go), then Rebalanced after a recovery.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.mutate import mutate
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.failover.decide import (
    Eviction,
    Finished,
    application_evictions,
    finished_tasks,
    healthy,
    holding_tasks,
    taint_evictions,
    targets,
    tasks,
)
from flotilla.controllers.failover.timers import Timers, describe_timers, timers_for
from flotilla.controllers.failover.unhealthy import (
    ANNOTATION_UNHEALTHY_SINCE,
    encode,
    recorded,
    unhealthy_since,
)
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.conditions import Condition, find, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import rfc3339_at

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
CLUSTER = by_kind("Cluster")
PP = by_kind("PropagationPolicy")
CPP = by_kind("ClusterPropagationPolicy")
#: The split before the first eviction, kept for ``rebalance: OnRecovery``.
ANNOTATION_ORIGINAL = "failover.flotilla.io/original-clusters"
#: The failover timers in force, for people (`flotilla describe resourcebinding ...`).
ANNOTATION_TIMERS = "failover.flotilla.io/timers"
CONDITION = "Failover"
DEFAULT_HEARTBEAT = 1.0


class FailoverController:
    def __init__(self, client: ResourceClient, informers: Mapping[str, Informer], *,
                 grace: float, heartbeat: float = DEFAULT_HEARTBEAT,
                 clock: Callable[[], float] = time.time) -> None:
        """``clock``: wall-clock seconds, compared with the times written on objects
        (taints' ``timeAdded``, tasks' ``creationTimestamp``); tests drive it."""
        self.client = client
        self.inf = informers
        self.grace = grace
        self.heartbeat = heartbeat
        self.clock = clock
        self.events = EventRecorder(client, "failover", clock=clock)

    def policy_of(self, binding: Object) -> Object | None:
        ref = (binding.get("spec") or {}).get("policy") or {}
        if ref.get("kind") == "PropagationPolicy":
            return self.inf["PropagationPolicy"].cache.get(
                ObjectKey(str(ref.get("namespace") or ""), str(ref.get("name") or "")))
        if ref.get("kind") == "ClusterPropagationPolicy":
            return self.inf["ClusterPropagationPolicy"].cache.get(
                ObjectKey("", str(ref.get("name") or "")))
        return None

    def timers(self, binding: Object) -> Timers:
        return timers_for(self.policy_of(binding),
                          (binding.get("spec") or {}).get("placement") or {},
                          self.grace, self.heartbeat)

    def clusters(self) -> dict[str, Object]:
        return {c["metadata"]["name"]: c for c in self.inf["Cluster"].cache.list()}

    async def reconcile(self, key: ObjectKey) -> Result | None:
        binding = self.inf["ResourceBinding"].cache.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp") or \
                binding["spec"].get("resource", {}).get("kind") != "Deployment":
            return None
        now = self.clock()
        timers = self.timers(binding)
        clusters = self.clusters()
        evict, t1 = taint_evictions(binding, clusters, timers, now)
        since = unhealthy_since(binding, now) if timers.application_toleration is not None \
            else {}
        app, t2 = application_evictions(binding, timers, since, now)
        seen = {e.cluster for e in evict}
        evict += [e for e in app if e.cluster not in seen]
        done, t3 = finished_tasks(binding, clusters, timers, now)
        if evict or done:
            await self._write(binding, evict, done, timers, now)
            since = {c: t for c, t in since.items() if c not in {e.cluster for e in evict}}
        elif timers.rebalance:
            await self._rebalance(binding, clusters)
        await self._keep_unhealthy_since(binding, since)
        await self._set_condition(binding)
        await self._show_timers(binding, timers)
        waits = [t for t in (t1, t2, t3) if t is not None]
        return Result(requeue_after=max(0.05, min(waits) + 0.05)) if waits else None

    async def _write(self, binding: Object, evict: list[Eviction], done: list[Finished],
                     timers: Timers, now: float) -> None:
        meta = binding["metadata"]
        stamp = rfc3339_at(now)

        def change(obj: Object) -> bool:
            spec = obj["spec"]
            before = list(spec.get("clusters") or [])
            if timers.rebalance and evict:
                notes = obj["metadata"].setdefault("annotations", {})
                notes.setdefault(ANNOTATION_ORIGINAL, json.dumps(before, sort_keys=True))
            gone = {e.cluster for e in evict}
            clusters = [t for t in before if t["name"] not in gone]
            finished = {f.cluster: f for f in done}
            kept = []
            for task in spec.get("gracefulEvictionTasks") or []:
                f = finished.get(task.get("fromCluster"))
                if f is None:
                    kept.append(task)
                elif f.release_only:
                    kept.append({**task, "purgeMode": "Immediately"})
            for f in done:
                if f.restore and f.cluster not in {t["name"] for t in clusters}:
                    clusters.append({"name": f.cluster, "replicas": f.restore})
            have = {t.get("fromCluster") for t in kept}
            for e in evict:
                if e.purge == "Immediately" or e.cluster in have:
                    continue
                kept.append({
                    "fromCluster": e.cluster, "replicas": e.replicas, "reason": e.reason,
                    "message": e.message, "producer": e.producer, "purgeMode": e.purge,
                    "suppressDeletion": e.purge == "Never", "creationTimestamp": stamp,
                })
            spec["clusters"] = sorted(clusters, key=lambda t: t["name"])
            spec["gracefulEvictionTasks"] = kept
            return True

        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change)
        for e in evict:
            log.info("binding %s/%s: evicting %s (%s)", meta["namespace"], meta["name"],
                     e.cluster, e.message)
            await self.events.record(
                binding, "Warning", "Evicting",
                f"{e.message}: moving {e.replicas} replica(s) off {e.cluster} "
                f"(purgeMode {e.purge})")
        for f in done:
            what = f"put {f.restore} replica(s) back on" if f.restore else "released"
            if f.why.startswith("avoided"):
                what = "no longer avoided"
            await self.events.record(binding, "Normal", "EvictionDone",
                                     f"old replicas on {f.cluster} {what}: {f.why}")

    async def _keep_unhealthy_since(self, binding: Object, since: Mapping[str, float]
                                    ) -> None:
        """Write the application-failover clock onto the binding when it changed (a
        cluster turned Unhealthy, recovered, or was evicted), so a restart keeps it."""
        if recorded(binding) == since:
            return
        value = encode(since)

        def change(obj: Object) -> bool:
            notes = obj["metadata"].setdefault("annotations", {})
            if notes.get(ANNOTATION_UNHEALTHY_SINCE) == value:
                return False
            if value is None:
                notes.pop(ANNOTATION_UNHEALTHY_SINCE, None)
            else:
                notes[ANNOTATION_UNHEALTHY_SINCE] = value
            return True

        meta = binding["metadata"]
        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change)

    async def _show_timers(self, binding: Object, timers: Timers) -> None:
        """Keep the timers in force on the binding (``flotilla describe`` shows them)."""
        text = "; ".join(f"{k}: {v}" for k, v in describe_timers(timers, self.grace))
        if (binding["metadata"].get("annotations") or {}).get(ANNOTATION_TIMERS) == text:
            return

        def change(obj: Object) -> bool:
            notes = obj["metadata"].setdefault("annotations", {})
            if notes.get(ANNOTATION_TIMERS) == text:
                return False
            notes[ANNOTATION_TIMERS] = text
            return True

        meta = binding["metadata"]
        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change)

    async def _rebalance(self, binding: Object, clusters: Mapping[str, Object]) -> None:
        """Move back to the split from before the failover, once every cluster of it is
        healthy and nothing is being evicted."""
        notes = binding["metadata"].get("annotations") or {}
        raw = notes.get(ANNOTATION_ORIGINAL)
        if raw is None or tasks(binding):
            return
        try:
            original: list[dict[str, Any]] = json.loads(raw)
        except ValueError:
            original = []
        if not all(healthy(clusters.get(t["name"])) for t in original):
            return
        desired = int(binding["spec"].get("replicas") or 0)
        usable = sum(int(t.get("replicas") or 0) for t in original) == desired
        meta = binding["metadata"]

        def change(obj: Object) -> bool:
            (obj["metadata"].get("annotations") or {}).pop(ANNOTATION_ORIGINAL, None)
            if usable:
                obj["spec"]["clusters"] = original
            return True

        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change)
        if usable and targets(binding) != {t["name"]: t["replicas"] for t in original}:
            where = ", ".join(f"{t['name']}:{t['replicas']}" for t in original)
            await self.events.record(binding, "Normal", "Rebalanced",
                                     f"clusters recovered: back to the original split {where}")

    async def _set_condition(self, binding: Object) -> None:
        """``Failover``: True while replicas are being moved, with what blocks them."""
        pending = holding_tasks(binding)
        conds = (binding.get("status") or {}).get("conditions") or []
        current = find(conds, CONDITION)
        if not pending:
            if current is None or current.get("status") == "False":
                return
            status, reason, message = "False", "Idle", "no replicas are being moved"
        else:
            scheduled = find(conds, "Scheduled")
            names = ", ".join(sorted(str(t.get("fromCluster")) for t in pending))
            if scheduled is not None and scheduled.get("status") == "False":
                status, reason = "True", "NoClusterFit"
                message = (f"replicas evicted from {names} have nowhere to go: "
                           f"{scheduled.get('message')}; the old replicas stay until a "
                           "cluster the policy allows can take them")
            else:
                status, reason = "True", "Evicting"
                message = f"waiting for replacements of the replicas on {names}"
        if current is not None and (current.get("status"), current.get("reason"),
                                    current.get("message")) == (status, reason, message):
            return
        if reason == "NoClusterFit":
            await self.events.record(binding, "Warning", "FailoverBlocked", message)
        condition = Condition(CONDITION, status, reason, message)

        def change(obj: Object) -> bool:
            return set_conditions(obj, [condition])

        meta = binding["metadata"]
        await mutate(self.client, BINDING, meta["namespace"], meta["name"], change,
                     status=True)


def build(manager: ControllerManager, *, grace: float,
          heartbeat: float = DEFAULT_HEARTBEAT,
          clock: Callable[[], float] = time.time) -> Controller:
    informers = {k.kind: manager.informer(k) for k in (BINDING, CLUSTER, PP, CPP)}
    reconciler = FailoverController(manager.client, informers, grace=grace,
                                    heartbeat=heartbeat, clock=clock)
    controller = Controller("failover", reconciler, workers=2)
    bindings = informers["ResourceBinding"]

    def every_binding(_obj: Object) -> list[ObjectKey]:
        return [ObjectKey.of(b) for b in bindings.cache.list()]

    controller.watches(bindings).watches(informers["Cluster"], every_binding)
    controller.watches(informers["PropagationPolicy"], every_binding)
    controller.watches(informers["ClusterPropagationPolicy"], every_binding)
    manager.add(controller)
    return controller
