"""The feed: every follower of the API (controller manager, gateway, DNS) in one shape.

A `Feed` holds one `Informer` per kind over one `ResourceClient` and runs them together;
readers that need the same kind share its informer and its cache. A data plane adds a
`ModelPublisher` with `Feed.publish`: a pure ``build(caches)`` turns the caches into a
model, and ``on_model(model)`` swaps it in. The rules a data plane needs are written
once, here:

* nothing is published until every kind it reads has been listed once: a model built
  from half the objects would drop routes and names that exist;
* bursts coalesce (``debounce``): an agent rewriting fifty EndpointSlices costs one
  rebuild, not fifty;
* a model that cannot be built (or applied) never takes the data plane down: the last
  good model stays in service, the failure is logged once per distinct cause, counted,
  and reported to a `ModelReport` (the process's ``/metrics``); the next change tries
  again;
* while the API is unreachable, informers back off with jitter and the last model keeps
  serving: a control-plane outage must not become a data-plane outage.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from flotilla.client.backoff import Sleep
from flotilla.client.base import Object, ResourceClient
from flotilla.client.informer import Cache, EventHandlers, Informer
from flotilla.resources.kinds import Kind, by_kind

log = logging.getLogger(__name__)

M = TypeVar("M")

#: What a model builder reads: the cache of each kind, by kind name ("Cluster").
Caches = Mapping[str, Cache]


class ModelReport(Protocol):
    """Where a publisher reports its builds (the gateway's or the DNS's metrics)."""

    def model_built(self, at: float) -> None:
        """A model was built and swapped in at wall-clock time ``at``."""
        ...

    def model_build_failed(self) -> None:
        """A model could not be built or applied; the previous one stays in service."""
        ...


class Feed:
    """One informer per kind over ``client``, run together by `run`.

    ``sleep`` and ``rand`` drive every informer's back-off and every publisher's debounce,
    so a test can control time.
    """

    def __init__(
        self,
        client: ResourceClient,
        *,
        resync_period: float | None = None,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.rand = rand
        self._informers: dict[str, Informer] = {}
        self._publishers: list[ModelPublisher[Any]] = []
        self._running = False

    def informer(self, kind: Kind | str) -> Informer:
        """The shared informer of ``kind`` (every namespace), created on first use."""
        kind = by_kind(kind) if isinstance(kind, str) else kind
        inf = self._informers.get(kind.resource)
        if inf is None:
            if self._running:
                raise RuntimeError("add informers before the feed runs")
            inf = Informer(self.client, kind, resync_period=self.resync_period,
                           min_backoff=self.min_backoff, max_backoff=self.max_backoff,
                           sleep=self.sleep, rand=self.rand)
            self._informers[kind.resource] = inf
        return inf

    @property
    def informers(self) -> tuple[Informer, ...]:
        return tuple(self._informers.values())

    def has_synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    def publish(
        self,
        kinds: Iterable[Kind | str],
        build: Callable[[Caches], M],
        on_model: Callable[[M], None],
        *,
        debounce: float = 0.05,
        clock: Callable[[], float] = time.time,
        report: ModelReport | None = None,
        name: str = "model",
    ) -> ModelPublisher[M]:
        """Rebuild a model from the caches of ``kinds`` on every change, keep-last-good."""
        informers = {inf.kind.kind: inf for inf in map(self.informer, kinds)}
        publisher = ModelPublisher(informers, build, on_model, debounce=debounce,
                                   sleep=self.sleep, clock=clock, report=report, name=name)
        self._publishers.append(publisher)
        return publisher

    async def run(self) -> None:
        """Run every informer and publisher until cancelled."""
        self._running = True
        async with asyncio.TaskGroup() as group:
            for inf in self._informers.values():
                group.create_task(inf.run(), name=f"informer-{inf.kind.kind}")
            for pub in self._publishers:
                group.create_task(pub.run(), name=f"publish-{pub.name}")


class ModelPublisher(Generic[M]):
    """Build a model from some informers' caches and hand it on, keeping the last good one.

    ``ready`` is set once the first model was swapped in. ``builds``, ``failures`` and
    ``last_success`` (wall clock) tell a test or a metrics page how it goes.
    """

    def __init__(
        self,
        informers: Mapping[str, Informer],
        build: Callable[[Caches], M],
        on_model: Callable[[M], None],
        *,
        debounce: float,
        sleep: Sleep,
        clock: Callable[[], float],
        report: ModelReport | None,
        name: str,
    ) -> None:
        self.informers = dict(informers)
        self.caches: Caches = {k: inf.cache for k, inf in self.informers.items()}
        self.build = build
        self.on_model = on_model
        self.debounce = debounce
        self.name = name
        self._sleep = sleep
        self._clock = clock
        self._report = report
        self._changed = asyncio.Event()
        #: Failures logged since the last good model: each distinct one is logged once.
        self._logged: set[str] = set()
        self.ready = asyncio.Event()
        self.builds = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        handlers = EventHandlers(on_add=self._touch, on_update=self._touch_update,
                                 on_delete=self._touch)
        for inf in self.informers.values():
            inf.add_handler(handlers)

    def _touch(self, _obj: Object) -> None:
        self._changed.set()

    def _touch_update(self, _old: Object, _new: Object) -> None:
        self._changed.set()

    async def run(self) -> None:
        """Publish once every kind is listed, then after each burst of changes."""
        await asyncio.gather(*(inf.wait_synced() for inf in self.informers.values()))
        while True:
            self._changed.clear()
            self.publish_once()
            await self._changed.wait()
            await self._sleep(self.debounce)  # coalesce a burst of changes

    def publish_once(self) -> bool:
        """Build and hand on a model now; False (and the last good one kept) on failure."""
        try:
            model = self.build(self.caches)
        except Exception as exc:
            self._failed("building", exc)
            return False
        try:
            self.on_model(model)
        except Exception as exc:
            self._failed("applying", exc)
            return False
        self.builds += 1
        self.last_success = self._clock()
        self.last_error = None
        self._logged.clear()
        if self._report is not None:
            self._report.model_built(self.last_success)
        self.ready.set()
        return True

    def _failed(self, stage: str, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{stage} the {self.name}: {type(exc).__name__}: {exc}"
        if self._report is not None:
            self._report.model_build_failed()
        if self.last_error in self._logged:
            log.debug("%s (again); keeping the last good %s", self.last_error, self.name)
            return
        self._logged.add(self.last_error)
        log.error("%s; keeping the last good %s until a change builds", self.last_error,
                  self.name, exc_info=exc)
