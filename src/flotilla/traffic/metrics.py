"""Prometheus metrics of one gateway, in its own registry (so several gateways in one
process, as in tests, do not collide, and the admin listener exports only these).

Per-endpoint children are resolved once per endpoint and cached on the `Upstream`, because
``labels()`` costs a dict lookup and a lock per call on the hot path.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flotilla.traffic.upstream import Upstream

_LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ("service", "cluster", "endpoint")
        self.requests = Counter("flotilla_gateway_requests", "Requests sent upstream",
                                labels, registry=r)
        self.errors = Counter("flotilla_gateway_errors", "Failed upstream tries by reason",
                              (*labels, "reason"), registry=r)
        self.latency = Histogram("flotilla_gateway_request_duration_seconds",
                                 "Upstream try latency up to the end of the response",
                                 labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.responses = Counter("flotilla_gateway_responses",
                                 "Responses sent to clients by status class",
                                 ("code",), registry=r)
        self.local_errors = Counter("flotilla_gateway_local_responses",
                                    "Answers the gateway generated itself", ("status", "reason"),
                                    registry=r)
        self.retries = Counter("flotilla_gateway_retries", "Retried tries", ("service",),
                               registry=r)
        self.ejections = Counter("flotilla_gateway_ejections",
                                 "Outlier ejections", labels, registry=r)
        self.health_checks = Counter("flotilla_gateway_health_checks",
                                     "Active health-check results", (*labels, "result"),
                                     registry=r)
        self.active = Gauge("flotilla_gateway_active_connections",
                            "Open client connections", registry=r)
        self.upstream_active = Gauge("flotilla_gateway_upstream_connections",
                                     "Open upstream connections", registry=r)
        self.code_children = [self.responses.labels(f"{c}xx" if c else "other")
                              for c in range(6)]

    def attach(self, u: Upstream, service: str) -> None:
        e = u.endpoint
        key = (service, e.cluster, e.name)
        u.metrics = (self.requests.labels(*key), self.latency.labels(*key), key)

    def error(self, u: Upstream, reason: str) -> None:
        key: Any = u.metrics[2]
        self.errors.labels(*key, reason).inc()
