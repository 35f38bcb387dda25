"""Small adapters that make a `Component` of what processes already have: coroutine
loops (`Loops`), and a pair of start/stop callables (`Step`: a claim and its release, a
client to close, a line to print once the listeners are up)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

LoopFn = Callable[[], Coroutine[Any, Any, None]]
StepFn = Callable[[], Awaitable[None] | None]


class Loops:
    """Long-running coroutines spawned into the process's TaskGroup by `start`.

    `stop` cancels them and waits for them, so a later-started component is gone
    before an earlier one (what the loops read, a store, a client) closes. A loop that
    returns on its own is fine; one that raises stops the process.
    """

    def __init__(self, name: str, loops: Sequence[tuple[str, LoopFn]]) -> None:
        self.name = name
        self._loops = list(loops)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        for name, fn in self._loops:
            self._tasks.append(tasks.create_task(fn(), name=f"{self.name}: {name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # Its error, if any, already reached the TaskGroup: nothing to report twice.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Step:
    """``start`` (returns when done) and ``stop``, plain or async, either optional.
    ``stop`` runs once, and only if there is no ``start`` or ``start`` was entered."""

    def __init__(self, name: str, *, start: StepFn | None = None,
                 stop: StepFn | None = None) -> None:
        self.name = name
        self._start = start
        self._stop = stop
        self._entered = start is None

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        self._entered = True
        if self._start is not None:
            await _call(self._start)

    async def stop(self) -> None:
        if self._entered and self._stop is not None:
            self._entered = False
            await _call(self._stop)


async def _call(fn: StepFn) -> None:
    result = fn()
    if inspect.isawaitable(result):
        await result
