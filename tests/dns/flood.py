"""A bounded UDP query flood from one source address, run as its own process so the
server under test gets the CPU a real attacker's host would not share.

    python -m tests.dns.flood PORT SECONDS RATE NAME

Prints "LIMITED" at the first TC=1 reply (the limiter has started), then, at the end or
on SIGTERM, a JSON line with what came back.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time

import dns.message


def main() -> None:
    port, seconds, rate, name = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), \
        sys.argv[4]
    wire = bytearray(dns.message.make_query(name, "A").to_wire())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sent = answered = truncated = 0
    limited = False
    begin = time.monotonic()
    limit = int(seconds * rate)  # bounded in count and in time
    while sent < limit and time.monotonic() - begin < seconds + 1 and not stop:
        due = begin + sent / rate
        while time.monotonic() < due:
            pass
        wire[0:2] = (sent & 0xFFFF).to_bytes(2, "big")
        try:
            sock.sendto(wire, ("127.0.0.1", port))
            sent += 1
        except BlockingIOError:
            continue
        while True:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                break
            if reply[2] & 0x02:
                truncated += 1
                if not limited:
                    limited = True
                    print("LIMITED", flush=True)
            else:
                answered += 1
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # the last replies in flight
        try:
            reply = sock.recv(4096)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        truncated += bool(reply[2] & 0x02)
        answered += not reply[2] & 0x02
    elapsed = time.monotonic() - begin
    print(json.dumps({"sent": sent, "answered": answered, "truncated": truncated,
                      "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    main()
