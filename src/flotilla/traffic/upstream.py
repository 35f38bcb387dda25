"""`Upstream`: one endpoint's live state, shared by the balancer, health checks, outlier
detection and the connection pool.

Why one mutable object per endpoint rather than dicts keyed by endpoint: the hot path
touches this state on every request, and attribute access on a slotted object is the
cheapest thing Python offers. It survives model swaps (matched by `Endpoint.key`), so
health, ejection history and pooled connections are kept across reconfiguration.
"""

from __future__ import annotations

import time
from typing import Any

from flotilla.traffic.model import Endpoint


class Upstream:
    __slots__ = ("available", "consecutive_errors", "ejected_until", "ejections", "endpoint",
                 "ewma", "ewma_stamp", "health_failures", "health_successes", "healthy",
                 "inflight", "metrics", "pool", "response_header", "retired")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        #: The debugging response header naming the serving cluster, built once.
        self.response_header = b"x-flotilla-cluster: %s\r\n" % endpoint.cluster.encode()
        #: Healthy by active checks (optimistic at start: a new endpoint the agent reports
        #: ready has passed its readiness probe, and starting unhealthy would black-hole a
        #: fresh deployment until the first check round).
        self.healthy = True
        self.health_successes = 0
        self.health_failures = 0
        #: Passive outlier detection.
        self.consecutive_errors = 0
        self.ejections = 0
        self.ejected_until = 0.0
        #: healthy and not ejected: what the balancer may pick outside panic mode.
        self.available = True
        self.inflight = 0
        #: Peak-EWMA latency in seconds and when it was last updated (monotonic).
        self.ewma = 0.0
        self.ewma_stamp = time.monotonic()
        #: The connection pool (`flotilla.traffic.pool.Pool`); set by the gateway.
        self.pool: Any = None
        #: Cached prometheus children for this endpoint (`flotilla.traffic.metrics`).
        self.metrics: Any = None
        #: Gone from the model: finish in-flight requests, pool nothing more.
        self.retired = False

    def refresh(self, now: float) -> bool:
        """Recompute `available`; True when it changed."""
        was = self.available
        self.available = self.healthy and self.ejected_until <= now
        return was != self.available

    def __repr__(self) -> str:
        e = self.endpoint
        return f"Upstream({e.cluster}/{e.address}:{e.port}, available={self.available})"
