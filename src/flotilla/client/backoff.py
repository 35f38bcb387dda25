"""Exponential back-off with jitter, for anything that retries against the API.

Jitter matters more than the exponent: when the server restarts, every gateway, DNS and
agent loses its watches at the same instant, and without jitter they would all come
back in the same millisecond, again and again. "Equal jitter" keeps half of each delay
fixed (so a retry never comes too soon) and randomises the other half.

The sleep and the random source are injected so a test can drive time instead of
waiting for it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Delays ``base, 2·base, 4·base ... ≤ cap``, each jittered into ``[d/2, d]``."""

    def __init__(self, base: float = 0.05, cap: float = 5.0, *,
                 sleep: Sleep = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"back-off needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.sleep = sleep
        self._rand = rand
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next retry; each call counts one more failure."""
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return ceiling / 2 + ceiling / 2 * self._rand()

    async def wait(self) -> float:
        """Sleep for `next_delay` and return how long that was."""
        delay = self.next_delay()
        await self.sleep(delay)
        return delay

    def reset(self) -> None:
        """A success: the next failure starts from ``base`` again."""
        self.attempt = 0
