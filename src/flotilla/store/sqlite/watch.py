"""Live fan-out of committed changes to watchers, and the replay/live hand-over.

Publishing never blocks: each subscription has a bounded buffer, and a subscription
that overflows is simply marked *lagged* and dropped from. Its consumer then catches up
from the events table (the log is the source of truth; the buffer is only a shortcut),
so one slow consumer can neither stall the writer nor delay the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable

from flotilla.store.base import StoreClosed, WatchEvent
from flotilla.store.sqlite.writer import RawEvent

#: Events fetched from the log per read while replaying.
REPLAY_PAGE = 1000


class Lagged(Exception):
    """The subscription's buffer overflowed; continue from the log."""


class Subscription:
    def __init__(
        self, resource: str | None, namespace: str | None, capacity: int, hub: WatchHub
    ) -> None:
        self._hub = hub
        self.resource = resource
        self.namespace = namespace
        self._capacity = capacity
        self._buffer: deque[RawEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lagged = False
        self.closed = False
        #: when the buffer last went from empty to not empty (for the watch lag metric)
        self.waiting_since = 0.0

    def wants(self, event: RawEvent) -> bool:
        return (self.resource is None or event.resource == self.resource) and (
            self.namespace is None or event.namespace == self.namespace
        )

    def push(self, events: list[RawEvent]) -> None:
        """Add one committed batch. The bound is checked per batch, not per event, so a
        consumer that drains between commits never overflows however large a batch is;
        the buffer holds at most ``capacity`` plus one batch."""
        if self.lagged or not events:
            return
        if len(self._buffer) >= self._capacity:
            self.lagged = True
            self._buffer.clear()
            self._hub.overflows += 1
        else:
            if not self._buffer:
                self.waiting_since = time.monotonic()
            self._buffer.extend(events)
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> RawEvent:
        while True:
            if self.lagged:
                raise Lagged
            if self._buffer:
                event = self._buffer.popleft()
                if self._buffer:
                    self.waiting_since = time.monotonic()
                return event
            if self.closed:
                raise StoreClosed("store closed while watching")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class WatchHub:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._subs: set[Subscription] = set()
        self.closed = False
        self.overflows = 0

    def subscribe(self, resource: str | None, namespace: str | None) -> Subscription:
        if self.closed:
            raise StoreClosed("store is closed")
        sub = Subscription(resource, namespace, self.capacity, self)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, events: list[RawEvent]) -> None:
        for sub in self._subs:
            sub.push([event for event in events if sub.wants(event)])

    def close(self) -> None:
        self.closed = True
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    def __len__(self) -> int:
        return len(self._subs)

    def lag(self) -> tuple[float, int]:
        """(seconds, changes) the worst subscriber is behind; see `StoreStats`."""
        now, worst, backlog = time.monotonic(), 0.0, 0
        for sub in list(self._subs):
            waiting = sub.pending
            if waiting:
                worst = max(worst, now - sub.waiting_since)
                backlog = max(backlog, waiting)
        return worst, backlog


def to_watch_event(raw: RawEvent) -> WatchEvent:
    """Decode per delivery, so every consumer owns (and may mutate) its object."""
    return WatchEvent(raw.type, raw.resource, json.loads(raw.object), raw.revision)


ReadLog = Callable[[int, str | None, str | None, int], Awaitable[list[RawEvent]]]


async def follow(
    hub: WatchHub, read_log: ReadLog, resource: str | None, namespace: str | None, since: int
) -> AsyncGenerator[WatchEvent, None]:
    """Replay the log after ``since``, then follow live, without gap or duplicate.

    The subscription is opened *before* the replay, so a change committed during the
    replay is either in the log read or in the buffer (or both); live events at or below
    the last revision delivered are dropped. On `Lagged` the same dance restarts from the
    last delivered revision. `Expired` comes from `read_log` only when that position
    has been compacted away.
    """
    last = since
    while True:
        sub = hub.subscribe(resource, namespace)
        try:
            while True:
                page = await read_log(last, resource, namespace, REPLAY_PAGE)
                for raw in page:
                    yield to_watch_event(raw)
                    last = raw.revision
                if len(page) < REPLAY_PAGE:
                    break
            while True:
                raw = await sub.get()
                if raw.revision <= last:
                    continue
                yield to_watch_event(raw)
                last = raw.revision
        except Lagged:
            continue
        finally:
            hub.unsubscribe(sub)
