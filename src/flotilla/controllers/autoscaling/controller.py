"""The FederatedHPA controller: measure, decide (`plan`), scale the Deployment, report.

Every sync period (``FLOTILLA_HPA_SYNC_PERIOD`` seconds in the server's environment,
default 15 as Kubernetes' ``--horizontal-pod-autoscaler-sync-period``) each FederatedHPA
is measured and decided on. Object metrics come from the gateway's ``/metrics``, the
same scrape and the same counters the rollout gates read
(`flotilla.controllers.rollout.gates`; URLs from ``FLOTILLA_GATEWAY_METRICS``, which
`flotilla up` sets): requests per second is the change of the request counter between
two scrapes over the time between them, summed over clusters; p99 latency is read from
the histogram's change over the same interval. Resource metrics (cpu, memory) come
from the pods' usage the agents report on the Works, gathered on the ResourceBinding
(`pods`). The new replica count is written to the
Deployment's ``spec.replicas``; the placement controllers divide it over the clusters.

Recommendations and scale events are kept in memory, as Kubernetes' HPA controller
keeps them: a new leader starts with empty windows (it may scale down sooner after a
failover than a stabilisation window would allow; never up faster).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.autoscaling.plan import History, Measurement, plan
from flotilla.controllers.autoscaling.pods import pod_samples
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.rollout.gates import Snapshot, scrape, window
from flotilla.resources.conditions import FALSE, Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.models.autoscaling import LATENCY_P99, REQUESTS_PER_SECOND
from flotilla.resources.naming import binding_name
from flotilla.resources.views import FederatedHPAView, MetricView
from flotilla.resources.wellknown import now_rfc3339

log = logging.getLogger(__name__)

FHPA = by_kind("FederatedHPA")
DEPLOYMENT = by_kind("Deployment")
SYNC_ENV = "FLOTILLA_HPA_SYNC_PERIOD"
METRICS_ENV = "FLOTILLA_GATEWAY_METRICS"
DEFAULT_SYNC = 15.0


#: Where the gateway's cumulative counters come from (one scrape of every gateway).
MetricsSource = Callable[[], Awaitable[Snapshot]]


@dataclass(slots=True)
class _Keyed:
    history: History = field(default_factory=History)
    #: (time, snapshot) of the previous scrape this FederatedHPA measured against
    previous: tuple[float, Snapshot] | None = None
    #: when this FederatedHPA was last decided on, and at which generation
    decided: tuple[float, int] | None = None


def gateway_urls() -> list[str]:
    return [u for u in os.environ.get(METRICS_ENV, "").split(",") if u]


class NoGateway(LookupError):
    """No gateway metrics URL is configured."""


async def scrape_gateways() -> Snapshot:
    """The default `MetricsSource`: every gateway in ``$FLOTILLA_GATEWAY_METRICS``."""
    urls = gateway_urls()
    if not urls:
        raise NoGateway(f"no gateway metrics URL (${METRICS_ENV})")
    return await scrape(urls)


def sync_period() -> float:
    try:
        return max(0.2, float(os.environ.get(SYNC_ENV, DEFAULT_SYNC)))
    except ValueError:
        return DEFAULT_SYNC


def object_value(metric: MetricView, namespace: str, before: Snapshot, after: Snapshot,
                 seconds: float) -> tuple[float | None, dict[str, float]]:
    """The metric over the interval (total, per cluster) for the described Service."""
    service = f"{namespace}/{metric.described_name}"
    clusters = {key.partition("|")[2] for key in after}
    per_cluster: dict[str, float] = {}
    for cluster in sorted(clusters):
        figures = window(before, after, [service], [cluster])
        if metric.name == REQUESTS_PER_SECOND and figures.requests:
            per_cluster[cluster] = figures.requests / seconds
        elif metric.name == LATENCY_P99 and figures.p99 is not None:
            per_cluster[cluster] = figures.p99
    whole = window(before, after, [service], clusters)
    if metric.name == REQUESTS_PER_SECOND:
        return whole.requests / seconds, per_cluster
    return whole.p99, per_cluster


class FederatedHPAController:
    def __init__(self, client: ResourceClient, informers: dict[str, Informer], *,
                 period: float, source: MetricsSource = scrape_gateways,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.inf = informers
        self.period = period
        self.source = source
        self.clock = clock
        self.events = EventRecorder(client, "federated-hpa")
        self._keyed: dict[ObjectKey, _Keyed] = {}

    def _pods(self, metric: MetricView, namespace: str, deploy: Object) -> Measurement:
        """A Resource metric from the pods' usage the agents reported."""
        bindings = self.inf.get("ResourceBinding")
        binding = None if bindings is None else bindings.cache.get(
            ObjectKey(namespace, binding_name("Deployment", deploy["metadata"]["name"])))
        samples = pod_samples(binding, deploy, metric.name)
        if not samples:
            return Measurement(metric, None, f"no {metric.name} usage reported for the "
                               "target's pods (yet)")
        return Measurement(metric, None, pods=samples)

    async def _measure(self, view: FederatedHPAView, namespace: str, keyed: _Keyed,
                       now: float, deploy: Object
                       ) -> tuple[list[Measurement], dict[str, float]]:
        objects = [m for m in view.metrics if m.type == "Object"]
        snapshot: Snapshot | None = None
        problem = ""
        if objects:
            try:
                snapshot = await self.source()
            except NoGateway as exc:
                problem = str(exc)
            except Exception as exc:  # the gateway may be restarting
                problem = f"gateway metrics unreachable: {exc}"
        out: list[Measurement] = []
        per_cluster: dict[str, float] = {}
        previous = keyed.previous
        for metric in view.metrics:
            if metric.type == "Resource":
                out.append(self._pods(metric, namespace, deploy))
                continue
            if metric.type != "Object":
                out.append(Measurement(metric, None, "Pods metrics are not reported yet"))
                continue
            if snapshot is None:
                out.append(Measurement(metric, None, problem))
                continue
            if previous is None or now - previous[0] <= 0:
                out.append(Measurement(metric, None, "waiting for a second scrape"))
                continue
            value, clusters = object_value(metric, namespace, previous[1], snapshot,
                                           now - previous[0])
            if metric.name == REQUESTS_PER_SECOND:
                per_cluster = clusters
            out.append(Measurement(metric, value,
                                   "" if value is not None else "no requests measured"))
        if snapshot is not None:
            keyed.previous = (now, snapshot)
        return out, per_cluster

    async def reconcile(self, key: ObjectKey) -> Result | None:
        obj = self.inf["FederatedHPA"].cache.get(key)
        if obj is None:
            self._keyed.pop(key, None)
            return None
        view = FederatedHPAView.of(obj)
        keyed = self._keyed.setdefault(key, _Keyed())
        now = self.clock()
        generation = int(obj["metadata"].get("generation") or 0)
        if keyed.decided is not None and keyed.decided[1] == generation:
            # Our own status write (or a Deployment event) woke us: a decision is due
            # once a period, as Kubernetes' resync, whatever wakes the queue.
            wait = keyed.decided[0] + self.period - now
            if wait > 0.05:
                return Result(requeue_after=wait)
        keyed.decided = (now, generation)
        deploy = self.inf["Deployment"].cache.get(ObjectKey(key.namespace, view.target_name))
        if deploy is None:
            await self._status(obj, view, None, None, [
                Condition("AbleToScale", FALSE, "FailedGetScale",
                      f"Deployment {view.target_name} not found")], [])
            return Result(requeue_after=self.period)
        current = int((deploy.get("spec") or {}).get("replicas", 1))
        ready = int((deploy.get("status") or {}).get("readyReplicas") or 0)
        # a rate needs two scrapes: the first only starts the interval
        first = keyed.previous is None and any(m.type == "Object" for m in view.metrics)
        measurements, per_cluster = await self._measure(view, key.namespace, keyed, now,
                                                       deploy)
        decision = plan(now, view, current, ready, measurements, keyed.history)
        keyed.history = decision.history
        if decision.rescale:
            def resize(d: Object) -> None:
                d.setdefault("spec", {})["replicas"] = decision.desired
            await converge(self.client, DEPLOYMENT, key.namespace, view.target_name, resize,
                           read=deploy)
            for type_, reason, message in decision.events:
                await self.events.record(obj, type_, reason, _with_clusters(message,
                                                                            per_cluster))
        await self._status(obj, view, current, decision.desired, list(decision.conditions),
                           list(decision.current_metrics), scaled=decision.rescale)
        if first:  # the first scrape only starts the interval: measure again soon
            soon = min(self.period, 1.0)
            keyed.decided = (now - self.period + soon, generation)
            return Result(requeue_after=soon)
        return Result(requeue_after=self.period)

    async def _status(self, obj: Object, view: FederatedHPAView, current: int | None,
                      desired: int | None, conditions: list[Condition],
                      metrics: list[dict[str, Any]], *, scaled: bool = False) -> None:
        meta = obj["metadata"]

        def edit(o: Object) -> None:
            status = o.setdefault("status", {})
            status["observedGeneration"] = meta.get("generation", 0)
            if current is not None:
                status["currentReplicas"] = current
            if desired is not None:
                status["desiredReplicas"] = desired
            if metrics:
                status["currentMetrics"] = metrics
            if scaled:
                status["lastScaleTime"] = now_rfc3339()
            set_conditions(o, conditions)

        await converge(self.client, FHPA, meta.get("namespace", ""), meta["name"], edit,
                       read=obj)


def _with_clusters(message: str, per_cluster: dict[str, float]) -> str:
    if not per_cluster:
        return message
    shares = ", ".join(f"{c}={v:.0f}" for c, v in sorted(per_cluster.items()))
    return f"{message} (req/s by cluster: {shares})"


def build(manager: ControllerManager) -> Controller:
    """Register the FederatedHPA controller with ``manager``."""
    informers = {k: manager.informer(by_kind(k))
                 for k in ("FederatedHPA", "Deployment", "ResourceBinding")}
    reconciler = FederatedHPAController(manager.client, informers, period=sync_period())
    controller = Controller("federated-hpa", reconciler, workers=2)
    controller.watches(informers["FederatedHPA"])
    manager.add(controller)
    return controller
