"""`Upstream`: one endpoint's live state within one backend, shared by the balancer,
health checks, outlier detection and the connection pool.

Why one mutable object per endpoint rather than dicts keyed by endpoint: the hot path
touches this state on every request, and attribute access on a slotted object is the
cheapest thing Python offers. It survives model swaps (matched by `Endpoint.key`), so
health, ejection history, in-flight counts, the latency EWMA and pooled connections are
kept across reconfiguration, and a request that started before a swap settles its
in-flight count on the same object it counted on. Who writes what: the backend runtime
(`flotilla.traffic.backend`) the feedback and ejection fields, the health checks the
health fields; balancers only read.
"""

from __future__ import annotations

from flotilla.traffic.metrics import EndpointStats
from flotilla.traffic.model import Endpoint
from flotilla.traffic.pool import Pool


class Upstream:
    __slots__ = ("available", "consecutive_errors", "ejected_until", "ejections", "endpoint",
                 "ewma", "ewma_stamp", "health_failures", "health_successes", "healthy",
                 "inflight", "metrics", "pool", "reach_failures", "reached", "response_header",
                 "retired")

    def __init__(self, endpoint: Endpoint, pool: Pool | None = None,
                 stats: EndpointStats | None = None) -> None:
        self.endpoint = endpoint
        #: The debugging response header naming the serving cluster, built once.
        self.response_header = b"x-flotilla-cluster: %s\r\n" % endpoint.cluster.encode()
        #: Healthy by active checks (optimistic at start: a new endpoint the agent reports
        #: ready has passed its readiness probe, and starting unhealthy would black-hole a
        #: fresh deployment until the first check round).
        self.healthy = True
        self.health_successes = 0
        self.health_failures = 0
        #: Whether the active checks reach the endpoint at all (any HTTP answer, whatever
        #: its status): None until checked, False after ``unhealthyThreshold`` checks in a
        #: row got no answer. What the gateway reports per cluster
        #: (`flotilla.traffic.reachability`): a failing app is not a cut network.
        self.reached: bool | None = None
        self.reach_failures = 0
        #: Passive outlier detection.
        self.consecutive_errors = 0
        self.ejections = 0
        self.ejected_until = 0.0
        #: healthy and not ejected: what the balancer may pick outside panic mode.
        self.available = True
        #: Tries sent and not yet ended (LeastRequest and Latency read it).
        self.inflight = 0
        #: Peak-EWMA latency in seconds and when it was last updated (monotonic); kept only
        #: for balancers that read it. With no sample yet the stamp does not matter.
        self.ewma = 0.0
        self.ewma_stamp = 0.0
        #: Idle keep-alive connections to this endpoint.
        self.pool = pool if pool is not None else Pool()
        #: Hot-path counters of (service, cluster, endpoint); the gateway gives every
        #: upstream the registry's own on each model swap.
        self.metrics = stats if stats is not None else EndpointStats(
            ("", endpoint.cluster, endpoint.name))
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
