"""Prometheus metrics of the API server, on a registry of its own.

A private `CollectorRegistry` (not the process-global one) keeps several servers in one
test process, or a server and an embedded agent, from colliding on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flotilla_api_requests_total",
            "API requests by Kubernetes verb, resource and HTTP status code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flotilla_api_request_duration_seconds",
            "Time to answer an API request (watches: until the stream opens).",
            ["verb", "resource"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.open_watches = Gauge(
            "flotilla_api_open_watches", "Watch streams currently open.",
            registry=self.registry,
        )
        self.store_revision = Gauge(
            "flotilla_store_revision", "The store's current revision (updated on scrape).",
            registry=self.registry,
        )

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.requests.labels(verb, resource, str(code)).inc()
        self.latency.labels(verb, resource).observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
