"""API server throughput and watch latency over HTTP, against a real server process.

    .venv/bin/python bench/api_bench.py --objects 2000 --concurrency 16

Starts ``python -m flotilla.api`` on a temp data dir and a free loopback port, then:
creates N ConfigMaps (C concurrent clients), reads them back, updates them, lists them
in pages, and measures how long after each acknowledged update its watch event arrives.
Bounded by --objects and a 120 s deadline; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from flotilla.api.auth import ensure_admin_token
from flotilla.client.http import HttpClient, verify_for
from flotilla.pki import PkiLayout
from flotilla.resources.kinds import by_kind

CM = by_kind("ConfigMap")


def _start(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flotilla.api", "--data-dir", str(data_dir),
         "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(rb"listening on (https?://\S+)", line):
            url = m.group(1).decode()
            # Every HttpClient of this process verifies the server with its CA.
            os.environ["FLOTILLA_CA_FILE"] = str(PkiLayout(data_dir).ca_cert)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1,
                                 verify=verify_for(url, None)).status_code == 200:
                        return proc, url
                except httpx.HTTPError:
                    time.sleep(0.05)
        if not line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("server did not start")


def _obj(i: int, value: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": "bench"}, "data": {"v": value}}


async def _phase(name: str, n: int, concurrency: int, op: object) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t0 = time.perf_counter()
            await op(i)  # type: ignore[operator]
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - t0
    latencies.sort()
    print(f"{name:8} {n / took:8.0f} req/s   p50 {latencies[len(latencies) // 2] * 1e3:6.2f} ms"
          f"   p99 {latencies[int(len(latencies) * 0.99)] * 1e3:6.2f} ms")


async def run(url: str, token: str, n: int, concurrency: int) -> None:
    clients = [HttpClient(url, token) for _ in range(concurrency)]
    try:
        c0 = clients[0]
        await _phase("create", n, concurrency,
                     lambda i: clients[i % concurrency].create(_obj(i, "0")))
        await _phase("get", n, concurrency,
                     lambda i: clients[i % concurrency].get(CM, "bench", f"cm-{i}"))

        start = (await c0.list(CM, "bench", limit=1)).resource_version
        #: name -> when its update was sent: send->event bounds write + delivery latency.
        sent: dict[str, float] = {}
        delays: list[float] = []

        async def watcher() -> None:
            async for ev in c0.watch(CM, "bench", resource_version=start):
                name = ev.object["metadata"]["name"]
                if ev.type == "MODIFIED":
                    delays.append(time.perf_counter() - sent.pop(name))
                    if len(delays) == n:
                        return

        watching = asyncio.create_task(watcher())

        async def update(i: int) -> None:
            sent[f"cm-{i}"] = time.perf_counter()
            await clients[i % concurrency].update(_obj(i, "1"))

        await _phase("update", n, concurrency, update)
        await asyncio.wait_for(watching, 60)
        delays.sort()
        print(f"watch    send->event p50 {delays[len(delays) // 2] * 1e3:6.2f} ms   "
              f"p99 {delays[int(len(delays) * 0.99)] * 1e3:6.2f} ms (delivered {len(delays)})")

        t0 = time.perf_counter()
        token_, pages, items = None, 0, 0
        for _ in range(n):
            page = await c0.list(CM, "bench", limit=500, continue_token=token_)
            pages, items, token_ = pages + 1, items + len(page.items), page.continue_token
            if token_ is None:
                break
        print(f"list     {items} objects in {pages} pages: {time.perf_counter() - t0:.3f} s")
    finally:
        for c in clients:
            await c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--insecure-http", action="store_true",
                        help="serve plain HTTP (to measure what TLS costs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        token = ensure_admin_token(data_dir) or ""
        proc, url = _start(data_dir, *(["--insecure-http"] if args.insecure_http else []))
        try:
            asyncio.run(asyncio.wait_for(run(url, token, args.objects, args.concurrency), 120))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    main()
