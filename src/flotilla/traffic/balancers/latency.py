"""Latency-aware choice: power of two choices on peak-EWMA latency x (in-flight + 1), the
Finagle/Linkerd cost function. The cost decays with the time since the last sample, so an
endpoint that was slow is tried again later instead of being shunned for ever."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

from flotilla.traffic.balancers.base import EWMA_TAU, FeedbackBase, PickContext, record_latency
from flotilla.traffic.balancers.registry import register
from flotilla.traffic.model import Policy
from flotilla.traffic.upstream import Upstream


def cost(u: Upstream, now: float) -> float:
    decayed = u.ewma * math.exp(-(now - u.ewma_stamp) / EWMA_TAU)
    return decayed * (u.inflight + 1)


class PeakEwma(FeedbackBase):
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.allowed()
        n = len(cands)
        if n <= 1:
            return cands[0] if n else None
        i = int(self._rng.random() * n)
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        now = time.monotonic()
        a, b = cands[i], cands[j]
        return a if cost(a, now) <= cost(b, now) else b

    def on_result(self, upstream: Upstream, ok: bool, latency: float) -> None:
        upstream.inflight -= 1
        record_latency(upstream, ok, latency)


@register("Latency")
def _factory(upstreams: Sequence[Upstream], policy: Policy, region: str | None) -> PeakEwma:
    return PeakEwma()
