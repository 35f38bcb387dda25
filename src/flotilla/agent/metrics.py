"""Prometheus metrics of one agent, on a registry of its own, served at ``/metrics`` on
the agent's endpoint (`flotilla.agent.admin`).

Like the API server, gateway and DNS, everything goes through prometheus_client and a
private `CollectorRegistry` (several agents run in one test process). Pods by phase and
restarts are read from the runtime when scraped rather than counted as they happen: the
runtime's snapshot is the truth, and a scrape every few seconds costs one ``pods()``.
Restarts stay a monotonic counter across pods that go away (their last count is kept).
No label names a pod or a workload, so the series stay bounded whatever runs; the
cluster comes from the scrape target's labels.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from flotilla.runtimes.base import Runtime, RuntimeCounters

CONTENT_TYPE = CONTENT_TYPE_LATEST
PHASES = ("Pending", "Running", "Succeeded", "Failed")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: restarts of containers no longer present, so the counter never goes back
        self._retired = 0
        self._seen: dict[tuple[str, str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        pods = self.runtime.pods()
        phases = GaugeMetricFamily("flotilla_agent_pods", "Pods on this cluster by phase",
                                   labels=("phase",))
        counts = dict.fromkeys(PHASES, 0)
        current: dict[tuple[str, str, str], int] = {}
        for p in pods:
            counts[p.phase] = counts.get(p.phase, 0) + 1
            for c in p.containers:
                current[(p.namespace, p.name, c.name)] = c.restart_count
        for phase, n in counts.items():
            phases.add_metric([phase], n)
        for key, n in self._seen.items():
            if key not in current:
                self._retired += n
        self._seen = current
        restarts = CounterMetricFamily(
            "flotilla_agent_container_restarts",
            "Container restarts on this cluster (of pods still running and gone ones)")
        restarts.add_metric([], self._retired + sum(current.values()))
        probes = CounterMetricFamily("flotilla_agent_probe_failures",
                                     "Failed probe runs by probe kind", labels=("probe",))
        counters = getattr(self.runtime, "counters", None)
        failures = (counters.probe_failures if isinstance(counters, RuntimeCounters)
                    else RuntimeCounters().probe_failures)
        for kind, n in sorted(failures.items()):
            probes.add_metric([kind], n)
        yield phases
        yield restarts
        yield probes


class AgentMetrics:
    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(_RuntimeCollector(runtime))
        self.apply_latency = Histogram(
            "flotilla_agent_apply_duration_seconds",
            "Time for the runtime to take a new desired set of manifests",
            buckets=_BUCKETS, registry=r)
        self.apply_errors = Counter(
            "flotilla_agent_apply_errors_total",
            "Desired sets the runtime refused (a manifest error)", registry=r)
        self.heartbeat_latency = Histogram(
            "flotilla_agent_heartbeat_duration_seconds",
            "Round trip of one Lease renewal to the API server", buckets=_BUCKETS,
            registry=r)
        self.heartbeat_failures = Counter(
            "flotilla_agent_heartbeat_failures_total",
            "Lease renewals that failed (API unreachable or refused)", registry=r)
        self.last_heartbeat = Gauge(
            "flotilla_agent_last_heartbeat_timestamp_seconds",
            "When the last Lease renewal succeeded (Unix time)", registry=r)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
