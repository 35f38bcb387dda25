"""Least request with the power of two choices: compare two random candidates' in-flight
counts. Near-optimal spread without scanning every endpoint, and without the herd effect
of everyone piling onto the single least-loaded endpoint (Mitzenmacher)."""

from __future__ import annotations

import random

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.upstream import Upstream


class LeastRequest:
    reads_latency = False

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.allowed()
        n = len(cands)
        if n <= 1:
            return cands[0] if n else None
        rnd = self._rng.random
        i = int(rnd() * n)
        j = int(rnd() * (n - 1))
        if j >= i:
            j += 1
        a, b = cands[i], cands[j]
        return a if a.inflight <= b.inflight else b
