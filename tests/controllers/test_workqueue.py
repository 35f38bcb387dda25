"""WorkQueue and Controller behaviour on a real event loop (no server needed)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from flotilla.controllers.runtime import (
    Controller,
    ExponentialBackoff,
    ObjectKey,
    QueueShutDown,
    Result,
    WorkQueue,
)
from tests.helpers import wait_for


async def test_duplicate_adds_are_processed_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0


async def test_key_readded_while_processing_runs_again_once_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a key being processed must not be handed to a second worker"
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_never_processed_concurrently_with_many_workers() -> None:
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    overlaps: list[int] = []
    processed: list[int] = []

    async def worker() -> None:
        while True:
            try:
                k = await q.get()
            except QueueShutDown:
                return
            if k in active:
                overlaps.append(k)
            active.add(k)
            await asyncio.sleep(0)  # let other workers run while we hold the key
            if len(processed) < 200:
                q.add(k)  # re-add while processing
            processed.append(k)
            active.discard(k)
            q.done(k)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    try:
        for k in range(3):
            q.add(k)
        await wait_for(lambda: _true(len(processed) >= 200 and len(q) == 0
                                     and not active), timeout=5)
    finally:
        q.shutdown()
        await asyncio.gather(*workers)
    assert overlaps == []


async def _true(v: bool) -> bool:
    return v


async def test_get_waits_and_shutdown_releases_waiters() -> None:
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"
    blocked = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(blocked, 1)
    q.add("y")  # ignored after shutdown
    assert len(q) == 0


async def test_add_after_delays_and_earliest_wins() -> None:
    q: WorkQueue[str] = WorkQueue()
    t0 = time.monotonic()
    q.add_after("k", 5.0)
    q.add_after("k", 0.05)  # earlier: replaces the 5 s timer
    q.add_after("k", 1.0)  # later than pending: ignored
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 2) == "k"
    elapsed = time.monotonic() - t0
    assert 0.04 <= elapsed < 1.0
    q.done("k")
    q.shutdown()


def test_exponential_backoff_per_key_with_cap() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff(base=0.01, cap=0.1)
    assert [b.when("a") for _ in range(6)] == [0.01, 0.02, 0.04, 0.08, 0.1, 0.1]
    assert b.when("b") == 0.01, "another key starts from the base delay"
    assert b.failures("a") == 6
    b.forget("a")
    assert b.failures("a") == 0
    assert b.when("a") == 0.01
    huge: ExponentialBackoff[str] = ExponentialBackoff(base=1, cap=60)
    for _ in range(2000):
        huge.when("x")
    assert huge.when("x") == 60


class _Flaky:
    """Fails the first ``failures`` attempts of each key, records attempt times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[ObjectKey, list[float]] = {}

    async def reconcile(self, key: ObjectKey) -> Result | None:
        times = self.attempts.setdefault(key, [])
        times.append(time.monotonic())
        if len(times) <= self.failures:
            raise RuntimeError(f"boom {len(times)}")
        return None


async def test_controller_retries_failures_with_growing_backoff() -> None:
    rec = _Flaky(failures=4)
    ctrl = Controller("flaky", rec, rate_limiter=ExponentialBackoff(base=0.02, cap=1.0))
    task = asyncio.create_task(ctrl.run())
    try:
        key = ObjectKey("ns", "a")
        ctrl.queue.add(key)
        await wait_for(lambda: _true(len(rec.attempts.get(key, [])) == 5), timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    t = rec.attempts[key]
    gaps = [b - a for a, b in itertools.pairwise(t)]
    # 0.02, 0.04, 0.08, 0.16: each retry waits at least its back-off.
    for gap, want in zip(gaps, [0.02, 0.04, 0.08, 0.16], strict=True):
        assert gap >= want * 0.9, (gaps, want)
    assert ctrl.failed == 4
    assert ctrl.reconciled == 1
    assert ctrl.queue.num_requeues(key) == 0, "success resets the back-off"


class _Requeuer:
    def __init__(self) -> None:
        self.calls = 0

    async def reconcile(self, key: ObjectKey) -> Result | None:
        self.calls += 1
        return Result(requeue_after=0.01) if self.calls < 3 else None


async def test_result_requeue_after_polls_again() -> None:
    rec = _Requeuer()
    ctrl = Controller("poll", rec)
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.queue.add(ObjectKey("", "c"))
        await wait_for(lambda: _true(rec.calls == 3), timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.done()


class _Slow:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = False

    async def reconcile(self, key: ObjectKey) -> Result | None:
        self.started.set()
        await asyncio.sleep(0.05)
        self.finished = True
        return None


async def test_stop_lets_inflight_reconcile_finish_within_grace() -> None:
    rec = _Slow()
    ctrl = Controller("slow", rec, stop_grace=2.0)
    task = asyncio.create_task(ctrl.run())
    ctrl.queue.add(ObjectKey("", "s"))
    await asyncio.wait_for(rec.started.wait(), 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert rec.finished
