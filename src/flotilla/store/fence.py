"""Which writes are fenced: the controllers' in-process writes, and no one else's.

The controller leader's elector puts itself in a context variable (`FENCE_SOURCE`) of the
task that runs the controllers; every task the controllers start inherits it, a user's
HTTP request never has it. `FencingStore`, the wrapper the API server puts under its
registry, asks the source of the calling context for the current `Fence` and passes it
to the backend, so a write from a deposed leader is refused in the store's own
transaction (`Fenced`), whatever the elector believes at that moment.

The source hands out fences under a shared hold (`FenceSource.hold`): its own renewals
take the exclusive side, so a fenced write never carries a revision that a renewal is
about to move (a write and a renewal racing would otherwise refuse the write for
nothing).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from flotilla.resources.labels import Selector
from flotilla.store.base import (
    Change,
    Fence,
    Fenced,
    Lease,
    ListResult,
    Modifying,
    Object,
    Store,
    WatchEvent,
)


class FenceSource(Protocol):
    def hold(self) -> AbstractAsyncContextManager[Fence]:
        """The current fence, held (no renewal moves it) until the block ends; raises
        `Fenced` at once when this process does not lead."""
        ...

    def refused(self, exc: Fenced) -> None:
        """The store refused a write under this source's fence: step down."""
        ...


#: The fence source of the calling context; None for every writer but the controllers.
FENCE_SOURCE: contextvars.ContextVar[FenceSource | None] = contextvars.ContextVar(
    "flotilla_fence_source", default=None)


class FencingStore:
    """A `Store` that fences the writes of contexts with a `FENCE_SOURCE`."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._modifying = inner if isinstance(inner, Modifying) else None

    async def get(self, resource: str, namespace: str, name: str) -> Object:
        return await self.inner.get(resource, namespace, name)

    async def list(self, resource: str, namespace: str | None = None, *,
                   selector: Selector | None = None, limit: int = 0,
                   continue_token: str | None = None) -> ListResult:
        return await self.inner.list(resource, namespace, selector=selector, limit=limit,
                                     continue_token=continue_token)

    async def create(self, resource: str, obj: Object, *, lease_id: int | None = None,
                     fence: Fence | None = None) -> Object:
        source = FENCE_SOURCE.get()
        if source is None or fence is not None:
            return await self.inner.create(resource, obj, lease_id=lease_id, fence=fence)
        async with source.hold() as held:
            try:
                return await self.inner.create(resource, obj, lease_id=lease_id, fence=held)
            except Fenced as exc:
                source.refused(exc)
                raise

    async def update(self, resource: str, obj: Object, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        source = FENCE_SOURCE.get()
        if source is None or fence is not None:
            return await self.inner.update(resource, obj, expected_revision=expected_revision,
                                           fence=fence)
        async with source.hold() as held:
            try:
                return await self.inner.update(resource, obj,
                                               expected_revision=expected_revision, fence=held)
            except Fenced as exc:
                source.refused(exc)
                raise

    async def delete(self, resource: str, namespace: str, name: str, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        source = FENCE_SOURCE.get()
        if source is None or fence is not None:
            return await self.inner.delete(resource, namespace, name,
                                           expected_revision=expected_revision, fence=fence)
        async with source.hold() as held:
            try:
                return await self.inner.delete(resource, namespace, name,
                                               expected_revision=expected_revision, fence=held)
            except Fenced as exc:
                source.refused(exc)
                raise

    async def modify(self, resource: str, namespace: str, name: str, change: Change, *,
                     expected_revision: int) -> Object | None:
        """`Modifying.modify` for unfenced writers (an agent's Lease renewal: the
        heartbeat fast path, `flotilla.api.renewal`). A fenced context declines (None),
        so its write takes the get + update path, which carries the fence; so does a
        backend without the capability."""
        if FENCE_SOURCE.get() is not None or self._modifying is None:
            return None
        return await self._modifying.modify(resource, namespace, name, change,
                                       expected_revision=expected_revision)

    def watch(self, resource: str | None = None, namespace: str | None = None, *,
              since: int) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(resource, namespace, since=since)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def grant_lease(self, ttl: float) -> Lease:
        return await self.inner.grant_lease(ttl)

    async def keepalive(self, lease_id: int) -> Lease:
        return await self.inner.keepalive(lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        await self.inner.revoke_lease(lease_id)

    async def lease_info(self, lease_id: int) -> Lease:
        return await self.inner.lease_info(lease_id)

    async def close(self) -> None:
        await self.inner.close()
