"""Uniform random choice: no shared state, so no coordination between gateway workers."""

from __future__ import annotations

import random
from collections.abc import Sequence

from flotilla.traffic.balancers.base import FeedbackBase, PickContext
from flotilla.traffic.balancers.registry import register
from flotilla.traffic.model import Policy
from flotilla.traffic.upstream import Upstream


class RandomPick(FeedbackBase):
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.allowed()
        return cands[int(self._rng.random() * len(cands))] if cands else None


@register("Random")
def _factory(upstreams: Sequence[Upstream], policy: Policy, region: str | None) -> RandomPick:
    return RandomPick()
