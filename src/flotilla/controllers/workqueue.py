"""A de-duplicating work queue with delayed and rate-limited re-adds.

Controllers are level-triggered: a key in the queue means "look at this object again",
not "this change happened". So the queue holds each key at most once, however many
events arrive for it, and a key is never handed to two workers at the same time: a key
re-added while a worker processes it is parked ("dirty") and queued again once, when the
worker calls `done`. This is the contract of client-go's workqueue, which every
Kubernetes controller relies on, kept because reconcilers are much simpler when they can
assume they never race themselves.

Everything here runs on one event loop and is not thread-safe; `add` is a plain
function so informer event handlers can call it without awaiting.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class QueueShutDown(Exception):
    """`WorkQueue.get` after `shutdown`: the worker should return."""


class RateLimiter(Protocol[K_contra]):
    """How long to wait before retrying a key that failed, given its history."""

    def when(self, key: K_contra) -> float:
        """Record one more failure of ``key`` and return the delay before its retry."""
        ...

    def forget(self, key: K_contra) -> None:
        """``key`` succeeded: its next failure starts from the base delay again."""
        ...

    def failures(self, key: K_contra) -> int: ...


@dataclass
class ExponentialBackoff(Generic[K]):
    """Per-key exponential back-off: ``base * 2**failures``, capped at ``cap`` seconds.

    Per key, so that one object that keeps failing (a bad spec) slows down only its own
    retries, not its neighbours'. The failure table is bounded (least recently failed
    keys are dropped first) so a controller churning through many names cannot grow it
    without limit; a dropped key simply restarts at the base delay.
    """

    base: float = 0.005
    cap: float = 300.0
    max_keys: int = 65536

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")
        self._failures: OrderedDict[K, int] = OrderedDict()

    def when(self, key: K) -> float:
        n = self._failures.pop(key, 0)
        self._failures[key] = n + 1
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        # 2**n overflows float for huge n; the cap is reached long before n = 64.
        return min(self.base * 2.0 ** min(n, 64), self.cap)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """FIFO of distinct keys; a key is processed by at most one worker at a time.

    Worker loop::

        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            try:
                ...  # reconcile key
            finally:
                queue.done(key)
    """

    def __init__(self, rate_limiter: RateLimiter[K] | None = None) -> None:
        self._queue: deque[K] = deque()
        #: Keys waiting to be processed (queued, or re-added while processing).
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Pending `add_after` timers, and when each fires (loop time).
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False
        #: when each waiting key was added (loop time), and how long the key `get`
        #: handed out last had waited: the queue latency in the controller metrics
        self._added: dict[K, float] = {}
        self.last_wait = 0.0
        self.rate_limiter: RateLimiter[K] = rate_limiter or ExponentialBackoff()

    def __len__(self) -> int:
        """Keys ready to be handed out (not those processing or waiting on a timer)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        """Ask for ``key`` to be processed; a no-op if it already waits to be."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._added[key] = asyncio.get_running_loop().time()
        if key in self._processing:
            return  # `done` queues it again
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending add for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def add_rate_limited(self, key: K) -> None:
        """Re-add ``key`` after its back-off delay: the retry path after a failure."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """``key`` was processed successfully: reset its back-off."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.failures(key)

    async def get(self) -> K:
        """The next key; waits while the queue is empty. Raises `QueueShutDown`."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # If we were woken and then cancelled, pass the wake-up on so the key
                # that woke us is not stranded.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        added = self._added.pop(key, None)
        self.last_wait = asyncio.get_running_loop().time() - added if added else 0.0
        return key

    def done(self, key: K) -> None:
        """The worker finished with ``key``; queue it again if it was re-added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Stop handing out keys: waiting and future `get` calls raise `QueueShutDown`.

        Keys already handed out can still be marked `done`; pending timers are dropped.
        """
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._added.clear()
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
