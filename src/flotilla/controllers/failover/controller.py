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
from flotilla.client.desired import Edit, converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.failover.decide import (
    Eviction,
    Finished,
    application_evictions,
    finished_tasks,
    healthy,
    taint_evictions,
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
from flotilla.controllers.metrics import ACTIVE
from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ResourceBindingView
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
        """Decide everything about the binding, then write it once: evictions, the
        unhealthy-since clock and the timers in one spec write, the ``Failover``
        condition in one status write (`flotilla.client.desired`)."""
        binding = self.inf["ResourceBinding"].cache.get(key)
        view = ResourceBindingView.of(binding)
        if binding is None or view.meta.deleting or not view.has_replicas:
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
        edits: list[Edit] = []
        rebalanced: list[dict[str, Any]] | None = None
        if evict or done:
            edits.append(self._evictions(evict, done, timers, now))
            since = {c: t for c, t in since.items() if c not in {e.cluster for e in evict}}
        elif timers.rebalance:
            rebalance = self._rebalance(view, clusters)
            if rebalance is not None:
                edit, rebalanced = rebalance
                edits.append(edit)
        edits.append(self._unhealthy_since(since))
        edits.append(self._timers_shown(timers))
        condition, blocked = self._condition(view)
        if condition is not None:
            wanted = condition

            def set_condition(obj: Object) -> None:
                set_conditions(obj, [wanted])

            edits.append(set_condition)

        def desire(obj: Object) -> None:
            for edit in edits:
                edit(obj)

        await converge(self.client, BINDING, key.namespace, key.name, desire, read=binding)
        await self._tell(binding, view, evict, done, rebalanced, blocked)
        waits = [t for t in (t1, t2, t3) if t is not None]
        return Result(requeue_after=max(0.05, min(waits) + 0.05)) if waits else None

    async def _tell(self, binding: Object, view: ResourceBindingView, evict: list[Eviction],
                    done: list[Finished], rebalanced: list[dict[str, Any]] | None,
                    blocked: str | None) -> None:
        """The Events of what the write decided, after it succeeded."""
        metrics = ACTIVE.get()
        for e in evict:
            if metrics is not None:
                metrics.failovers.labels(e.cluster).inc()
            log.info("binding %s/%s: evicting %s (%s)", view.namespace, view.name,
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
        if rebalanced is not None and dict(view.targets) != \
                {t["name"]: t["replicas"] for t in rebalanced}:
            where = ", ".join(f"{t['name']}:{t['replicas']}" for t in rebalanced)
            await self.events.record(binding, "Normal", "Rebalanced",
                                     f"clusters recovered: back to the original split {where}")
        if blocked is not None:
            await self.events.record(binding, "Warning", "FailoverBlocked", blocked)

    @staticmethod
    def _evictions(evict: list[Eviction], done: list[Finished], timers: Timers,
                   now: float) -> Edit:
        """Clusters leave ``spec.clusters`` into eviction tasks; finished tasks go (or
        are released), restoring replicas where a cluster recovered in time."""
        stamp = rfc3339_at(now)

        def change(obj: Object) -> None:
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

        return change

    @staticmethod
    def _unhealthy_since(since: Mapping[str, float]) -> Edit:
        """The application-failover clock on the binding, so a restart keeps it."""
        value = encode(since)

        def change(obj: Object) -> None:
            if recorded(obj) == since:
                return  # the same times, whatever the spelling
            notes = obj["metadata"].setdefault("annotations", {})
            if value is None:
                notes.pop(ANNOTATION_UNHEALTHY_SINCE, None)
            else:
                notes[ANNOTATION_UNHEALTHY_SINCE] = value

        return change

    def _timers_shown(self, timers: Timers) -> Edit:
        """The timers in force on the binding (``flotilla describe`` shows them)."""
        text = "; ".join(f"{k}: {v}" for k, v in describe_timers(timers, self.grace))

        def change(obj: Object) -> None:
            obj["metadata"].setdefault("annotations", {})[ANNOTATION_TIMERS] = text

        return change

    def _rebalance(self, view: ResourceBindingView, clusters: Mapping[str, Object]
                   ) -> tuple[Edit, list[dict[str, Any]] | None] | None:
        """Move back to the split from before the failover, once every cluster of it is
        healthy and nothing is being evicted; None while that is not so."""
        raw = view.meta.annotations.get(ANNOTATION_ORIGINAL)
        if raw is None or view.eviction_tasks:
            return None
        try:
            original: list[dict[str, Any]] = json.loads(raw)
        except ValueError:
            original = []
        if not all(healthy(clusters.get(t["name"])) for t in original):
            return None
        usable = sum(int(t.get("replicas") or 0) for t in original) == view.replicas

        def change(obj: Object) -> None:
            (obj["metadata"].get("annotations") or {}).pop(ANNOTATION_ORIGINAL, None)
            if usable:
                obj["spec"]["clusters"] = original

        return change, original if usable else None

    def _condition(self, view: ResourceBindingView) -> tuple[Condition | None, str | None]:
        """``Failover``: True while replicas are being moved, with what blocks them.
        Returns the condition to set (None: leave it as it is) and, when the move is
        blocked anew, the message of the FailoverBlocked Event."""
        pending = view.holding_tasks
        current = view.condition(CONDITION)
        if not pending:
            if current is None or current.status == "False":
                return None, None
            status, reason, message = "False", "Idle", "no replicas are being moved"
        else:
            scheduled = view.condition("Scheduled")
            names = ", ".join(sorted(t.from_cluster for t in pending))
            if scheduled is not None and scheduled.status == "False":
                status, reason = "True", "NoClusterFit"
                message = (f"replicas evicted from {names} have nowhere to go: "
                           f"{scheduled.message}; the old replicas stay until a "
                           "cluster the policy allows can take them")
            else:
                status, reason = "True", "Evicting"
                message = f"waiting for replacements of the replicas on {names}"
        if current is not None and (current.status, current.reason, current.message) == \
                (status, reason, message):
            return None, None
        return Condition(CONDITION, status, reason, message), \
            message if reason == "NoClusterFit" else None


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
