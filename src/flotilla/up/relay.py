"""A delaying relay: WAN latency on a cluster's link where the kernel has no netem.

`flotilla up --netns` puts it on the link of a cluster whose clusters.yaml entry says
``latency: 30ms``: the link is then two veth pairs with a relay namespace between them
(host end -> ``wan0`` | relay | ``wan1`` -> ``eth0`` in the cluster's namespace), and
this process, inside the relay namespace, copies every Ethernet frame from one side to
the other after the delay (one way, so a round trip gains twice the delay). Being a
bridge of raw frames it delays every connection in both directions alike (the gateway's
to the pods, the agent's to the API server, ARP), whatever the port, with nothing to
configure per connection.

Frames are read and written with their virtio-net header (``PACKET_VNET_HDR``), so a
segmentation-offloaded frame larger than the MTU crosses as one and the kernel
segments it on the way out. The delay is read from ``--delay-file`` (seconds), looked at
twice a second, so `flotilla chaos set-latency` changes it on a running link.

Run as ``python -m flotilla.up.relay A B --delay-file F --data-dir D`` (``--data-dir``
names the run, so its teardown knows the process for its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from pathlib import Path

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
MAX_FRAME = 65536 + 64
POLL = 0.5


def read_delay(path: Path, default: float = 0.0) -> float:
    try:
        return max(0.0, float(path.read_text().strip() or 0))
    except (OSError, ValueError):
        return default


def write_delay(path: Path, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seconds:.6f}\n")
    tmp.replace(path)


def _open(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.bind((ifname, 0))
    sock.setblocking(False)
    return sock


class Relay:
    """Frames from each side to the other, ``delay`` seconds later, in order."""

    def __init__(self, a: str, b: str, delay_file: Path) -> None:
        self.sockets = (_open(a), _open(b))
        self.delay_file = delay_file
        self.delay = read_delay(delay_file)

    def _pump(self, loop: asyncio.AbstractEventLoop, src: socket.socket,
              dst: socket.socket) -> None:
        while True:
            try:
                frame, addr = src.recvfrom(MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] == socket.PACKET_OUTGOING:  # our own send on this side
                continue
            loop.call_later(self.delay, self._send, dst, frame)

    @staticmethod
    def _send(dst: socket.socket, frame: bytes) -> None:
        with contextlib.suppress(OSError):  # a link down drops it, as a wire would
            dst.send(frame)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        a, b = self.sockets
        loop.add_reader(a, self._pump, loop, a, b)
        loop.add_reader(b, self._pump, loop, b, a)
        print(f"relaying with {self.delay * 1000:.1f} ms each way", flush=True)
        while True:
            await asyncio.sleep(POLL)
            delay = read_delay(self.delay_file, self.delay)
            if delay != self.delay:
                print(f"delay now {delay * 1000:.1f} ms", flush=True)
                self.delay = delay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flotilla-relay", description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--delay-file", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        relay = Relay(args.a, args.b, args.delay_file)
    except OSError as exc:
        print(f"flotilla relay: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
