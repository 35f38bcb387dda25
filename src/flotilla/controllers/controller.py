"""Controller: informers feed keys into a work queue, N workers run one reconciler.

A reconciler is asked one question, "make the object at this key right", and is told
nothing about which event caused the call. That is deliberate (level-triggered): events
are coalesced by the queue, may be synthetic after a re-list, and after a crash there are
none at all, so a reconciler that reads the current state from the informer caches and
converges is the only kind that stays correct.

Secondary kinds are watched through mapping functions: a Work change maps to the key of
the ResourceBinding that owns it, a Cluster change to every binding placed on it, and so
on. The queue then guarantees one reconcile per primary key at a time.

A failure is transient unless the reconciler says otherwise: any exception retries the
key with back-off, a `PermanentError` stalls it until its input changes (see
`flotilla.controllers.permanent`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from flotilla.client.base import InvalidError, Object, ResourceClient
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import EventHandlers, Informer, ObjectKey
from flotilla.controllers.metrics import ACTIVE
from flotilla.controllers.permanent import (
    PermanentError,
    Stall,
    clear_stalled,
    condition_type,
    fingerprint,
    has_condition,
    mark_stalled,
    uid_of,
)
from flotilla.controllers.workqueue import QueueShutDown, RateLimiter, WorkQueue

log = logging.getLogger(__name__)

#: Maps a changed object of a watched kind to the primary keys to reconcile.
MapFunc = Callable[[Object], Iterable[ObjectKey]]
#: Finds the object a primary key names (to record a permanent error on it).
LookupFunc = Callable[[ObjectKey], Object | None]


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for besides "done".

    ``requeue_after`` re-checks the key after that many seconds (polling something the
    watch cannot see, e.g. a timeout); ``requeue`` retries with the key's back-off as if
    it had failed, without logging an error.
    """

    requeue_after: float | None = None
    requeue: bool = False


class Reconciler(Protocol):
    async def reconcile(self, key: ObjectKey) -> Result | None:
        """Drive the object at ``key`` towards its desired state.

        Raise to retry with back-off, or raise `PermanentError` when retrying the same
        input cannot help; the object may no longer exist (it was deleted): clean up
        what it owned, then return.
        """
        ...


def own_key(obj: Object) -> Iterable[ObjectKey]:
    """The identity mapping, for the controller's primary kind."""
    return (ObjectKey.of(obj),)


class Controller:
    """One reconciler, its queue, its workers and the informers that feed it."""

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 1,
        rate_limiter: RateLimiter[ObjectKey] | None = None,
        stop_grace: float = 5.0,
        lookup: LookupFunc | None = None,
        client: ResourceClient | None = None,
    ) -> None:
        """``lookup`` finds the object a key names; by default the cache of the first
        informer watched with `own_key`. ``client`` writes the Events and conditions of
        permanent errors; `ControllerManager.add` supplies its own."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.stop_grace = stop_grace
        self.queue: WorkQueue[ObjectKey] = WorkQueue(rate_limiter)
        self.informers: list[Informer] = []
        self.lookup = lookup
        self.client = client
        #: The condition a permanent error sets on the object (``SchedulerStalled``).
        self.stalled_condition = condition_type(name)
        #: Keys given up on after a `PermanentError`, until their object changes.
        self.stalls: dict[ObjectKey, Stall] = {}
        #: Reconcile outcomes, for tests and metrics: successes, transient failures
        #: (retried) and permanent ones (stalled) so far.
        self.reconciled = 0
        self.failed = 0
        self.stalled = 0
        self._events: EventRecorder | None = None

    def __repr__(self) -> str:
        return f"Controller({self.name!r})"

    def watches(self, informer: Informer, map_func: MapFunc = own_key) -> Controller:
        """Reconcile the keys ``map_func`` returns for every change ``informer`` sees.

        Returns the controller, so set-up reads as one chain. On update both the old and
        the new object are mapped, so a label change that moves an object from one
        primary to another wakes both.
        """

        def enqueue(obj: Object) -> None:
            for key in map_func(obj):
                stall = self.stalls.get(key)
                if stall is None or not stall.unchanged(obj):
                    self.queue.add(key)

        def on_update(old: Object, new: Object) -> None:
            enqueue(new)
            if old is not new:
                enqueue(old)

        def on_delete(obj: Object) -> None:
            for key in map_func(obj):
                self.queue.add(key)  # a stalled object's deletion still needs clean-up

        informer.add_handler(EventHandlers(on_add=enqueue, on_update=on_update,
                                           on_delete=on_delete))
        self.informers.append(informer)
        if self.lookup is None and map_func is own_key:
            self.lookup = informer.cache.get
        return self

    async def run(self) -> None:
        """Wait for the informers' first lists, then reconcile until cancelled.

        The informers themselves are run by whoever owns them (`ControllerManager`).
        On cancellation, in-flight reconciles get ``stop_grace`` seconds to finish.
        """
        await asyncio.gather(*(i.wait_synced() for i in self.informers))
        log.info("controller %s: caches synced, starting %d worker(s)", self.name, self.workers)
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                 for i in range(self.workers)]
        try:
            # asyncio.wait, not gather: cancelling us must not cancel the workers
            # mid-reconcile before they had their grace period.
            await asyncio.wait(tasks)
        finally:
            self.queue.shutdown()
            try:
                await asyncio.wait(tasks, timeout=self.stop_grace)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            metrics = ACTIVE.get()
            if metrics is not None:
                metrics.queue_wait.labels(self.name).observe(self.queue.last_wait)
            started = time.monotonic()
            try:
                result = await self._reconcile(key)
            finally:
                self.queue.done(key)
            if metrics is not None:
                metrics.reconcile_latency.labels(self.name).observe(time.monotonic() - started)
                metrics.reconciles.labels(self.name, result).inc()

    async def _reconcile(self, key: ObjectKey) -> str:
        """Reconcile ``key``; returns the outcome for the metrics: success, error,
        stalled."""
        try:
            result = await self.reconciler.reconcile(key)
        except PermanentError as exc:
            await self._stall(key, exc)
            return "stalled"
        except Exception:
            self.failed += 1
            log.exception("controller %s: reconcile %s failed (attempt %d)", self.name, key,
                          self.queue.num_requeues(key) + 1)
            self.queue.add_rate_limited(key)
            return "error"
        self.reconciled += 1
        await self._unstall(key)
        if result is not None and result.requeue:
            self.queue.add_rate_limited(key)
            return "success"
        self.queue.forget(key)
        if result is not None and result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
        return "success"

    async def _stall(self, key: ObjectKey, exc: PermanentError) -> None:
        """Tell the user once per cause, then wait for the object to change."""
        self.stalled += 1
        self.queue.forget(key)
        obj = exc.obj if exc.obj is not None else \
            (self.lookup(key) if self.lookup is not None else None)
        if obj is None:
            log.warning("controller %s: %s: %s (not retried)", self.name, key, exc)
            return
        stall = Stall(exc.reason, exc.message, uid_of(obj), fingerprint(obj))
        previous = self.stalls.get(key)
        self.stalls[key] = stall
        if previous is not None and (previous.reason, previous.message) == \
                (exc.reason, exc.message):
            return
        log.warning("controller %s: %s: %s (not retried until the object changes)",
                    self.name, key, exc)
        if self.client is None:
            return
        if self._events is None:
            self._events = EventRecorder(self.client, self.name)
        await self._events.record(obj, "Warning", exc.reason, exc.message)
        try:
            await mark_stalled(self.client, obj, self.stalled_condition, exc)
        except InvalidError as refused:
            # An object stored before a rule existed cannot take a status write either;
            # the Event is the record, and retrying would fail the same way.
            log.warning("controller %s: %s left without %s: %s", self.name, key,
                        self.stalled_condition, refused)
        except Exception:
            # Unseen is not stalled: retry, and tell the user the next time.
            log.exception("controller %s: could not record %s on %s", self.name,
                          self.stalled_condition, key)
            del self.stalls[key]
            self.queue.add_rate_limited(key)

    async def _unstall(self, key: ObjectKey) -> None:
        """A successful reconcile ends a stall, also one recorded before a restart."""
        self.stalls.pop(key, None)
        obj = self.lookup(key) if self.lookup is not None else None
        if obj is None or self.client is None or \
                not has_condition(obj, self.stalled_condition):
            return
        try:
            await clear_stalled(self.client, obj, self.stalled_condition)
        except Exception:
            log.exception("controller %s: could not clear %s on %s", self.name,
                          self.stalled_condition, key)
