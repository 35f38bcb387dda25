"""Consistent hashing: Maglev (the default for ConsistentHash) and a ketama ring.

Both are built over *all* of the backend's upstreams, not just the available ones, so an
ejection does not reshuffle keys: a key whose endpoint is unavailable walks on to the next
entry (Maglev: the next table slot; ring: the next point) and returns home when the
endpoint does. Hashes are blake2b, not Python's ``hash()``, so every gateway process (and
every gateway replica) maps a key identically. Why Maglev is the default: see
docs/components/traffic.md (measured by bench/gateway/hash_compare.py).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.balancers.round_robin import RoundRobin
from flotilla.traffic.upstream import Upstream

_PRIMES = (4099, 16411, 65537)


def hash64(data: bytes, salt: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, salt=salt).digest(), "little")


def _ident(u: Upstream) -> bytes:
    e = u.endpoint
    return f"{e.cluster}/{e.address}:{e.port}".encode()


class Maglev:
    """Google's Maglev lookup table: O(1) lookups, near-perfect balance, ~1/N of keys move
    when one of N endpoints goes. Table size: the smallest of 4099/16411/65537 that is
    >= 100 x N - larger tables move fewer keys needlessly but take longer to build, and
    a build blocks the event loop (measured: bench/gateway/hash_compare.py)."""

    reads_latency = False

    def __init__(self, upstreams: Sequence[Upstream]) -> None:
        self._fallback = RoundRobin()
        n = len(upstreams)
        self.size = next((p for p in _PRIMES if p >= 100 * n), _PRIMES[-1])
        self.table: list[Upstream] = []
        if n:
            self.table = self._build(sorted(upstreams, key=_ident))

    def _build(self, ups: Sequence[Upstream]) -> list[Upstream]:
        m = self.size
        offsets = [hash64(_ident(u), b"offset") % m for u in ups]
        skips = [hash64(_ident(u), b"skip") % (m - 1) + 1 for u in ups]
        nexts = [0] * len(ups)
        table: list[Upstream | None] = [None] * m
        filled = 0
        while True:
            for i, u in enumerate(ups):
                c = (offsets[i] + nexts[i] * skips[i]) % m
                while table[c] is not None:
                    nexts[i] += 1
                    c = (offsets[i] + nexts[i] * skips[i]) % m
                table[c] = u
                nexts[i] += 1
                filled += 1
                if filled == m:
                    return [t for t in table if t is not None]

    def pick(self, ctx: PickContext) -> Upstream | None:
        key = ctx.hash_key
        if key is None or not self.table:
            return self._fallback.pick(ctx)
        table, m = self.table, self.size
        start = hash64(key) % m
        for step in range(m):  # bounded; normally 1 step
            u = table[(start + step) % m]
            if u.available and (not ctx.filtered or ctx.allows(u)):
                return u
            if step > 64 and not any(c.available for c in ctx.candidates):
                break
        # Panic mode (candidates include unavailable upstreams) or all unavailable.
        u = table[start]
        if u in ctx.candidates and ctx.allows(u):
            return u
        return self._fallback.pick(ctx)


class RingHash:
    """Ketama-style ring: ``replicas`` points per endpoint, binary search per lookup."""

    reads_latency = False

    def __init__(self, upstreams: Sequence[Upstream], replicas: int = 160) -> None:
        self._fallback = RoundRobin()
        points = sorted((hash64(_ident(u) + b"#" + str(r).encode()), id(u), u)
                        for u in upstreams for r in range(replicas))
        self.hashes = [p[0] for p in points]
        self.owners = [p[2] for p in points]

    def pick(self, ctx: PickContext) -> Upstream | None:
        key = ctx.hash_key
        n = len(self.owners)
        if key is None or not n:
            return self._fallback.pick(ctx)
        i = bisect.bisect_left(self.hashes, hash64(key))
        for step in range(n):
            u = self.owners[(i + step) % n]
            if u.available and (not ctx.filtered or ctx.allows(u)):
                return u
        u = self.owners[i % n]
        return u if u in ctx.candidates and ctx.allows(u) else self._fallback.pick(ctx)
