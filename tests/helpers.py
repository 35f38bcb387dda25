"""Small shared test utilities: waiting on conditions, free ports."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: The environment variable naming this pytest run's temporary root (set by
#: tests/conftest.py): the folder every process the run starts works under.
RUN_ROOT_VARIABLE = "TESTS_RUN_ROOT"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_sync(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``condition`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
        last = condition()
    return last


async def wait_for(
    condition: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.02,
    what: str = "",
) -> T:
    """Async twin of `wait_for_sync`: await ``condition()`` until truthy or time is up."""
    deadline = time.monotonic() + timeout
    last = await condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)
        last = await condition()
    return last


def agent_tls_args(data_dir: Path, cluster: str, address: str) -> list[str]:
    """``--ca-file``/``--tls-cert``/``--tls-key`` for an agent started by hand against
    the server of ``data_dir``: the pair `flotilla up` would issue it."""
    from flotilla.pki import PkiLayout
    from flotilla.up.supervisor import agent_tls_argv

    return agent_tls_argv(PkiLayout(data_dir), cluster, address)
