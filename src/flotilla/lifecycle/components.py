"""Small adapters that make a `Component` of what processes already have: a set of
coroutine loops (`Loops`), and something that only needs closing (`OnStop`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

LoopFn = Callable[[], Coroutine[Any, Any, None]]


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


class OnStop:
    """Nothing to start; ``close`` runs at stop (a client, a store opened earlier)."""

    def __init__(self, name: str, close: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._close = close
        self._closed = False

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        return None

    async def stop(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()


class OnStart:
    """A step between components: ``fn`` runs once everything before it is ready
    (announcing a listener, printing the address a test waits for)."""

    def __init__(self, name: str, fn: Callable[[], None]) -> None:
        self.name = name
        self._fn = fn

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        self._fn()

    async def stop(self) -> None:
        return None
