"""Latency-aware choice: power of two choices on peak-EWMA latency x (in-flight + 1), the
Finagle/Linkerd cost function. The cost decays with the time since the last sample, so an
endpoint that was slow is tried again later instead of being shunned for ever.

The samples are recorded by the backend runtime (`BackendRuntime.try_ended`), which
keeps the EWMA only for balancers that read it (``reads_latency``)."""

from __future__ import annotations

import math
import random

from flotilla.traffic.balancers.base import EWMA_TAU, Clock, PickContext
from flotilla.traffic.upstream import Upstream


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
        i = int(self._rng.random() * n)
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        now = self._clock()
        a, b = cands[i], cands[j]
        return a if cost(a, now) <= cost(b, now) else b
