"""A client given ``A,B`` that failed over to B returns to A (the preferred, first
server) once A is ready again, after its hold-down, and its watch follows it without
missing or repeating an event: two real `flotilla server` processes on one real etcd.

How the test knows the watch really moved: once the client is back on A, B is frozen
(SIGSTOP: its sockets stay open and answer nothing). A change made then is seen at once
only by a watch on A; one left on B would hang until its idle timeout (30 s here).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.client.failover import Failback
from flotilla.client.http import HttpClient, UnreachableError
from flotilla.resources.kinds import for_api_version
from tests.cli.serverproc import ServerProcess, api_only_args, twin_servers
from tests.etcd_server import EtcdProcess
from tests.helpers import wait_for

pytestmark = pytest.mark.slow
CONFIGMAP = for_api_version("v1", "ConfigMap")
HOLD = 6.0


@pytest.fixture
def pair(tmp_path: Path, etcd_server: EtcdProcess) -> Iterator[tuple[ServerProcess,
                                                                     ServerProcess]]:
    """A and B on one etcd prefix (`twin_servers`)."""
    a, b = twin_servers(tmp_path, "--store", f"{etcd_server.url}/{tmp_path.name}-fb/",
                        *api_only_args())
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        if b.proc is not None:
            os.killpg(b.proc.pid, signal.SIGCONT)
        a.stop()
        b.stop()


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": name}}


async def test_failback_to_the_first_server_after_the_hold_down_keeps_the_watch(
        pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    client = HttpClient([a.url, b.url], a.token, ca=a.ca, failback_after=HOLD,
                        watch_idle_timeout=30, timeout=5)
    seen: list[tuple[str, str]] = []
    bookmarks: list[float] = []
    start = (await client.list(CONFIGMAP, "default")).resource_version

    async def watcher() -> None:
        """A caller of the watch seam: resume from the last resourceVersion, always."""
        rv = start
        for _ in range(200):  # bounded: each round is a stream or a failed connect
            try:
                async for event in client.watch(CONFIGMAP, "default", resource_version=rv):
                    rv = str(event.object["metadata"]["resourceVersion"])
                    if event.type == "BOOKMARK":
                        bookmarks.append(time.monotonic())
                    else:
                        seen.append((event.type, str(event.object["metadata"]["name"])))
            except UnreachableError:
                await asyncio.sleep(0.1)  # back-off before the next server

    async def has(name: str) -> bool:
        return ("ADDED", name) in seen

    task = asyncio.create_task(watcher())
    try:
        await client.create(configmap("cm-1"))
        await wait_for(lambda: has("cm-1"), timeout=10, what="cm-1 watched on A")
        assert client.server == a.url

        assert a.proc is not None
        os.killpg(a.proc.pid, signal.SIGKILL)
        a.proc.wait(10)
        a.proc = None
        # The hold-down starts inside this create, when A refuses: after this instant
        # (a create slowed by a loaded machine must not shorten the bound below).
        switched_at = time.monotonic()
        await client.create(configmap("cm-2"))  # moves the client to B
        assert client.server == b.url
        await wait_for(lambda: has("cm-2"), timeout=15, what="cm-2 watched on B")

        await asyncio.to_thread(a.start)  # A is ready again (same port, same store)
        await client.create(configmap("cm-3"))
        if time.monotonic() - switched_at < HOLD - 0.5:
            assert client.server == b.url, "returned to A before the hold-down"

        async def back() -> bool:
            return client.server == a.url
        await wait_for(back, timeout=HOLD + 20, interval=0.05, what="the client back on A")
        back_at = time.monotonic()
        assert back_at - switched_at >= HOLD, f"back after {back_at - switched_at:.1f}s"
        # The watch on B ends at its next event or BOOKMARK (every 5 s) and resumes on A.
        async def bookmark_since() -> bool:
            return any(t > back_at for t in bookmarks)
        await wait_for(bookmark_since, timeout=15, what="a BOOKMARK after the return")

        assert b.proc is not None
        os.killpg(b.proc.pid, signal.SIGSTOP)
        try:
            await client.create(configmap("cm-4"))
            await wait_for(lambda: has("cm-4"), timeout=5,
                           what="cm-4 watched on A while B is frozen")
        finally:
            os.killpg(b.proc.pid, signal.SIGCONT)
        await wait_for(lambda: has("cm-3"), timeout=5, what="cm-3")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert seen == [("ADDED", f"cm-{n}") for n in (1, 2, 3, 4)], seen
    print(f"back on A {back_at - switched_at:.1f}s after the switch (hold-down {HOLD}s)")


def test_the_hold_down_schedules_one_look_per_period() -> None:
    now = [0.0]
    fb = Failback(10.0, clock=lambda: now[0])
    assert not fb.take_look()  # on the preferred server: nothing to look at
    fb.left_preferred()
    now[0] = 9.9
    assert not fb.take_look()
    now[0] = 10.0
    assert fb.take_look()
    assert not fb.take_look()  # one look per hold-down
    fb.left_preferred()  # moving between the others does not restart it
    now[0] = 20.0
    assert fb.take_look()
    fb.returned()
    now[0] = 100.0
    assert not fb.take_look()
    assert not Failback(None).take_look()
    with pytest.raises(ValueError, match="positive"):
        Failback(0)
