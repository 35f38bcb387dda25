"""A client that keeps reading, but a byte at a time, over a real socket with a small
receive buffer, of a response far larger than every buffer on the way (issue 14).

The write timeout fires on such a reader (the gateway's own buffer stays above its
low-water mark, so a trickle is no progress). What the bench showed as "never cut" was
the kernel: a plain close of a socket with a full send queue leaves an orphan that goes
on feeding the reader megabytes, a byte at a time, for as long as it reads. The cut
must be a reset: after it, the reader gets at most what was already in its own receive
buffer, then ECONNRESET.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from flotilla.traffic.gateway import GatewayOptions
from tests.helpers import wait_for

from .conftest import HOST, StartBackend, model_for
from .test_abuse import sample

RCVBUF = 4096
SIZE = 64 << 20


async def test_dripping_reader_of_a_large_response_is_reset_and_frees_its_upstream(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(write_timeout=1.0))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", gw.port))
    try:
        await loop.sock_sendall(sock, f"GET /?size={SIZE} HTTP/1.1\r\n"
                                f"Host: {HOST}\r\n\r\n".encode())
        started = time.monotonic()
        dripped = 0
        # a byte every 50 ms (some progress all the time) until the gateway cuts it
        while sample(gw, "flotilla_gateway_client_timeouts_total", kind="write") < 1:
            assert time.monotonic() - started < 30, "the dripping reader was never cut"
            await asyncio.sleep(0.05)
            with contextlib.suppress(BlockingIOError):
                dripped += len(sock.recv(1))
        assert time.monotonic() - started >= 0.9  # not before the write timeout

        async def freed() -> bool:
            return u.pool.opened == 0 and u.inflight == 0

        await wait_for(freed, timeout=10, what="the upstream connection closed")
        # Now read as fast as we can: a reset ends it after what our own receive buffer
        # held; an orphaned send queue would stream on (megabytes) and end in a FIN.
        after, ended_by = 0, "nothing"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 10)
            except ConnectionResetError:
                ended_by = "reset"
                break
            if not data:
                ended_by = "eof"
                break
            after += len(data)
        assert (ended_by, after < 16 * RCVBUF) == ("reset", True), (
            f"after the cut the client got {after} more bytes and then {ended_by} "
            f"(dripped {dripped} before)")
    finally:
        sock.close()
