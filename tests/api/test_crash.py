"""Acknowledged writes survive a SIGKILL of the server at a random moment."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from flotilla.client.base import ApiError
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from tests.api.conftest import ServerProcess, start_server
from tests.api.samples import sample
from tests.helpers import free_port, wait_for

CM = by_kind("ConfigMap")
NS = "crash"


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    kill_after = random.randint(20, 120)
    #: name -> data values that may be stored: the last acknowledged one, plus the one
    #: in flight when the server died (it may or may not have committed).
    allowed: dict[str, set[str]] = {}
    acknowledged: dict[str, str] = {}
    try:
        async with HttpClient(srv.url, srv.token, ca=srv.ca, timeout=5) as client:
            async def writer(w: int) -> None:
                for i in range(2000):  # bounded; the kill comes long before
                    name, value = f"w{w}-{i // 2}", str(i)
                    obj = sample(CM, name, namespace=NS)
                    obj["data"] = {"value": value}
                    allowed.setdefault(name, set()).add(value)
                    try:
                        if i % 2 == 0:
                            await client.create(obj)
                        else:
                            await client.update(obj)
                    except ApiError:
                        return  # the server is gone
                    acknowledged[name] = value
                    allowed[name] = {value}

            async def killer() -> None:
                async def enough() -> bool:
                    return len(acknowledged) >= kill_after
                await wait_for(enough, timeout=30, what=f"{kill_after} acknowledged writes")
                srv.kill()

            await asyncio.wait_for(
                asyncio.gather(killer(), *(writer(w) for w in range(4))), 60)
        assert srv.proc is not None
        assert srv.proc.returncode == -9
        srv.start()
        async with HttpClient(srv.url, srv.token, ca=srv.ca) as client:
            stored = {o["metadata"]["name"]: o["data"]["value"]
                      for o in (await client.list(CM, NS)).items}
        assert len(acknowledged) >= kill_after
        for name in acknowledged:
            assert name in stored, f"acknowledged {name} lost"
            assert stored[name] in allowed[name], (name, stored[name], allowed[name])
    finally:
        srv.stop()
        srv.kill()


async def test_watch_resumes_across_a_server_crash(tmp_path: Path) -> None:
    """A watcher cut by a SIGKILLed server resumes on the restarted one from the last
    resourceVersion it saw: nothing acknowledged is lost, nothing is repeated."""
    srv = ServerProcess(tmp_path / "data", listen=f"127.0.0.1:{free_port()}")
    try:
        srv.start()
        async with HttpClient(srv.url, srv.token, ca=srv.ca, timeout=5) as client:
            start = (await client.list(CM, NS)).resource_version
            acked = {(await client.create(sample(CM, f"before-{i}", namespace=NS)))
                     ["metadata"]["resourceVersion"] for i in range(20)}
            seen: list[str] = []
            rv = start
            stream = client.watch(CM, NS, resource_version=rv)
            try:
                async with asyncio.timeout(10):
                    async for ev in stream:
                        rv = ev.object["metadata"]["resourceVersion"]
                        seen.append(rv)
                        if len(seen) == 10:
                            srv.kill()  # mid-stream; what is buffered may still arrive
            except ApiError:
                pass  # the broken connection
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            srv.start()
            for i in range(20):
                obj = await client.create(sample(CM, f"after-{i}", namespace=NS))
                acked.add(obj["metadata"]["resourceVersion"])
            stream = client.watch(CM, NS, resource_version=rv)
            try:
                async with asyncio.timeout(10):
                    async for ev in stream:
                        if ev.type != "BOOKMARK":
                            seen.append(ev.object["metadata"]["resourceVersion"])
                        if set(seen) >= acked:
                            break
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        assert len(seen) == len(set(seen)), "an event was delivered twice"
        assert set(seen) == acked
    finally:
        srv.stop()
        srv.kill()
