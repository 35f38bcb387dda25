"""Locality-aware priority: the client's region first, then the policy's ordered failover
list, then every other region; a region is left ("spilled") when the available share of
its endpoints falls under ``locality.spillThreshold``. Within a region: round robin.

The preferred region is the request's region header when the policy names one and the
client sent it, else the gateway's own ``--region``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.balancers.round_robin import RoundRobin
from flotilla.traffic.upstream import Upstream


class LocalityPriority:
    reads_latency = False

    def __init__(self, upstreams: Sequence[Upstream], failover: Sequence[str],
                 region: str | None, spill_threshold: float) -> None:
        self.totals = Counter(u.endpoint.region for u in upstreams)
        self.failover = tuple(failover)
        self.region = region
        self.threshold = spill_threshold
        self._orders: dict[str | None, tuple[str, ...]] = {}
        self._inner: dict[str, RoundRobin] = {r: RoundRobin() for r in self.totals}
        self._grouped_for: Sequence[Upstream] | None = None
        self._grouped: dict[str, list[Upstream]] = {}

    def order(self, preferred: str | None) -> tuple[str, ...]:
        """Preferred region, then the failover list, then the rest by name."""
        cached = self._orders.get(preferred)
        if cached is None:
            seq = [preferred] if preferred else []
            seq += [r for r in self.failover if r not in seq]
            seq += sorted(r for r in self.totals if r not in seq)
            cached = self._orders[preferred] = tuple(seq)
        return cached

    def _groups(self, cands: Sequence[Upstream]) -> dict[str, list[Upstream]]:
        if cands is not self._grouped_for:  # recomputed only when health changes
            groups: dict[str, list[Upstream]] = {}
            for u in cands:
                groups.setdefault(u.endpoint.region, []).append(u)
            self._grouped, self._grouped_for = groups, cands
        return self._grouped

    def pick(self, ctx: PickContext) -> Upstream | None:
        groups = self._groups(ctx.candidates)
        first: Upstream | None = None
        for region in self.order(ctx.region or self.region):
            members = groups.get(region)
            if not members:
                continue
            available = sum(1 for u in members if u.available)
            sub = PickContext(members, exclude=ctx.exclude, avoid_clusters=ctx.avoid_clusters)
            u = self._inner[region].pick(sub)
            if u is None:
                continue
            if available >= self.threshold * self.totals[region]:
                return u
            first = first or u
        return first
