"""Which addresses one query for a global name gets, per the policy's strategy.

The model holds only healthy targets, so selection is about *shape*, not health:

* RoundRobin — every address, in an order rotated by one at each query, so resolvers
  that take the first address spread evenly.
* Weighted — one cluster per query, picked by smooth weighted round robin (nginx's
  algorithm). Deterministic: over ``sum(weights)`` queries each cluster gets exactly its
  share, which random picking would only approach; a few DNS replicas each keep their own
  cycle, which still sums to the right share.
* Failover — the clusters of the first region of ``locality.failover`` that has any
  healthy target; all targets when none of the listed regions has one.
* Geo — the clusters in the client's region (EDNS Client Subnet, else the querying
  address, through the `GeoTable`); else as Failover.

Selection state (rotation counters, WRR current weights) lives here, outside the frozen
model, and survives model swaps so a rotation does not restart on every update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flotilla.dns.geo import GeoTable, IPAddress
from flotilla.dns.model import GlobalName, Target


@dataclass(frozen=True, slots=True)
class Selection:
    addresses: tuple[str, ...]
    #: True when the client's location decided the answer (ECS scope must say so).
    used_client_location: bool = False


_V6 = ":"


class Selector:
    def __init__(self, geo: GeoTable | None = None) -> None:
        self.geo = geo or GeoTable()
        self._rotation: dict[str, int] = {}
        self._wrr: dict[tuple[str, int], dict[str, int]] = {}

    def select(self, name: GlobalName, version: int, client: IPAddress | None) -> Selection:
        """Addresses of IP ``version`` (4 or 6) for one query from ``client``."""
        targets = [t for t in name.targets if _family(t, version)]
        if not targets:
            return Selection(())
        strategy = name.strategy
        if strategy == "Weighted":
            chosen = self._weighted(name.host, version, targets)
            return Selection(_addrs([chosen], version))
        if strategy == "Geo" and client is not None and self.geo.entries:
            region = self.geo.region_of(client)
            local = [t for t in targets if region is not None and t.region == region]
            if local:
                return Selection(self._rotate(name.host, _addrs(local, version)), True)
            preferred = _first_region(targets, name.failover)
            return Selection(self._rotate(name.host, _addrs(preferred, version)), True)
        if strategy in ("Failover", "Geo"):
            preferred = _first_region(targets, name.failover)
            return Selection(self._rotate(name.host, _addrs(preferred, version)))
        return Selection(self._rotate(name.host, _addrs(targets, version)))

    def forget(self, live_hosts: set[str]) -> None:
        """Drop state of names no longer served, so it cannot grow without bound."""
        for host in [h for h in self._rotation if h not in live_hosts]:
            del self._rotation[host]
        for key in [k for k in self._wrr if k[0] not in live_hosts]:
            del self._wrr[key]

    def _rotate(self, host: str, addresses: tuple[str, ...]) -> tuple[str, ...]:
        n = self._rotation.get(host, 0)
        self._rotation[host] = (n + 1) % 1_000_000_007
        if len(addresses) < 2:
            return addresses
        k = n % len(addresses)
        return addresses[k:] + addresses[:k]

    def _weighted(self, host: str, version: int, targets: Sequence[Target]) -> Target:
        weights = {t.cluster: t.weight for t in targets}
        if not any(weights.values()):
            weights = dict.fromkeys(weights, 1)  # all zero: do not go dark, share evenly
        current = self._wrr.setdefault((host, version), {})
        total = 0
        best: Target | None = None
        for t in targets:
            w = weights[t.cluster]
            if w <= 0:
                continue
            cw = current.get(t.cluster, 0) + w
            current[t.cluster] = cw
            total += w
            if best is None or cw > current[best.cluster]:
                best = t
        assert best is not None  # at least one positive weight by construction
        current[best.cluster] -= total
        for gone in [c for c in current if c not in weights]:
            del current[gone]
        return best


def _family(target: Target, version: int) -> bool:
    return any((_V6 in a) == (version == 6) for a in target.addresses)


def _addrs(targets: Sequence[Target], version: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for t in targets:
        for a in t.addresses:
            if (_V6 in a) == (version == 6):
                seen[a] = None
    return tuple(seen)


def _first_region(targets: Sequence[Target], order: Sequence[str]) -> Sequence[Target]:
    for region in order:
        in_region = [t for t in targets if t.region == region]
        if in_region:
            return in_region
    return targets
