"""DNS benchmark: queries/s and p50/p99 latency of a hot name, Flotilla vs references.

One invocation measures, with the same closed-loop UDP load (several clients, each with
one query outstanding, fixed duration, loopback only):

* ``flotilla``          — `DnsServer` on uvloop, a RoundRobin global name (3 clusters);
* ``flotilla-asyncio``  — the same on the default asyncio loop;
* ``dnspython``         — a minimal dnspython responder returning a static answer;
* ``dnslib``            — the same with dnslib (skipped if dnslib is not installed);
* ``handwritten``       — a responder that copies the question and appends prebuilt
                          answer bytes: the ceiling for any Python server here;
* ``bind9``             — Debian's ``named`` (one worker thread, ``-n 1``) serving a static
                          zone (skipped if not installed).

Each server runs in its own process; the load generator runs in this one. It also
times parse + answer + render per query without sockets (``--micro``), which is the
measurement behind choosing dnspython (see docs/components/dns.md).

    .venv/bin/python bench/dns_bench.py [--duration 3] [--clients 8] [--only a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import importlib.util
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

HOT = "shop.global.test"
ADDRESSES = ("127.0.1.1", "127.0.2.1", "127.0.3.1")
TTL = 5


# --------------------------------------------------------------------------- servers


def flotilla_model() -> Any:
    from flotilla.dns.model import build_model

    clusters, slices = [], []
    for i, addr in enumerate(ADDRESSES):
        name = f"c{i}"
        clusters.append({"metadata": {"name": name},
                         "spec": {"region": f"r{i}", "ingressAddress": addr},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        slices.append({"metadata": {"name": f"shop-{name}", "namespace": "default"},
                       "spec": {"service": "shop", "cluster": name,
                                "endpoints": [{"address": addr, "ready": True, "pod": "p",
                                               "ports": [{"name": "http", "port": 80}]}]}})
    policy = {"metadata": {"name": "shop", "namespace": "default"},
              "spec": {"service": "shop", "hosts": [HOT], "strategy": {"type": "RoundRobin"}}}
    return build_model("global.test", clusters=clusters, endpoint_slices=slices,
                       traffic_policies=[policy], ttl=TTL)


async def serve_flotilla(port: int) -> None:
    from flotilla.dns.limits import DnsLimits
    from flotilla.dns.server import DnsServer

    # Response-rate limiting off: the load comes from one address, as BIND's (off by
    # default) does here, and the bench measures answering, not limiting.
    async with DnsServer(flotilla_model(), listen=f"127.0.0.1:{port}",
                         limits=DnsLimits(rrl_rate=0)):
        print("READY", flush=True)
        await asyncio.Event().wait()


def _dnspython_answer() -> Callable[[bytes], bytes | None]:
    import dns.message
    import dns.rrset

    rrset = dns.rrset.from_text(HOT + ".", TTL, "IN", "A", *ADDRESSES)

    def answer(wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.answer.append(rrset)
        return response.to_wire()

    return answer


def _dnslib_answer() -> Callable[[bytes], bytes | None]:
    dnslib = importlib.import_module("dnslib")  # optional, untyped: a reference only
    records = [dnslib.RR(HOT, dnslib.QTYPE.A, rdata=dnslib.A(a), ttl=TTL) for a in ADDRESSES]

    def answer(wire: bytes) -> bytes | None:
        try:
            query = dnslib.DNSRecord.parse(wire)
        except Exception:
            return None
        reply = query.reply()
        for rr in records:
            reply.add_answer(rr)
        return bytes(reply.pack())

    return answer


def _handwritten_answer() -> Callable[[bytes], bytes | None]:
    """Header + question copied, answers as prebuilt bytes with a compression pointer to
    the question name (offset 12). No validation beyond finding the question's end."""
    rdata = b"".join(
        b"\xc0\x0c\x00\x01\x00\x01" + TTL.to_bytes(4, "big") + b"\x00\x04"
        + socket.inet_aton(a) for a in ADDRESSES
    )

    def answer(wire: bytes) -> bytes | None:
        if len(wire) < 17:
            return None
        end = 12
        while end < len(wire) and wire[end]:
            end += wire[end] + 1
        end += 5
        if end > len(wire):
            return None
        flags = (0x8400 | (wire[2] & 0x01) << 8).to_bytes(2, "big")
        header = wire[:2] + flags + b"\x00\x01" + len(ADDRESSES).to_bytes(2, "big") + b"\0" * 4
        return header + wire[12:end] + rdata

    return answer


async def serve_static(port: int, answer: Callable[[bytes], bytes | None]) -> None:
    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            out = answer(data)
            if out is not None:
                self.transport.sendto(out, addr)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", port))
    print("READY", flush=True)
    await asyncio.Event().wait()


STATIC = {"dnspython": _dnspython_answer, "dnslib": _dnslib_answer,
          "handwritten": _handwritten_answer}


def serve(kind: str, port: int) -> None:
    """Entry point of a server subprocess."""
    if kind == "flotilla-asyncio":
        asyncio.run(serve_flotilla(port))
        return
    import uvloop

    if kind == "flotilla":
        uvloop.run(serve_flotilla(port))
    else:
        uvloop.run(serve_static(port, STATIC[kind]()))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def python_server(kind: str) -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        if not ready or b"READY" not in proc.stdout.readline():
            raise RuntimeError(f"{kind} server did not start")
        yield port
    finally:
        _stop(proc)


@contextmanager
def bind9_server(named: str) -> Iterator[int]:
    port = free_udp_port()
    with tempfile.TemporaryDirectory(prefix="flotilla-dns-bench-") as tmp:
        d = Path(tmp)
        zone = "\n".join([
            "$TTL 5",
            "@ IN SOA ns.global.test. hostmaster.global.test. 1 60 10 3600 5",
            "@ IN NS ns.global.test.",
            "ns IN A 127.0.0.1",
            *[f"shop IN A {a}" for a in ADDRESSES],
        ]) + "\n"
        (d / "global.test.zone").write_text(zone)
        (d / "named.conf").write_text(f"""
options {{
  directory "{d}"; pid-file "{d}/named.pid";
  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; querylog no; minimal-responses yes;
}};
zone "global.test" {{ type primary; file "{d}/global.test.zone"; }};
""")
        proc = subprocess.Popen(
            [named, "-g", "-n", "1", "-4", "-c", str(d / "named.conf")],
            stdout=subprocess.DEVNULL, stderr=open(d / "named.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not _answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("named did not start: " + (d / "named.log").read_text())
                time.sleep(0.05)  # readiness poll of a foreign process, with a deadline
            yield port
        finally:
            _stop(proc)


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(query_wire(1), ("127.0.0.1", port))
        try:
            return len(s.recv(512)) > 12
        except OSError:
            return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


# ------------------------------------------------------------------------ load generator


def query_wire(qid: int) -> bytes:
    name = b"".join(len(p).to_bytes(1, "big") + p.encode() for p in HOT.split(".")) + b"\0"
    return qid.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name \
        + b"\x00\x01\x00\x01"


@dataclass
class Result:
    name: str
    queries: int
    seconds: float
    latencies: list[float]
    lost: int
    bad: int

    @property
    def qps(self) -> float:
        return self.queries / self.seconds

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def load(name: str, port: int, clients: int, duration: float, warmup: float) -> Result:
    """Closed loop: each client socket keeps exactly one query outstanding; a query not
    answered in 1 s counts as lost and is resent. Bounded by ``warmup + duration``."""
    body = query_wire(0)[2:]
    socks = []
    for _ in range(clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    ep = select.epoll()
    sent_at = [0.0] * clients
    ids = [0] * clients
    latencies: list[float] = []
    lost = bad = 0
    counter = 0
    clock = time.perf_counter

    def send(i: int) -> None:
        nonlocal counter
        counter = (counter + 1) & 0xFFFF
        ids[i] = counter
        sent_at[i] = clock()
        socks[i].send(counter.to_bytes(2, "big") + body)

    try:
        for i, s in enumerate(socks):
            ep.register(s.fileno(), select.EPOLLIN)
            send(i)
        start = clock()
        measure_from = start + warmup
        end = measure_from + duration
        next_check = start + 0.1
        while True:
            now = clock()
            if now >= end:
                break
            for fd, _ in ep.poll(0.05):
                i = by_fd[fd]
                try:
                    data = socks[i].recv(4096)
                except BlockingIOError:
                    continue
                t = clock()
                if int.from_bytes(data[:2], "big") != ids[i]:
                    continue  # a late answer to a query already counted as lost
                if data[3] & 0x0F or data[7] == 0:
                    bad += 1
                if t >= measure_from:
                    latencies.append(t - sent_at[i])
                send(i)
            if now >= next_check:
                next_check = now + 0.1
                for i in range(clients):
                    if now - sent_at[i] > 1.0:
                        lost += 1
                        send(i)
    finally:
        ep.close()
        for s in socks:
            s.close()
    return Result(name, len(latencies), duration, latencies, lost, bad)


# ------------------------------------------------------------------------------ micro


def micro(iterations: int) -> dict[str, float]:
    """Microseconds per query for parse + answer + render, no sockets."""
    from flotilla.dns.responder import Responder
    from flotilla.dns.zone import compile_zones

    zones = compile_zones(flotilla_model())
    fast = Responder(zones)
    general = Responder(zones, fast_path=False)
    candidates: dict[str, Callable[[bytes], Any]] = {
        "flotilla fast path": lambda w: fast.respond(w, "127.0.0.1", tcp=False),
        "flotilla general": lambda w: general.respond(w, "127.0.0.1", tcp=False),
        "dnspython minimal": _dnspython_answer(),
        "handwritten": _handwritten_answer(),
    }
    with suppress(ImportError):
        candidates["dnslib minimal"] = _dnslib_answer()
    wire = query_wire(4242)
    out: dict[str, float] = {}
    for name, fn in candidates.items():
        for _ in range(200):
            fn(wire)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(iterations):
                fn(wire)
            runs.append((time.perf_counter() - t0) / iterations * 1e6)
        out[name] = min(runs)
    return out


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per target")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--clients", type=int, default=8, help="concurrent UDP clients")
    parser.add_argument("--micro", type=int, default=5000,
                        help="iterations of the no-socket measurement (0 to skip)")
    parser.add_argument("--only", default="", help="comma-separated targets")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, merged")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if not 1 <= args.clients <= 256 or not 0 < args.duration <= 60 or not 1 <= args.rounds <= 5:
        parser.error("--clients must be 1..256, --duration 0..60 s, --rounds 1..5")

    if args.micro:
        print(f"parse + answer + render, no sockets ({args.micro} iterations, best of 3):")
        for name, us in micro(args.micro).items():
            print(f"  {name:<20} {us:8.1f} us/query")
        print()

    targets: list[tuple[str, Callable[[], Any]]] = [
        (k, functools.partial(python_server, k))
        for k in ("flotilla", "flotilla-asyncio", "dnspython", "dnslib", "handwritten")
    ]
    named = shutil.which("named") or ("/usr/sbin/named" if Path("/usr/sbin/named").exists()
                                      else None)
    if named:
        targets.append(("bind9", functools.partial(bind9_server, named)))
    only = {t for t in args.only.split(",") if t}
    if "dnslib" in (only or {"dnslib"}) and importlib.util.find_spec("dnslib") is None:
        print("dnslib not installed: skipped")
        only = (only or {name for name, _ in targets}) - {"dnslib"}
    # Rounds interleave the targets (A B C, A B C) so that a burst of other work on this
    # shared machine does not land on one target only; figures merge all rounds.
    merged: dict[str, Result] = {}
    for _ in range(args.rounds):
        for name, server in targets:
            if only and name not in only:
                continue
            with server() as port:
                r = load(name, port, args.clients, args.duration, args.warmup)
            if name in merged:
                m = merged[name]
                m.queries += r.queries
                m.seconds += r.seconds
                m.latencies += r.latencies
                m.lost += r.lost
                m.bad += r.bad
            else:
                merged[name] = r
    results = list(merged.values())

    print(f"closed-loop UDP load, {args.clients} clients, {args.rounds} x {args.duration:g} s "
          f"per target (+{args.warmup:g} s warm-up each), query {HOT} A, loopback")
    base = next((r for r in results if r.name == "flotilla"), None)
    print(f"{'target':<18}{'q/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}{'bad':>5}"
          f"{'flotilla/x q/s':>16}")
    for r in results:
        ratio = f"{base.qps / r.qps:.2f}" if base and r.qps else "-"
        print(f"{r.name:<18}{r.qps:>10.0f}{r.pct(50) * 1e3:>9.3f}{r.pct(99) * 1e3:>9.3f}"
              f"{r.lost:>6}{r.bad:>5}{ratio:>16}")
    if base and base.latencies:
        print(f"flotilla mean latency {statistics.fmean(base.latencies) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
