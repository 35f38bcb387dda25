"""Lease deadlines, kept in memory like etcd's lessor.

Grants and revocations are durable writes; renewals are not: a keepalive only moves an
in-memory deadline, so heartbeats from many agents cost no fsync. The price, as in
etcd, is that after a restart every surviving lease starts over with its full TTL.
One background task sleeps until the earliest deadline and revokes what has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from flotilla.store.base import Lease, NotFound, StoreError

log = logging.getLogger(__name__)

Revoke = Callable[[int], Awaitable[object]]


class LeaseKeeper:
    def __init__(self, revoke: Revoke) -> None:
        self._revoke = revoke
        self._ttl: dict[int, float] = {}
        self._deadline: dict[int, float] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, leases: dict[int, float]) -> None:
        now = time.monotonic()
        for lease_id, ttl in leases.items():
            self.add(lease_id, ttl, now)
        self._task = asyncio.create_task(self._expire_loop(), name="flotilla-lease-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def add(self, lease_id: int, ttl: float, now: float | None = None) -> Lease:
        self._ttl[lease_id] = ttl
        self._deadline[lease_id] = (now or time.monotonic()) + ttl
        self._changed.set()  # this deadline may be the earliest now
        return Lease(lease_id, ttl, ttl)

    @property
    def count(self) -> int:
        return len(self._ttl)

    def forget(self, lease_id: int) -> None:
        self._ttl.pop(lease_id, None)
        self._deadline.pop(lease_id, None)

    def info(self, lease_id: int) -> Lease:
        remaining = self._deadline.get(lease_id, 0.0) - time.monotonic()
        if lease_id not in self._ttl or remaining <= 0:
            raise NotFound(f"lease {lease_id} not found (expired or revoked)")
        return Lease(lease_id, self._ttl[lease_id], remaining)

    def renew(self, lease_id: int) -> Lease:
        ttl = self.info(lease_id).ttl  # an expired lease cannot be brought back
        # A later deadline needs no wake-up: the loop re-checks at the old one.
        self._deadline[lease_id] = time.monotonic() + ttl
        return Lease(lease_id, ttl, ttl)

    async def _expire_loop(self) -> None:
        while True:
            now = time.monotonic()
            expired = [lid for lid, deadline in self._deadline.items() if deadline <= now]
            for lease_id in expired:
                self.forget(lease_id)
                try:
                    await self._revoke(lease_id)
                except NotFound:
                    pass  # revoked concurrently by a caller; nothing left to do
                except StoreError as exc:
                    log.error("could not revoke expired lease %d: %s", lease_id, exc)
            self._changed.clear()
            wait = min(self._deadline.values(), default=now + 3600.0) - time.monotonic()
            if wait > 0:
                # A timer, not synchronisation: wake at the next deadline, or earlier
                # when a lease is added or renewed.
                # asyncio.timeout rather than wait_for: on 3.11, wait_for swallows a
                # cancel that lands just as the event fires, and close() would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
