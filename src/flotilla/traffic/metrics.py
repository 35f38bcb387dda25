"""Prometheus metrics of one gateway, in its own registry (so several gateways in one
process, as in tests, do not collide, and the admin listener exports only these).

The per-request metrics (requests, latency histogram, responses by class) are plain
integer fields bumped on the hot path and turned into Prometheus families only when
scraped (`_HotPathCollector`): prometheus_client's ``inc()``/``observe()`` take a lock and
walk Python code per call, which measured as a visible share of a proxied request.
Rare events (errors, retries, ejections, health checks) use ordinary counters.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from flotilla.traffic.model import Endpoint

BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
_LABELS = ("service", "cluster", "endpoint")


class EndpointStats:
    """Hot-path counters of one (service, cluster, endpoint)."""

    __slots__ = ("buckets", "key", "requests", "total_latency")

    def __init__(self, key: tuple[str, str, str]) -> None:
        self.key = key
        self.requests = 0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total_latency = 0.0

    def observe(self, latency: float) -> None:
        self.requests += 1
        self.buckets[bisect_left(BUCKETS, latency)] += 1
        self.total_latency += latency


class _HotPathCollector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        req = CounterMetricFamily("flotilla_gateway_requests",
                                  "Upstream tries that got a response", labels=_LABELS)
        hist = HistogramMetricFamily("flotilla_gateway_request_duration_seconds",
                                     "Upstream try latency up to the end of the response",
                                     labels=_LABELS)
        for s in list(self.m.stats.values()):
            req.add_metric(s.key, s.requests)
            cumulative, acc = [], 0
            for bound, n in zip((*BUCKETS, float("inf")), s.buckets, strict=True):
                acc += n
                cumulative.append((str(bound) if bound != float("inf") else "+Inf", acc))
            hist.add_metric(s.key, cumulative, s.total_latency)
        codes = CounterMetricFamily("flotilla_gateway_responses",
                                    "Responses sent to clients by status class", labels=("code",))
        for i, n in enumerate(self.m.codes):
            codes.add_metric([f"{i}xx" if i else "other"], n)
        yield req
        yield hist
        yield codes


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stats: dict[tuple[str, str, str], EndpointStats] = {}
        #: Responses to clients by status class (index = status // 100, 0 = other).
        self.codes = [0] * 6
        r.register(_HotPathCollector(self))
        self.errors = Counter("flotilla_gateway_errors", "Failed upstream tries by reason",
                              (*_LABELS, "reason"), registry=r)
        self.local_errors = Counter("flotilla_gateway_local_responses",
                                    "Answers the gateway generated itself", ("status", "reason"),
                                    registry=r)
        self.retries = Counter("flotilla_gateway_retries", "Retried tries", ("service",),
                               registry=r)
        self.ejections = Counter("flotilla_gateway_ejections",
                                 "Outlier ejections", _LABELS, registry=r)
        self.health_checks = Counter("flotilla_gateway_health_checks",
                                     "Active health-check results", (*_LABELS, "result"),
                                     registry=r)
        self.refused_connections = Counter(
            "flotilla_gateway_refused_connections",
            "Client connections refused at accept (503 and closed) by a connection cap",
            ("reason",), registry=r)
        self.client_timeouts = Counter(
            "flotilla_gateway_client_timeouts",
            "Client connections cut because the client stopped reading (kind=write: write "
            "timeout) or read too slowly (kind=min-rate: under the minimum send rate)",
            ("kind",), registry=r)
        self.active = Gauge("flotilla_gateway_active_connections",
                            "Open client connections", registry=r)
        self.model_build_failures = Counter(
            "flotilla_gateway_model_build_failures",
            "Routing models that could not be built or applied (the last good one stayed)",
            registry=r)
        self.tls_errors = Counter(
            "flotilla_gateway_tls_certificate_errors",
            "Certificates from Secrets that could not be used (the last good one stayed)",
            ("secret",), registry=r)
        self.tls_certificates = Gauge(
            "flotilla_gateway_tls_certificates", "Certificates in service", registry=r)
        self.tls_expiry = Gauge(
            "flotilla_gateway_tls_certificate_expiry_timestamp_seconds",
            "When the certificate in service from each Secret expires (Unix time)",
            ("secret",), registry=r)
        self.model_last_build = Gauge(
            "flotilla_gateway_model_last_build_timestamp_seconds",
            "When the routing model in service was built (Unix time)", registry=r)

    def endpoint_stats(self, service: str, e: Endpoint) -> EndpointStats:
        """The stats of ``e`` serving ``service`` (kept across model swaps, so counters
        never go back)."""
        key = (service, e.cluster, e.name)
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = EndpointStats(key)
        return stats

    def model_built(self, at: float) -> None:
        self.model_last_build.set(at)

    def model_build_failed(self) -> None:
        self.model_build_failures.inc()

    def count(self, status: int) -> None:
        self.codes[status // 100 if 100 <= status < 600 else 0] += 1

    def error(self, stats: EndpointStats, reason: str) -> None:
        self.errors.labels(*stats.key, reason).inc()
