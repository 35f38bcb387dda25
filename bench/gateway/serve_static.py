"""Run the Flotilla gateway from a static model (no API server): for the benchmark.

``python serve_static.py --listen HOST:PORT --backend HOST:PORT ... [--strategy S]
[--reuse-port]`` prints ``READY`` once listening and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

from flotilla.traffic.gateway import Gateway
from flotilla.traffic.model import Endpoint, Policy, Strategy, static_model


async def main(args: argparse.Namespace) -> None:
    endpoints = []
    for i, b in enumerate(args.backend):
        host, _, port = b.rpartition(":")
        endpoints.append(Endpoint(f"c{i}", "r1", "z1", host, int(port)))
    policy = Policy("bench", "default", "bench", (args.host,), strategy=Strategy(args.strategy))
    gw = Gateway(static_model([(policy, endpoints)]), listen=args.listen,
                 reuse_port=args.reuse_port)
    await gw.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    await stop.wait()
    await gw.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--backend", action="append", required=True)
    p.add_argument("--host", default="bench.test")
    p.add_argument("--strategy", default="RoundRobin")
    p.add_argument("--reuse-port", action="store_true")
    uvloop.run(main(p.parse_args()))
