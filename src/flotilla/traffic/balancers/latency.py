"""Latency-aware choice on peak-EWMA latency x (in-flight + 1), the Finagle/Linkerd cost
function. The cost decays with the time since the last sample, so an endpoint that was
slow is tried again later instead of being shunned for ever.

Up to `SCAN_LIMIT` candidates the least cost of all wins; above it, the cheaper of two
drawn at random (power of two choices, O(1) on large sets). Two random choices cap the
best endpoint's share at 2/n: with one pod in each of three clusters the nearest would
get at most 2 requests in 3 however far the others are (measured on real links, 5/40/80
ms: 3/4 with the decay's probes), where a user expects nearly all. The scan sends nearly
everything to the cheapest, the others only when their decayed cost falls below it (a
probe every ~17 s for an endpoint 5 times slower), and leaves an endpoint at its first
slow answer (the peak). In-flight requests multiply the cost, so a burst still spreads.

The samples are recorded by the backend runtime (`BackendRuntime.try_ended`), which
keeps the EWMA only for balancers that read it (``reads_latency``)."""

from __future__ import annotations

import math
import random

from flotilla.traffic.balancers.base import EWMA_TAU, Clock, PickContext
from flotilla.traffic.upstream import Upstream

#: Up to this many candidates each is costed; above, two drawn at random.
SCAN_LIMIT = 16


def cost(u: Upstream, now: float) -> float:
    decayed = u.ewma * math.exp(-(now - u.ewma_stamp) / EWMA_TAU)
    return decayed * (u.inflight + 1)


class PeakEwma:
    reads_latency = True

    def __init__(self, rng: random.Random, clock: Clock) -> None:
        self._rng = rng
        self._clock = clock

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.allowed()
        n = len(cands)
        if n <= 1:
            return cands[0] if n else None
        now = self._clock()
        i = int(self._rng.random() * n)
        if n <= SCAN_LIMIT:
            # From a random place: equal costs (fresh endpoints all cost 0) spread.
            best, best_cost = cands[i], cost(cands[i], now)
            for k in range(1, n):
                u = cands[(i + k) % n]
                c = cost(u, now)
                if c < best_cost:
                    best, best_cost = u, c
            return best
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        a, b = cands[i], cands[j]
        return a if cost(a, now) <= cost(b, now) else b
