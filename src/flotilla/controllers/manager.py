"""ControllerManager: runs several controllers over one set of shared informers.

One informer per kind, shared: the scheduler, the renderer and the status aggregator all
watch ResourceBindings, and three watches and three caches of the same objects would
triple the server's watch load and the process's memory for nothing.

Leader election is a seam: with several control-plane replicas only one may run the
controllers, so the manager awaits ``leader.wait_until_leader()`` before starting
anything, and stops everything if ``leader.lost()`` completes. `flotilla server` uses
`flotilla.controllers.leader.LeaseElector` (one manager per term); `AlwaysLeader` is
for tests and embedded uses with a single writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from flotilla.client.base import ResourceClient
from flotilla.client.feed import Feed
from flotilla.controllers.controller import Controller
from flotilla.controllers.informer import Informer
from flotilla.resources.kinds import Kind

log = logging.getLogger(__name__)


class LeaderElector(Protocol):
    async def wait_until_leader(self) -> None:
        """Return once this process holds the leadership."""
        ...

    async def lost(self) -> None:
        """Return when the leadership is lost (never, for a sole leader)."""
        ...


class AlwaysLeader:
    """The single-replica case: leader from the start, forever."""

    async def wait_until_leader(self) -> None:
        return None

    async def lost(self) -> None:
        await asyncio.Event().wait()


class LostLeadership(Exception):
    """`ControllerManager.run` ends with this when the leader lease is lost."""


class ControllerManager:
    """Build with `informer()` and `add()`, then `run()` (or ``async with``)."""

    def __init__(
        self,
        client: ResourceClient,
        *,
        resync_period: float | None = None,
        leader: LeaderElector | None = None,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.leader: LeaderElector = leader or AlwaysLeader()
        self.feed = Feed(client, resync_period=resync_period)
        self._controllers: list[Controller] = []
        self._informer_tasks: list[asyncio.Task[None]] = []
        self._controller_tasks: list[asyncio.Task[None]] = []
        self._started = False

    def informer(self, kind: Kind) -> Informer:
        """The shared informer of ``kind`` (every namespace), created on first use."""
        if self._started and kind not in {i.kind for i in self.feed.informers}:
            raise RuntimeError("add informers before the manager starts")
        return self.feed.informer(kind)

    def add(self, controller: Controller) -> None:
        if self._started:
            raise RuntimeError("add controllers before the manager starts")
        if controller.client is None:  # where its permanent errors are recorded
            controller.client = self.client
        self._controllers.append(controller)

    @property
    def controllers(self) -> tuple[Controller, ...]:
        return tuple(self._controllers)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return self.feed.informers

    @property
    def running(self) -> bool:
        """True while informers or controllers of this manager are running."""
        return any(not t.done() for t in (*self._informer_tasks, *self._controller_tasks))

    def has_synced(self) -> bool:
        return self.feed.has_synced()

    async def start(self) -> None:
        """Wait for leadership, then start informers and controllers; returns at once
        after that (the work runs in background tasks until `stop`)."""
        if self._started:
            raise RuntimeError("manager already started")
        self._started = True
        await self.leader.wait_until_leader()
        self._informer_tasks.append(asyncio.create_task(self.feed.run(), name="feed"))
        for c in self._controllers:
            self._controller_tasks.append(
                asyncio.create_task(c.run(), name=f"controller-{c.name}"))
        log.info("controller manager: %d informer(s), %d controller(s) started",
                 len(self.feed.informers), len(self._controllers))

    async def stop(self) -> None:
        """Stop controllers first (so none reconciles on a cache being torn down), then
        the informers. Idempotent."""
        groups = (self._controller_tasks, self._informer_tasks)
        self._controller_tasks, self._informer_tasks = [], []
        for group in groups:
            for t in group:
                t.cancel()
            results = await asyncio.gather(*group, return_exceptions=True)
            for t, r in zip(group, results, strict=True):
                if isinstance(r, Exception):
                    log.error("%s ended with %r", t.get_name(), r)

    async def run(self) -> None:
        """Start, run until cancelled or leadership is lost, and always stop cleanly."""
        await self.start()
        try:
            await self.leader.lost()
            raise LostLeadership("leadership lost; controllers stopped")
        finally:
            await self.stop()

    async def __aenter__(self) -> ControllerManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def background(
    build: Callable[[ControllerManager], None],
    *,
    resync_period: float | None = None,
    leader: LeaderElector | None = None,
) -> Callable[[ResourceClient], Awaitable[None]]:
    """Adapt a set-up function into a ``run_server(background=...)`` task.

    ``build(manager)`` registers the controllers; the returned coroutine function runs
    them on the server's in-process client (the registry) until the server stops.
    """

    async def run(client: ResourceClient) -> None:
        manager = ControllerManager(client, resync_period=resync_period, leader=leader)
        build(manager)
        await manager.run()

    return run
