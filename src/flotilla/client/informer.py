"""Informer: a local, eventually consistent, read-only copy of one kind, kept by list + watch.

Every follower of the API (the controllers, the gateway, the DNS) needs "the current
objects of kind K" and "tell me when one changes". Asking the API each time is slow and
hammers the server; an informer lists once, then follows the watch from the list's
resourceVersion, and keeps a cache keyed (namespace, name) that readers use instead.

Failure handling is the point of the class:

* a watch that ends or breaks (the server's watch timeout, a server restart, a network
  cut) is resumed from the last resourceVersion seen, so nothing is missed, nothing is
  delivered twice and nothing is listed again;
* a resume point the server has compacted away (410 `GoneError`) forces a re-list, and
  the informer diffs the new list against its cache and emits the differences as
  synthetic add/update/delete events, so handlers never miss a deletion that happened
  while it was away;
* any other error backs off exponentially with jitter (`Backoff`), so a dead server is
  not flooded, and a fleet of followers does not reconnect in lock-step.

Written against `ResourceClient` only, so the same informer serves controllers inside
the server process (the registry, no network) and remote ones (`HttpClient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flotilla.client.backoff import Backoff, Sleep
from flotilla.client.base import GoneError, Object, ResourceClient, WatchEvent
from flotilla.client.frozen import freeze_object
from flotilla.resources.kinds import Kind
from flotilla.resources.labels import Selector, parse_selector

log = logging.getLogger(__name__)

#: A watch open at least this long that ends without an error was ended by the server
#: (its watch timeout, a restart): resume at once, as after one that delivered events.
CLEAN_END_SECONDS = 1.0


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """Identifies an object of a known kind. ``namespace`` is "" for cluster scope."""

    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Object) -> ObjectKey:
        meta = obj.get("metadata") or {}
        return cls(str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


AddHandler = Callable[[Object], None]
UpdateHandler = Callable[[Object, Object], None]
DeleteHandler = Callable[[Object], None]


@dataclass(frozen=True, slots=True)
class EventHandlers:
    """Callbacks an informer runs on each change, in event order.

    They are plain functions, not coroutines: they run inside the informer's loop and
    should only record intent (enqueue a key), never do I/O. An exception in one is
    logged and does not stop the informer. ``on_update`` also fires on each periodic
    resync with ``old is new``.
    """

    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


def resource_version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Cache:
    """The informer's objects, keyed (namespace, name), each frozen (`client.frozen`).

    Readers share the objects, so none may change one in place: a change raises
    ``TypeError``. To build an update, ``copy.deepcopy`` the object (that returns plain,
    mutable containers) and change the copy. Freezing once per change costs less than
    half of one deep copy, and reads cost nothing.
    """

    def __init__(self) -> None:
        self._items: dict[ObjectKey, Object] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: ObjectKey) -> Object | None:
        return self._items.get(key)

    def list_keys(self) -> list[ObjectKey]:
        return sorted(self._items)

    def list(
        self, selector: str | Selector | None = None, *, namespace: str | None = None
    ) -> list[Object]:
        """Objects matching a label selector (string or compiled), ordered by key."""
        sel = parse_selector(selector) if selector is None or isinstance(selector, str) \
            else selector
        out = []
        for key in sorted(self._items):
            if namespace is not None and key.namespace != namespace:
                continue
            obj = self._items[key]
            if sel.matches((obj.get("metadata") or {}).get("labels")):
                out.append(obj)
        return out

    def _set(self, obj: Object) -> Object | None:
        key = ObjectKey.of(obj)
        old = self._items.get(key)
        self._items[key] = obj
        return old

    def _pop(self, key: ObjectKey) -> Object | None:
        return self._items.pop(key, None)


class Informer:
    """List + watch one kind into a `Cache` and fan changes out to `EventHandlers`.

    Run it with `run()` (until cancelled); a `Feed` runs several and shares one informer
    per kind between its readers. ``sleep`` and ``rand`` drive the retry back-off (tests
    inject them to control time).
    """

    def __init__(
        self,
        client: ResourceClient,
        kind: Kind,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        resync_period: float | None = None,
        page_size: int = 500,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.selector = selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.backoff = Backoff(min_backoff, max_backoff, sleep=sleep, rand=rand)
        self.cache = Cache()
        self._handlers: list[EventHandlers] = []
        self._synced = asyncio.Event()
        #: The resume point: last resourceVersion seen in a list, event or bookmark.
        self._rv: str | None = None
        #: Counters a test or a metrics page can read: lists, watches opened, failures.
        self.lists = 0
        self.watches = 0
        self.failures = 0
        self._events_seen = 0

    def __repr__(self) -> str:
        return f"Informer({self.kind.kind}, rv={self._rv})"

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the cache (and stays true)."""
        return self._synced.is_set()

    @property
    def last_resource_version(self) -> str | None:
        return self._rv

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handler(self, handlers: EventHandlers) -> None:
        """Register callbacks; added after sync, they get an add for each cached object
        first, so a late subscriber sees the same world as an early one."""
        self._handlers.append(handlers)
        if self.has_synced and handlers.on_add is not None:
            for obj in self.cache.list():
                self._call(handlers.on_add, obj)

    async def run(self) -> None:
        """List, then watch forever, recovering from every error. Cancel to stop."""
        async with asyncio.TaskGroup() as group:
            if self.resync_period:
                group.create_task(self._resync_loop(self.resync_period),
                                  name=f"resync-{self.kind.kind}")
            await self._follow()

    async def _follow(self) -> None:
        while True:
            events = self._events_seen
            try:
                if self._rv is None:
                    await self._relist()
                    self.backoff.reset()
                opened = time.monotonic()
                await self._watch()
                if self._events_seen > events or \
                        time.monotonic() - opened >= CLEAN_END_SECONDS:
                    self.backoff.reset()
                    continue  # the stream ended after delivering: resume at once
                # A stream that ends at once and empty: not an error, but do not spin.
                await self.backoff.wait()
                continue
            except GoneError:
                if self._rv is not None:
                    log.info("%s: resourceVersion %s expired, re-listing",
                             self.kind.kind, self._rv)
                    self._rv = None
                    continue  # the normal case: the resume point aged out
                reason = "the list expired while paging"
            except Exception as exc:  # any failure: back off, retry
                if self._events_seen > events:
                    self.backoff.reset()  # a long-lived watch broke: retry soon
                reason = str(exc) or type(exc).__name__
            self.failures += 1
            delay = self.backoff.next_delay()
            log.warning("%s informer: %s; retrying in %.2fs", self.kind.kind, reason, delay)
            await self.backoff.sleep(delay)

    async def _relist(self) -> None:
        """List every page, replace the cache, emit the differences as events.

        The watch then starts from the *first* page's resourceVersion: if the pages are
        not one snapshot, whatever changed while paging is replayed by the watch (and
        replays of versions already held are dropped), so nothing is missed.
        """
        items: list[Object] = []
        token: str | None = None
        start: str | None = None
        while True:
            page = await self.client.list(
                self.kind, self.namespace, selector=self.selector, limit=self.page_size,
                continue_token=token,
            )
            start = start or page.resource_version
            items.extend(page.items)
            token = page.continue_token
            if not token:
                break
        self.lists += 1
        fresh: dict[ObjectKey, Object] = {}
        for item in items:
            key = ObjectKey.of(item)
            held = self.cache.get(key)  # an unchanged object is not frozen a second time
            rv = resource_version(item)
            fresh[key] = held if held is not None and rv and resource_version(held) == rv \
                else freeze_object(item)
        for key in self.cache.list_keys():
            if key not in fresh:
                old = self.cache._pop(key)
                if old is not None:
                    self._emit_delete(old)
        for obj in fresh.values():
            old = self.cache._set(obj)
            if old is None:
                self._emit_add(obj)
            elif resource_version(old) != resource_version(obj):
                self._emit_update(old, obj)
        self._rv = start
        self._synced.set()

    async def _watch(self) -> None:
        """Follow the watch from the resume point until the stream ends."""
        assert self._rv is not None
        self.watches += 1
        stream = self.client.watch(
            self.kind, self.namespace, resource_version=self._rv, selector=self.selector
        )
        try:
            async for event in stream:
                self._events_seen += 1
                self._apply(event)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _apply(self, event: WatchEvent) -> None:
        rv = resource_version(event.object)
        if event.type == "BOOKMARK":
            if rv:
                self._rv = rv
            return
        key = ObjectKey.of(event.object)
        old = self.cache.get(key)
        if old is not None and _newer(event.object, old) is False:
            pass  # a replay of what we hold, or of an older incarnation's deletion
        elif event.type == "DELETED":
            if self.cache._pop(key) is not None:  # else never seen: nothing to tell
                self._emit_delete(freeze_object(event.object))
        else:
            obj = freeze_object(event.object)
            self.cache._set(obj)
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)
        if rv:
            self._rv = rv

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in self.cache.list():
                self._emit_update(obj, obj)

    def _emit_add(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Object, new: Object) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s informer: event handler %r failed", self.kind.kind, fn)


def _newer(new: Object, old: Object) -> bool | None:
    """Whether ``new`` is a later revision than ``old``; None when not comparable.

    resourceVersions are opaque in Kubernetes, but ours are store revisions (decimal),
    and comparing them lets a replayed event be recognised and dropped.
    """
    try:
        return int(resource_version(new)) > int(resource_version(old))
    except ValueError:
        return None
