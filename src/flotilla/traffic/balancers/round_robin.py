"""Round robin and smooth weighted round robin (nginx's algorithm)."""

from __future__ import annotations

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.upstream import Upstream


class RoundRobin:
    """Each candidate in turn. A counter, not an index into a fixed list, so a changing
    candidate set (an endpoint ejected) needs no reset."""

    reads_latency = False

    def __init__(self) -> None:
        self._next = 0

    def pick(self, ctx: PickContext) -> Upstream | None:
        cands = ctx.candidates
        n = len(cands)
        for _ in range(n):
            u = cands[self._next % n]
            self._next += 1
            if not ctx.filtered or ctx.allows(u):
                return u
        return None


class SmoothWeighted:
    """nginx's smooth weighted round robin: every pick adds each weight to its current
    value, takes the largest and subtracts the total from it. Over a cycle of sum(weights)
    picks each endpoint gets exactly its weight, interleaved rather than in bursts."""

    reads_latency = False

    def __init__(self) -> None:
        self._current: dict[Upstream, int] = {}

    def pick(self, ctx: PickContext) -> Upstream | None:
        best: Upstream | None = None
        best_cw = 0
        total = 0
        current = self._current
        for u in ctx.candidates:
            if ctx.filtered and not ctx.allows(u):
                continue
            w = u.endpoint.weight
            cw = current.get(u, 0) + w
            current[u] = cw
            total += w
            if best is None or cw > best_cw:
                best, best_cw = u, cw
        if best is not None:
            current[best] = best_cw - total
        return best
