"""Controller-runtime micro-benchmarks (not collected by pytest; run by hand):

    .venv/bin/python -m tests.controllers.bench_runtime [N]

1. WorkQueue: add + get + done of 100,000 distinct keys with 4 workers, and 1,000,000
   de-duplicated adds of 1,000 keys (in-process, one event loop).
2. Informer over HTTP against a real `flotilla server` (temp dir, loopback): time to
   `has_synced` for N ConfigMaps, then N updates from 16 concurrent writers and the
   write -> handler latency (p50/p99) -- which includes the server's durable write.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from flotilla.client.base import Object
from flotilla.client.http import HttpClient
from flotilla.controllers.runtime import EventHandlers, Informer, QueueShutDown, WorkQueue
from flotilla.resources.kinds import by_kind
from tests.cli.serverproc import ServerProcess, api_only_args

CM = by_kind("ConfigMap")


async def bench_queue() -> None:
    q: WorkQueue[int] = WorkQueue()
    n, done = 100_000, 0

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            q.done(key)
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    t = time.perf_counter()
    for i in range(n):
        q.add(i)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    for _ in range(100_000):  # bounded wait for the workers to drain
        if done >= n:
            break
        await asyncio.sleep(0.001)
    print(f"workqueue add+get+done: {n / (time.perf_counter() - t):,.0f} keys/s (4 workers)")
    t = time.perf_counter()
    for i in range(1_000_000):
        q.add(i % 1000)
    print(f"workqueue de-duplicated add: {1_000_000 / (time.perf_counter() - t):,.0f} adds/s "
          f"(queue holds {len(q)} keys)")
    q.shutdown()
    await asyncio.gather(*workers)


async def bench_informer(srv: ServerProcess, n: int) -> None:
    async with HttpClient(srv.url, srv.token, ca=srv.ca) as c:
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem:
                await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": f"cm-{i}", "namespace": "b"},
                                "data": {"v": "0"}})

        await asyncio.gather(*(create(i) for i in range(n)))
        inf = Informer(c, CM)
        latencies: list[float] = []
        sent: dict[str, float] = {}

        def on_update(old: Object, new: Object) -> None:
            latencies.append(time.perf_counter() - sent[new["metadata"]["name"]])

        inf.add_handler(EventHandlers(on_update=on_update))
        t = time.perf_counter()
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.wait_synced(), 60)
            print(f"informer: list of {n} objects until has_synced: "
                  f"{time.perf_counter() - t:.3f} s")

            async def update(i: int) -> None:
                async with sem:
                    obj = await c.get(CM, "b", f"cm-{i}")
                    obj["data"] = {"v": "1"}
                    sent[obj["metadata"]["name"]] = time.perf_counter()
                    await c.update(obj)

            t = time.perf_counter()
            await asyncio.gather(*(update(i) for i in range(n)))
            for _ in range(60_000):  # at most ~60 s
                if len(latencies) >= n:
                    break
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - t
            latencies.sort()
            print(f"informer: {n} updates seen in {elapsed:.2f} s ({n / elapsed:,.0f}/s); "
                  f"write->handler p50 {latencies[n // 2] * 1000:.1f} ms, "
                  f"p99 {latencies[int(n * 0.99)] * 1000:.1f} ms")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    asyncio.run(bench_queue())
    with tempfile.TemporaryDirectory() as d:
        srv = ServerProcess(Path(d) / "state", *api_only_args())
        srv.start()
        try:
            asyncio.run(bench_informer(srv, n))
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
