"""Socket rules every serving process shares (the gateway's HTTP and the DNS's TCP).

Here, below both, because `flotilla.traffic` and `flotilla.dns` may not import each
other and both cut peers that stop reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset_on_close(transport: asyncio.BaseTransport) -> None:
    """Make the coming close send a RST and drop what the kernel still holds to send.

    Why: a plain close (``abort`` included) of a socket whose send queue is full leaves
    the kernel an orphan that keeps trickling that queue (up to ``tcp_wmem``'s maximum,
    megabytes on loopback) to a client that reads a byte now and then, for as long as
    it keeps reading: the client is never cut and the memory stays pinned. SO_LINGER
    with a zero timeout is nginx's ``reset_timedout_connection``.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing is left to drop
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel still holds to send on the transport's socket (sent but not yet
    acknowledged by the peer, or not sent at all): ``SIOCOUTQ``; 0 when unknown.

    Why: what a peer really took is what left the kernel, not what left our buffer.
    Loopback's send buffer grows to megabytes and the socket reports writable again only
    once a good part of it drained, so measured from our buffer alone a peer reading
    steadily looks stalled for seconds at a time.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):  # closed, or not a TCP socket
        return 0
    return int(struct.unpack("i", raw)[0])
