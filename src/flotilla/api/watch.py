"""Watch streams with progress BOOKMARKs.

A watcher of a quiet resource would otherwise sit on an old resourceVersion while the
store's revision moves on (other resources keep writing) until compaction passes it and
its next resume is answered 410, forcing a full re-list. BOOKMARK events carry the
latest revision the stream has *fully* delivered, so a resume from them is both cheap
and lossless.

Knowing that revision exactly requires seeing every change, so a bookmarking watch
follows the store's all-resources stream and filters it here; that costs one queue hop
per change per watcher, which is fine for the tens of watchers (agents, gateway, DNS,
CLI) a control plane has. Watches without bookmarks (in-process controllers) follow
only their own resource.

A bookmark is emitted only when nothing is queued: every event with a revision up to
the bookmark's has then been yielded, so resuming from it can neither lose nor repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from flotilla.api import errors
from flotilla.client.base import WatchEvent
from flotilla.resources.kinds import Kind
from flotilla.resources.labels import Selector
from flotilla.store import base as store_base
from flotilla.store.base import Object, Store

#: How far a bookmarking watch may run ahead of a slow consumer before it waits.
_QUEUE_SIZE = 1024

_Item = WatchEvent | BaseException | None


class WatchSet:
    """The open bookmarking watches, so that shutdown can end them: an HTTP server waits
    for open responses before it exits, and a watch response never ends by itself."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[_Item]] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._queues)

    def add(self, queue: asyncio.Queue[_Item]) -> None:
        self._queues.add(queue)

    def discard(self, queue: asyncio.Queue[_Item]) -> None:
        self._queues.discard(queue)

    def close_all(self) -> None:
        """End every stream now; pending events are dropped, and clients resume from
        the last resourceVersion they saw, on this server or another."""
        self.closed = True
        for queue in self._queues:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)


def bookmark(kind: Kind, revision: int) -> WatchEvent:
    """A Kubernetes BOOKMARK: an object of the watched kind carrying only a revision."""
    return WatchEvent(
        "BOOKMARK",
        {"apiVersion": kind.api_version, "kind": kind.kind,
         "metadata": {"resourceVersion": str(revision)}},
    )


def _matches(obj: Object, namespace: str | None, selector: Selector) -> bool:
    meta = obj.get("metadata") or {}
    if namespace is not None and meta.get("namespace", "") != namespace:
        return False
    return selector.matches(meta.get("labels"))


async def watch_events(
    store: Store,
    kind: Kind,
    namespace: str | None,
    *,
    since: int,
    selector: Selector,
    bookmark_interval: float | None,
    watches: WatchSet | None = None,
) -> AsyncIterator[WatchEvent]:
    """Changes of ``kind`` after revision ``since``; `GoneError` when it is compacted.

    Selector filtering looks at the object after the change, so an object relabelled
    out of the selector shows up as nothing rather than as DELETED (documented gap).
    """
    if bookmark_interval is None:
        try:
            async for ev in store.watch(kind.resource, namespace, since=since):
                if _matches(ev.object, namespace, selector):
                    yield WatchEvent(ev.type, ev.object)
        except store_base.StoreError as exc:
            raise errors.from_store(exc, kind.resource) from None
        return

    queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_SIZE)
    progress = since
    if watches is not None:
        if watches.closed:
            return
        watches.add(queue)

    async def pump() -> None:
        nonlocal progress
        try:
            async for ev in store.watch(None, None, since=since):
                if ev.resource == kind.resource and _matches(ev.object, namespace, selector):
                    await queue.put(WatchEvent(ev.type, ev.object))
                # Only after the event is queued: a bookmark must never overtake it.
                progress = ev.revision
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(exc)
        else:
            await queue.put(None)

    task = asyncio.create_task(pump(), name=f"watch-pump-{kind.resource}")
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), bookmark_interval)
            except TimeoutError:
                if queue.empty():
                    yield bookmark(kind, progress)
                continue
            if item is None:
                return
            if isinstance(item, store_base.StoreError):
                raise errors.from_store(item, kind.resource) from None
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if watches is not None:
            watches.discard(queue)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def bounded(
    events: AsyncIterator[WatchEvent],
    *,
    deadline: float,
    check: Callable[[], None],
    every: float,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[WatchEvent]:
    """``events`` until the monotonic ``deadline`` (then the stream ends cleanly: the
    server's watch timeout), calling ``check`` at least every ``every`` seconds; what it
    raises (the 401 of a revoked token) ends the stream with that error.

    The next event is awaited in a task kept across checks, so a check never cancels
    (and so never loses) an event on its way; the task is cancelled only at the end.
    """
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            left = deadline - clock()
            if left <= 0:
                return
            check()
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=min(every, left))
            if not done:
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
