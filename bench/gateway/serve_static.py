"""Run the Flotilla gateway from a static model (no API server): for the benchmark.

``python serve_static.py --listen HOST:PORT --backend HOST:PORT ... [--strategy S]
[--reuse-port] [--tls-listen HOST:PORT --cert PEM --key PEM] [--admin-listen HOST:PORT]
[--header-timeout S] [--write-timeout S] [--access-log PATH]`` prints ``READY`` once
listening and serves until SIGTERM/SIGINT. With ``--tls-listen`` the pair serves every
name (the ``*`` host), as a policy's Secret would. Other limits are `GatewayOptions`'
defaults, and the open-file limit is raised for them as ``flotilla gateway`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import uvloop

from flotilla.traffic.gateway import Gateway, GatewayOptions, raise_fd_limit
from flotilla.traffic.model import CertSource, Endpoint, Policy, Strategy, static_model


async def main(args: argparse.Namespace, certificates: dict[str, CertSource]) -> None:
    endpoints = []
    for i, b in enumerate(args.backend):
        host, _, port = b.rpartition(":")
        endpoints.append(Endpoint(f"c{i}", "r1", "z1", host, int(port)))
    policy = Policy("bench", "default", "bench", (args.host,), strategy=Strategy(args.strategy))
    extra = {"access_log": args.access_log} if args.access_log else {}
    options = GatewayOptions(header_timeout=args.header_timeout,
                             write_timeout=args.write_timeout, **extra)
    raise_fd_limit(options)
    gw = Gateway(static_model([(policy, endpoints)], certificates), listen=args.listen,
                 reuse_port=args.reuse_port, tls_listen=args.tls_listen,
                 admin_listen=args.admin_listen, options=options)
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
    p.add_argument("--tls-listen")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--admin-listen")
    p.add_argument("--access-log", help="write the access log here (default: none)")
    p.add_argument("--header-timeout", type=float, default=GatewayOptions().header_timeout)
    p.add_argument("--write-timeout", type=float, default=GatewayOptions().write_timeout)
    args = p.parse_args()
    certificates = {}
    if args.tls_listen:
        certificates["*"] = CertSource("default/bench-tls", Path(args.cert).read_bytes(),
                                       Path(args.key).read_bytes())
    uvloop.run(main(args, certificates))
