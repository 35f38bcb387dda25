"""The minimum send rate: a client draining a large response slower than the floor is
cut with a reset, while a slow client above the floor is not -- over real sockets with
small receive buffers, read at a fixed pace (`flotilla.traffic.drain`).

Scaled down from the defaults (1 KiB/s over 30 s behind) so a run takes seconds: a
floor of 64 KiB/s over 3 s behind, a write timeout of 5 s (no byte taken). The reader
under the floor takes 16 KiB/s: it makes progress all the time, so the write timeout
alone never cuts it (the code before the minimum rate served it for as long as the
response lasted). The first window may pass on what the kernel's send buffer swallowed
(megabytes on loopback); the next one cuts.
"""

from __future__ import annotations

import asyncio
import socket
import time

from flotilla.traffic.drain import DrainWatch
from flotilla.traffic.gateway import GatewayOptions

from .conftest import HOST, StartBackend, model_for
from .test_abuse import sample

RCVBUF = 65536
SIZE = 64 << 20
FLOOR = 64 * 1024
WINDOW = 3.0


async def paced(sock: socket.socket, rate: float, seconds: float) -> tuple[str, int, float]:
    """Read at most ``rate`` bytes a second for ``seconds``: how it ended ("reset",
    "eof" or "alive"), the bytes read, and when (seconds from the start)."""
    started = time.monotonic()
    got = 0
    while (elapsed := time.monotonic() - started) < seconds:
        allowed = int(rate * elapsed) - got
        if allowed > 0:
            try:
                data = sock.recv(min(allowed, 1 << 16))
            except BlockingIOError:
                data = None
            except ConnectionResetError:
                return "reset", got, elapsed
            if data == b"":
                return "eof", got, elapsed
            got += len(data or b"")
        await asyncio.sleep(0.02)
    return "alive", got, time.monotonic() - started


async def open_reader(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET /?size={SIZE} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
                            .encode())
    return sock


async def test_a_reader_under_the_floor_is_reset_one_above_it_is_served(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(
        write_timeout=5.0, min_send_rate=FLOOR, min_send_rate_window=WINDOW))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    slow, steady = await open_reader(gw.port), await open_reader(gw.port)
    try:
        (how, got, at), (s_how, s_got, _) = await asyncio.gather(
            paced(slow, FLOOR / 4, 20), paced(steady, FLOOR * 4, 12))
    finally:
        slow.close()
        steady.close()
    print(f"under the floor: {how} after {at:.1f}s and {got} bytes; above it: {s_how}, "
          f"{s_got} bytes")
    assert how == "reset", f"the reader under the floor was not cut ({how}, {got} bytes)"
    assert at >= WINDOW  # not before a window spent behind
    assert sample(gw, "flotilla_gateway_client_timeouts_total", kind="min-rate") == 1
    assert sample(gw, "flotilla_gateway_client_timeouts_total", kind="write") == 0
    # the steady reader was behind the whole time (64 MiB at 256 KiB/s) and kept going
    assert s_how == "alive", (s_how, s_got)
    assert s_got >= FLOOR * 4 * 12 * 0.8
    assert u.pool.opened <= 1  # the cut client's upstream connection was closed


def test_the_rules_judge_only_time_spent_behind() -> None:
    watch = DrainWatch(write_timeout=5.0, min_rate=100.0, window=10.0)
    assert watch.deadline() == float("inf")  # keeping up: nothing to judge
    watch.fell_behind(0.0, 0)
    assert watch.deadline() == 5.0
    assert watch.check(5.0, 10) is None  # a byte taken: the write timeout restarts
    watch.caught_up(6.0, 200)  # 6 s behind, 200 bytes
    # a long stretch keeping up (a slow upstream) counts for nothing
    watch.fell_behind(100.0, 5000)
    assert watch.deadline() == 104.0  # the window ends after 4 more seconds behind
    assert watch.check(104.0, 5100) == "min-rate"  # 300 bytes in 10 s behind < 100/s
    fast = DrainWatch(write_timeout=5.0, min_rate=100.0, window=10.0)
    fast.fell_behind(0.0, 0)
    assert fast.check(5.0, 600) is None
    assert fast.check(10.0, 1200) is None  # 120/s: a new window starts
    assert fast.deadline() == 15.0
    assert fast.check(15.0, 1200) == "write"  # then nothing at all for 5 s
    off = DrainWatch(write_timeout=5.0, min_rate=0.0, window=10.0)
    off.fell_behind(0.0, 0)
    assert off.check(5.0, 1) is None
    assert off.check(10.0, 2) is None
    assert off.deadline() == 15.0
