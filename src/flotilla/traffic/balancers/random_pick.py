"""Uniform random choice: no shared state, so no coordination between gateway workers."""

from __future__ import annotations

import random

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.upstream import Upstream


class RandomPick:
    reads_latency = False

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.allowed()
        return cands[int(self._rng.random() * len(cands))] if cands else None
