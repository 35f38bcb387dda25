"""CPU per proxied request on the gateway's hot path, without the kernel: a client and
pooled upstream connections on stand-in transports, fed the bytes wrk and nginx send.

    .venv/bin/python bench/gateway/hot_path.py [--requests 100000] [--rounds 7] [--profile]

Prints microseconds per request (best round, CPU time) for a repeated request head (the
per-connection memo hits, as with wrk) and for alternating heads (every head parsed,
routed and rewritten). What it leaves out - syscalls, epoll, the kernel's TCP - is what
`bench/gateway_bench.py` measures; this isolates the Python part, for changes that the
noise of a shared machine would hide in a wrk run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

import uvloop

from flotilla.traffic.gateway import Gateway
from flotilla.traffic.model import Endpoint, Policy, static_model
from flotilla.traffic.pool import UpstreamConnection
from flotilla.traffic.proxy import ClientConnection

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
OTHER = b"GET /x HTTP/1.1\r\nHost: bench.test\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 08:00:00 GMT"
            b"\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive"
            b"\r\n\r\nok\n")


class StandInTransport:
    """Takes writes and does nothing: the part of a transport the hot path calls."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: object) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def run(client: ClientConnection, heads: tuple[bytes, ...], n: int) -> None:
    k = len(heads)
    for i in range(n):
        client.data_received(heads[i % k])
        uconn = client.uconn
        assert uconn is not None
        uconn.data_received(RESPONSE)


async def main(args: argparse.Namespace) -> None:
    endpoints = [Endpoint(f"c{i}", "r1", "z1", "127.0.0.1", 20000 + i) for i in range(2)]
    gw = Gateway(static_model([(Policy("bench", "default", "bench", ("bench.test",)),
                                endpoints)]))
    await gw.start()
    loop = asyncio.get_running_loop()
    for rt in gw.state.runtimes.values():
        for u in rt.upstreams:
            conn = UpstreamConnection(u.pool)
            conn.connection_made(StandInTransport())  # type: ignore[arg-type]
            u.pool.release(conn, loop.time())
    try:
        for label, heads in (("repeated head (memo)", (REQUEST,)),
                             ("alternating heads", (REQUEST, OTHER))):
            client = ClientConnection(gw.env)
            out = StandInTransport()
            client.connection_made(out)  # type: ignore[arg-type]
            run(client, heads, 1000)  # warm-up
            if args.profile:
                prof = cProfile.Profile()
                prof.runcall(run, client, heads, args.requests)
                print(label)
                pstats.Stats(prof).sort_stats("tottime").print_stats(15)
                continue
            best = float("inf")
            for _ in range(args.rounds):
                t0 = time.process_time()
                run(client, heads, args.requests)
                best = min(best, (time.process_time() - t0) / args.requests)
            assert out.writes >= args.requests * args.rounds
            print(f"{label:<22} {best * 1e6:6.2f} us/request")
    finally:
        await gw.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    uvloop.run(main(ap.parse_args()))
