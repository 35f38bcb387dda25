"""A version counter that waiters can block on: "tell me when anything changed".

Many changes between two reads coalesce into one wake-up, so a slow reader (the agent
posting status over HTTP) is never flooded and never misses the latest state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class ChangeFeed:
    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, after: int) -> int:
        """The current version, as soon as it is greater than ``after``."""
        while self.version <= after:
            await self._event.wait()
        return self.version

    async def __aiter__(self) -> AsyncIterator[int]:
        seen = self.version
        yield seen
        while True:
            seen = await self.wait(seen)
            yield seen
