"""`BackendRuntime`: one policy's live routing state - upstreams, balancer, candidate list,
the feedback of every try (in-flight counts, latency EWMA), passive outlier detection and
the retry budget.

Rebuilt on every model swap (cheap), while the `Upstream` objects inside it carry over,
so an ejection or a failed health check survives reconfiguration. The try feedback is
kept here, not in the balancers: every strategy gets the same accounting, a balancer only
reads it, and a try that ends in any way (answer, failure, client gone) settles its
in-flight count exactly once (`flotilla.traffic.proxy` calls `try_started` and one of
`try_succeeded`, `try_failed`, `try_abandoned`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence

from flotilla.traffic.balancers import table
from flotilla.traffic.balancers.base import (
    Balancer,
    BalancerInputs,
    Clock,
    PickContext,
    record_latency,
)
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import Backend
from flotilla.traffic.upstream import Upstream


class BackendRuntime:
    def __init__(self, backend: Backend, upstreams: Sequence[Upstream], region: str | None,
                 metrics: GatewayMetrics, *, clock: Clock = time.monotonic,
                 rng: random.Random | None = None,
                 balancers: Mapping[str, table.Factory] = table.BALANCERS) -> None:
        self.backend = backend
        self.policy = backend.policy
        self.service = backend.service
        self.upstreams = list(upstreams)
        self.metrics = metrics
        # Per-request lookups, resolved once per model swap instead of per request.
        hash_on = self.policy.strategy.hash_on
        self.hash_source = hash_on.source if hash_on else ""
        self.hash_header = b"\n" + hash_on.name.encode() + b":" if hash_on else b""
        self.hash_cookie = hash_on.name.encode() if hash_on else b""
        header = self.policy.locality.region_header
        self.region_header = b"\n" + header.encode() + b":" if header else b""
        self.cluster_header = self.policy.cluster_header
        self.retry_any_method = self.policy.retries.allow_non_idempotent
        t = self.policy.timeouts
        #: The first deadline of an exchange, from its start (the per-try timeout is
        #: never longer than the total one, but may be configured so).
        self.first_timeout = min(t.per_try, t.total)
        self.clock = clock
        self.balancer: Balancer = table.create(
            self.policy.strategy.type,
            BalancerInputs(self.upstreams, self.policy, region, clock, rng or random.Random()),
            balancers)
        self.reads_latency = self.balancer.reads_latency
        self.candidates: list[Upstream] = []
        self.panic = False
        #: Requests in flight / retries in flight, for the retry budget.
        self.active = 0
        self.retrying = 0
        self._timer: asyncio.TimerHandle | None = None
        self.recompute()

    def recompute(self) -> None:
        """Refresh availability and the candidate list; called on any health change."""
        now = self.clock()
        for u in self.upstreams:
            u.refresh(now)
        available = [u for u in self.upstreams if u.available]
        threshold = self.policy.outlier.panic_threshold
        # Panic: too few left to carry the load; spreading over all beats overloading few.
        self.panic = bool(self.upstreams) and len(available) < threshold * len(self.upstreams)
        self.candidates = list(self.upstreams) if self.panic else available
        self._schedule_uneject(now)

    def _schedule_uneject(self, now: float) -> None:
        pending = [u.ejected_until for u in self.upstreams if u.ejected_until > now]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(min(pending) - now + 0.001, self.recompute)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def pick(self, ctx: PickContext) -> Upstream | None:
        u = self.balancer.pick(ctx)
        if u is None and ctx.avoid_clusters:  # no other cluster left: any other endpoint
            ctx.reset(ctx.candidates, ctx.hash_key, ctx.region, ctx.exclude)
            u = self.balancer.pick(ctx)
        return u

    # --- try feedback (the hot path) ----------------------------------------------------

    def try_started(self, u: Upstream) -> None:
        u.inflight += 1

    def try_succeeded(self, u: Upstream, latency: float) -> None:
        """A response below 500 ended: ``latency`` seconds since the try started."""
        u.inflight -= 1
        u.consecutive_errors = 0
        if self.reads_latency:
            record_latency(u, True, latency, self.clock())

    def try_failed(self, u: Upstream, latency: float, connect: bool = False) -> None:
        """A 5xx answer, a reset, a timeout or (``connect``) a failed connect."""
        u.inflight -= 1
        if self.reads_latency:
            record_latency(u, False, latency, self.clock())
        self.record(u, False, connect)

    def try_abandoned(self, u: Upstream) -> None:
        """The try ended without a verdict on the endpoint (the client went away, its
        request body was malformed): only the in-flight count is settled."""
        u.inflight -= 1

    def may_retry(self) -> bool:
        r = self.policy.retries
        return self.retrying < max(r.min_retry_concurrency, r.budget_percent / 100 * self.active)

    # --- passive outlier detection ------------------------------------------------------

    def record(self, u: Upstream, ok: bool, connect: bool = False) -> None:
        """A try's outcome: 5xx and connect/reset errors count towards ejection; connect
        failures may eject sooner (``consecutiveConnectErrors``)."""
        if ok:
            u.consecutive_errors = 0
            return
        u.consecutive_errors += 1
        od = self.policy.outlier
        if u.consecutive_errors >= od.consecutive_errors or (
                connect and u.consecutive_errors >= od.consecutive_connect_errors):
            self.eject(u)

    def eject(self, u: Upstream) -> bool:
        od = self.policy.outlier
        now = self.clock()
        if u.ejected_until > now:
            return False
        ejected = sum(1 for x in self.upstreams if x.ejected_until > now)
        if ejected and (ejected + 1) * 100 > od.max_ejection_percent * len(self.upstreams):
            return False  # like Envoy: one endpoint may always be ejected
        # The multiplier decays by one per base ejection time spent healthy since the last
        # ejection, so a flapping endpoint stays out longer and a recovered one is forgiven.
        if u.ejections and od.base_ejection_time > 0:
            quiet = int((now - u.ejected_until) / max(od.base_ejection_time, 1e-3))
            u.ejections = max(0, u.ejections - quiet)
        u.ejections += 1
        u.ejected_until = now + min(od.base_ejection_time * u.ejections, od.max_ejection_time)
        u.consecutive_errors = 0
        self.metrics.ejections.labels(*u.metrics.key).inc()
        self.recompute()
        return True
