"""Prometheus metrics of the control plane's controllers, exported on the API server's
/metrics (the process that runs them, `flotilla.api.plane`).

Two kinds. What happens is counted as it happens: reconciles by outcome and their
duration, how long keys waited in the work queue, Events by reason (failovers, rollout
waves and rollout outcomes are Events already: one hook in `EventRecorder` counts them
all), the scheduler's decision time. What *is* is read from the informer caches when
scraped, like kube-state-metrics: each cluster's Ready status, bindings whose failover
has nowhere to go, rollouts by phase, queue depths. Those need no bookkeeping and are
never stale, and a new leader term (a new `ControllerManager`) simply replaces the
caches they are read from.

The metrics object reaches controllers through a context variable set by the task that
runs them (`flotilla.controllers.plane`), as the write fence does: controllers built for
tests without it count nothing and need no argument. Label sets stay bounded: the
controller names, Event reasons (constants in the code), clusters, and bindings (one
series per app, only for the few that are blocked or rolling out).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flotilla.resources import rollout_state
from flotilla.resources.conditions import conditions_of, find
from flotilla.resources.kinds import by_kind

if TYPE_CHECKING:
    from flotilla.controllers.manager import ControllerManager

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
            30, 60)
CLUSTER = by_kind("Cluster")
BINDING = by_kind("ResourceBinding")
#: Event reasons that mean a failover moved replicas, and the outcome of a rollout.
FAILOVER_REASON = "Evicting"
WAVE_REASON = "WavePassed"
ROLLOUT_OUTCOMES = {"RolloutSucceeded": "succeeded", "RolloutFailed": "failed",
                    "RolloutAborted": "aborted", "RolledBack": "rolled_back"}


class _StateCollector(Collector):
    def __init__(self, owner: ControllerMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        manager = self.owner.manager
        depth = GaugeMetricFamily("flotilla_controller_queue_depth",
                                  "Keys waiting in a controller's work queue",
                                  labels=("controller",))
        ready = GaugeMetricFamily(
            "flotilla_cluster_ready",
            "1 for the Ready status each member cluster has now (True, False, Unknown)",
            labels=("cluster", "status"))
        blocked = GaugeMetricFamily(
            "flotilla_failover_blocked",
            "1 while replicas evicted from a cluster have nowhere to go (nothing fits)",
            labels=("namespace", "binding"))
        rollouts = GaugeMetricFamily(
            "flotilla_rollout_phase",
            "1 for the phase of each rollout that is not Succeeded (Progressing, Paused, "
            "Failed, Aborted)", labels=("namespace", "binding", "phase"))
        if manager is not None:
            for c in manager.controllers:
                depth.add_metric([c.name], len(c.queue))
            kinds = {i.kind.kind: i for i in manager.informers}
            clusters = kinds.get(CLUSTER.kind)
            for obj in clusters.cache.list() if clusters is not None else []:
                cond = find(conditions_of(obj), "Ready")
                status = str(cond.get("status")) if cond is not None else "Unknown"
                for s in ("True", "False", "Unknown"):
                    ready.add_metric([obj["metadata"]["name"], s], 1 if s == status else 0)
            bindings = kinds.get(BINDING.kind)
            for obj in bindings.cache.list() if bindings is not None else []:
                meta = obj["metadata"]
                key = [meta.get("namespace", ""), meta["name"]]
                cond = find(conditions_of(obj), "Failover")
                if cond is not None and cond.get("status") == "True" and \
                        cond.get("reason") == "NoClusterFit":
                    blocked.add_metric(key, 1)
                state = rollout_state.load(obj)
                if state is not None and state.phase != rollout_state.SUCCEEDED:
                    rollouts.add_metric([*key, state.phase], 1)
        yield from (depth, ready, blocked, rollouts)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        #: the manager of the current leader term, whose caches the state is read from
        self.manager: ControllerManager | None = None
        r.register(_StateCollector(self))
        self.reconciles = Counter(
            "flotilla_controller_reconciles_total",
            "Reconciles by controller and result (success, error: retried, stalled: "
            "given up until the object changes)", ("controller", "result"), registry=r)
        self.reconcile_latency = Histogram(
            "flotilla_controller_reconcile_duration_seconds", "Time of one reconcile",
            ("controller",), buckets=_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "flotilla_controller_queue_wait_seconds",
            "Time a key waited in the work queue before a worker took it",
            ("controller",), buckets=_BUCKETS, registry=r)
        self.events = Counter(
            "flotilla_controller_events_total", "Events recorded, by component and reason",
            ("component", "type", "reason"), registry=r)
        self.scheduling = Histogram(
            "flotilla_scheduler_decision_duration_seconds",
            "Time for the scheduler to place one binding", buckets=_BUCKETS, registry=r)
        self.failovers = Counter(
            "flotilla_failovers_total",
            "Failovers started: replicas moved off a cluster, by that cluster",
            ("cluster",), registry=r)
        self.rollout_waves = Counter(
            "flotilla_rollout_waves_total", "Rollout waves that passed their gates",
            registry=r)
        self.rollouts = Counter(
            "flotilla_rollouts_total", "Rollouts finished, by outcome", ("result",),
            registry=r)

    def event(self, component: str, type_: str, reason: str, cluster: str = "") -> None:
        self.events.labels(component, type_, reason).inc()
        if reason == WAVE_REASON:
            self.rollout_waves.inc()
        elif reason in ROLLOUT_OUTCOMES:
            self.rollouts.labels(ROLLOUT_OUTCOMES[reason]).inc()


#: The metrics of the control plane running in this task (None: not counted).
ACTIVE: contextvars.ContextVar[ControllerMetrics | None] = contextvars.ContextVar(
    "flotilla_controller_metrics", default=None)
