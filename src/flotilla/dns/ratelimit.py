"""Response-rate limiting (RRL) for the UDP side, in the manner of BIND's.

An authoritative server on UDP is a reflector: anyone can spoof a victim's address as
the source of queries, and the answers, larger than the queries, land on the victim.
RRL bounds what one source *prefix* (not one address: a spoofer varies the low bits)
receives per second. Past the rate, an answer is replaced by an empty reply with TC=1:
no larger than the query, so it amplifies nothing, and a real resolver behind that
prefix retries over TCP, where a spoofed source cannot complete the handshake. Nothing
is limited over TCP.

Each prefix has a token bucket (``rate`` per second, up to ``burst``). The table is an
LRU bounded by ``max_prefixes`` so a flood from many prefixes costs bounded memory; a
prefix evicted and seen again starts with a full bucket, which only errs on the side of
answering.
"""

from __future__ import annotations

import socket
import time
from collections import OrderedDict
from collections.abc import Callable


class ResponseRateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 56,
        max_prefixes: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("the response rate must be positive (disable RRL instead)")
        if not 0 < ipv4_prefix <= 32 or not 0 < ipv6_prefix <= 128:
            raise ValueError("RRL prefix lengths must be 1-32 (IPv4) and 1-128 (IPv6)")
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._shift4 = 32 - ipv4_prefix
        self._shift6 = 128 - ipv6_prefix
        self._max = max_prefixes
        self._clock = clock
        #: prefix key -> (tokens, time of the last refill)
        self._buckets: OrderedDict[tuple[int, int], tuple[float, float]] = OrderedDict()

    def _key(self, address: str) -> tuple[int, int] | None:
        try:
            if ":" in address:
                return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address),
                                         "big") >> self._shift6
            return 4, int.from_bytes(socket.inet_aton(address), "big") >> self._shift4
        except (OSError, ValueError):
            return None

    def allow(self, address: str) -> bool:
        """Spend one answer of ``address``'s prefix; False once its bucket is empty."""
        key = self._key(address)
        if key is None:
            return True
        now = self._clock()
        buckets = self._buckets
        entry = buckets.get(key)
        if entry is None:
            tokens = self.burst
            if len(buckets) >= self._max:
                buckets.popitem(last=False)
        else:
            tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
            buckets.move_to_end(key)
        if tokens < 1.0:
            buckets[key] = (tokens, now)
            return False
        buckets[key] = (tokens - 1.0, now)
        return True

    def __len__(self) -> int:
        return len(self._buckets)
