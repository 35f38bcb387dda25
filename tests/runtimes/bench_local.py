"""Benchmark of the local runtime (not a test: pytest collects only ``test_*.py``).

Measures, on one local cluster: time until N replicas are all ready; median latency of
GET / straight to a pod and through the cluster ingress (a new connection per request,
sequential, a bounded count, loopback only); time to stop all pods gracefully.

    .venv/bin/python -m tests.runtimes.bench_local --replicas 20 --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import tempfile
import time
import uuid
from pathlib import Path

from flotilla.runtimes.local import LocalClusterConfig, LocalRuntime
from flotilla.runtimes.local.users import agent_user
from tests.helpers import free_port
from tests.runtimes.conftest import FAST, deployment, service

ADDRESS = "127.0.77.7"


def median_get_ms(host: str, port: int, requests: int) -> float:
    latencies = []
    for _ in range(requests):
        conn = http.client.HTTPConnection(host, port, timeout=5)
        began = time.perf_counter()
        conn.request("GET", "/")
        conn.getresponse().read()
        latencies.append(time.perf_counter() - began)
        conn.close()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000


async def main(replicas: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        config = LocalClusterConfig.uniform(f"bench{uuid.uuid4().hex[:6]}", Path(state),
                                            cpu="64", address=ADDRESS, timings=FAST,
                                            pod_user=agent_user())
        rt = LocalRuntime(config)
        await rt.start()
        try:
            port = free_port(ADDRESS)
            began = time.monotonic()
            await rt.apply([deployment("web", replicas), service("web", port)])
            async for _ in rt.changes():
                if sum(p.ready for p in rt.pods()) == replicas:
                    break
            ready = time.monotonic() - began
            direct = rt.pods()[0].containers[0].ports["http"]
            direct_ms = await asyncio.to_thread(median_get_ms, "127.0.0.1", direct, requests)
            ingress_ms = await asyncio.to_thread(median_get_ms, ADDRESS, port, requests)
        finally:
            began = time.monotonic()
            await rt.stop(keep_pods=False)
            stopped = time.monotonic() - began
        print(f"replicas={replicas}: all ready in {ready:.2f} s; median GET direct "
              f"{direct_ms:.2f} ms, via ingress {ingress_ms:.2f} ms ({requests} requests "
              f"each); graceful stop {stopped:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.replicas, min(args.requests, 10_000)))
