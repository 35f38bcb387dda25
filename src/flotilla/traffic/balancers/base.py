"""The `Balancer` protocol, the per-request `PickContext` and what a factory is given.

Balancers pick from ``ctx.candidates``: the backend's available upstreams (or all of them
in panic mode), computed once per health change, not per request. A balancer only
decides *which* of those; health, ejection, panic and the per-endpoint feedback it reads
(in-flight counts, latency EWMA) are kept by `flotilla.traffic.backend.BackendRuntime`,
so each balancer stays a few lines, writes no shared state, and is tested for its
distribution alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from flotilla.traffic.model import Policy
from flotilla.traffic.upstream import Upstream

#: Monotonic seconds. Injected so tests drive time instead of sleeping.
Clock = Callable[[], float]


class PickContext:
    """What one pick may depend on. ``exclude``/``avoid_clusters`` are set on retries.

    The proxy keeps one per connection and refills it per request (`reset`), so a pick
    allocates nothing; ``filtered`` is a plain flag because balancers test it per pick.
    """

    __slots__ = ("avoid_clusters", "candidates", "exclude", "filtered", "hash_key", "region")

    def __init__(self, candidates: Sequence[Upstream], *, hash_key: bytes | None = None,
                 region: str | None = None, exclude: tuple[Upstream, ...] = (),
                 avoid_clusters: tuple[str, ...] = ()) -> None:
        self.reset(candidates, hash_key, region, exclude, avoid_clusters)

    def reset(self, candidates: Sequence[Upstream], hash_key: bytes | None,
              region: str | None, exclude: tuple[Upstream, ...] = (),
              avoid_clusters: tuple[str, ...] = ()) -> None:
        self.candidates = candidates
        self.hash_key = hash_key
        self.region = region
        self.exclude = exclude
        self.avoid_clusters = avoid_clusters
        self.filtered = bool(exclude or avoid_clusters)

    def allows(self, u: Upstream) -> bool:
        return u not in self.exclude and u.endpoint.cluster not in self.avoid_clusters

    def allowed(self) -> Sequence[Upstream]:
        """Candidates minus the excluded ones (allocates: only used on retries)."""
        if not self.filtered:
            return self.candidates
        return [u for u in self.candidates if self.allows(u)]


class Balancer(Protocol):
    def pick(self, ctx: PickContext) -> Upstream | None: ...

    @property
    def reads_latency(self) -> bool:
        """True when `pick` reads the latency EWMA: only then does the runtime keep it
        (an ``exp()`` per request that no other strategy needs)."""
        ...


@dataclass(frozen=True, slots=True)
class BalancerInputs:
    """Everything a balancer factory may use; clock and randomness are injected here so
    a test can drive a random, least-request or latency balancer deterministically."""

    #: All upstreams of the backend (consistent hashing builds over all of them).
    upstreams: Sequence[Upstream]
    policy: Policy
    #: The gateway's own region (``--region``), the default preferred region.
    region: str | None
    clock: Clock
    rng: random.Random


#: Latency EWMA decay constant (seconds), as in Finagle/Linkerd's peak-EWMA.
EWMA_TAU = 10.0
#: A failed request counts as this slow, so an erroring endpoint also looks slow.
FAILURE_PENALTY = 1.0


def record_latency(upstream: Upstream, ok: bool, latency: float, now: float) -> None:
    """Peak-EWMA: jump up to a slower sample at once, decay towards faster ones."""
    sample = latency if ok else max(latency, FAILURE_PENALTY)
    if sample > upstream.ewma:
        upstream.ewma = sample
    else:
        w = math.exp(-(now - upstream.ewma_stamp) / EWMA_TAU)
        upstream.ewma = upstream.ewma * w + sample * (1.0 - w)
    upstream.ewma_stamp = now
