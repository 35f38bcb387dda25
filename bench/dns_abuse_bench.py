"""DNS abuse benchmark: a 20,000 q/s flood from one source, and 600 idle TCP clients,
against Flotilla's DNS server and BIND 9 with response-rate limiting, in one invocation.

Per round and target (targets interleaved, medians over rounds):

* ``unloaded`` — a *neighbour* client (``--other``, default 127.0.1.3: another /24 than
  the flood, since both servers limit per /24 by default) sends open-loop UDP queries
  (``--probe-rate`` per second) to an idle server: answered share, p50/p99 latency;
* ``flood``    — one or more flooder processes send ``--flood-rate`` queries/s from one
  address (``--flood-source``, default 127.0.0.2) while the neighbour probes again: what
  the flood got back (full answers, TC=1, nothing: dropped by RRL or lost) and whether
  the neighbour was still answered, and how fast;
* ``tcp-idle`` — ``--idle`` TCP connections are opened from 30 addresses (127.0.3.x, 20
  or so each: under a per-source cap, so the *total* cap is what they exhaust) and held
  idle; then the neighbour asks over fresh TCP connections and over UDP.

Servers: ``flotilla`` = `DnsServer` on uvloop with the default `DnsLimits` (RRL 1,000/s
per /24, burst 2,000; TCP 512 in all, 32 per source, oldest idle evicted at a cap), as
``flotilla dns`` runs it; ``bind9`` = Debian's ``named -n 1`` (one worker) serving the same
names with ``rate-limit { responses-per-second 1000; window 2; }`` (slip 2: every second
limited answer is TC=1, the rest dropped) and its default ``tcp-clients 150``.

The flooder is this script in ``--flood`` mode (Python, batched sends, non-blocking
drain of replies) or ``dnsperf`` (``--flooder dnsperf``: C, reports only replies, not
TC). Its achieved rate is printed: the figures mean little if it did not reach the rate.
Every loop is bounded in count and time.

    .venv/bin/python bench/dns_abuse_bench.py [--rounds 3] [--flood-rate 20000]
        [--flood-procs 2] [--seconds 4] [--only flotilla,bind9]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dns_bench import ADDRESSES, HOT, _answers, _stop, flotilla_model, free_udp_port  # noqa: E402

IDLE_SOURCES = [f"127.0.3.{i}" for i in range(1, 31)]


# --------------------------------------------------------------------------- servers


async def _serve_flotilla(port: int) -> None:
    from flotilla.dns.server import DnsServer

    async with DnsServer(flotilla_model(), listen=f"127.0.0.1:{port}"):
        print("READY", flush=True)
        await asyncio.Event().wait()


@contextlib.contextmanager
def flotilla_server() -> Iterator[tuple[int, int]]:
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready or b"READY" not in proc.stdout.readline():
            raise RuntimeError("flotilla server did not start")
        yield port, proc.pid
    finally:
        _stop(proc)


@contextlib.contextmanager
def bind9_server(named: str) -> Iterator[tuple[int, int]]:
    port = free_udp_port()
    with tempfile.TemporaryDirectory(prefix="flotilla-dns-abuse-") as tmp:
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
  rate-limit {{ responses-per-second 1000; window 2; }};
}};
zone "global.test" {{ type primary; file "{d}/global.test.zone"; }};
""")
        proc = subprocess.Popen(
            [named, "-g", "-n", "1", "-4", "-c", str(d / "named.conf")],
            stdout=subprocess.DEVNULL, stderr=open(d / "named.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not _answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("named did not start: " + (d / "named.log").read_text())
                time.sleep(0.05)  # readiness poll of a foreign process, with a deadline
            yield port, proc.pid
        finally:
            _stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ wire


def _qname() -> bytes:
    return b"".join(len(p).to_bytes(1, "big") + p.encode() for p in HOT.split(".")) + b"\0"


QUESTION = _qname() + b"\x00\x01\x00\x01"


def query(qid: int) -> bytes:
    return qid.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + QUESTION


def kind_of(reply: bytes) -> str:
    """'answer' (NOERROR with records), 'tc' (truncated), or 'bad'."""
    if len(reply) < 12:
        return "bad"
    if reply[2] & 0x02:
        return "tc"
    if reply[3] & 0x0F == 0 and int.from_bytes(reply[6:8], "big") > 0:
        return "answer"
    return "bad"


# --------------------------------------------------------------------------- flooder


def flood(port: int, source: str, rate: float, seconds: float) -> None:
    """Entry point of a flooder process: ``rate`` q/s for ``seconds`` from ``source``,
    sent in batches each millisecond or so; at most ``rate * seconds`` queries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    body = query(0)[2:]
    limit = int(rate * seconds)
    sent = full = tc = bad = 0
    send, recv = sock.send, sock.recv
    print("READY", flush=True)
    begin = time.monotonic()
    end = begin + seconds
    while sent < limit:
        now = time.monotonic()
        if now >= end + 0.5:
            break
        due = min(limit, int((now - begin) * rate)) - sent
        for _ in range(min(due, 512)):
            try:
                send((sent & 0xFFFF).to_bytes(2, "big") + body)
            except (BlockingIOError, ConnectionRefusedError):
                break
            sent += 1
        for _ in range(4096):
            try:
                reply = recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                break
            k = kind_of(reply)
            full += k == "answer"
            tc += k == "tc"
            bad += k == "bad"
        time.sleep(0.0005)
    elapsed = time.monotonic() - begin
    drain_until = time.monotonic() + 1.0
    while time.monotonic() < drain_until:
        try:
            reply = recv(4096)
        except (BlockingIOError, ConnectionRefusedError):
            time.sleep(0.01)
            continue
        k = kind_of(reply)
        full += k == "answer"
        tc += k == "tc"
        bad += k == "bad"
    print(json.dumps({"sent": sent, "answer": full, "tc": tc, "bad": bad,
                      "seconds": elapsed}), flush=True)


@contextlib.contextmanager
def flooders(port: int, source: str, rate: float, seconds: float, procs: int,
             tool: str) -> Iterator[Callable[[], dict[str, float]]]:
    """Start the flood; yields a function that waits for its end and sums the figures."""
    if tool == "dnsperf":
        data = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)  # noqa: SIM115
        data.write(f"{HOT} A\n")
        data.close()
        cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-a", source, "-d", data.name,
               "-Q", str(int(rate)), "-l", str(seconds), "-q", "2000", "-t", "1",
               "-c", "4", "-T", str(procs)]
        started = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)]
    else:
        cmd = [sys.executable, __file__, "--flood", "--port", str(port), "--source", source,
               "--rate", str(rate / procs), "--seconds", str(seconds)]
        started = [subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)
                   for _ in range(procs)]
        for p in started:
            assert p.stdout is not None
            ready, _, _ = select.select([p.stdout], [], [], 30)
            if not ready or b"READY" not in p.stdout.readline():
                raise RuntimeError("flooder did not start")

    def result() -> dict[str, float]:
        total: dict[str, float] = {"sent": 0, "answer": 0, "tc": 0, "bad": 0, "seconds": 0}
        for p in started:
            out, _ = p.communicate(timeout=seconds + 30)
            text = out.decode()
            if tool == "dnsperf":
                sent = int(re.search(r"Queries sent:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
                done = int(re.search(r"Queries completed:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
                secs = float(re.search(r"Run time \(s\):\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
                total.update(sent=sent, answer=done, tc=-1, seconds=secs)
            else:
                figures = json.loads(text.strip().splitlines()[-1])
                for k in ("sent", "answer", "tc", "bad"):
                    total[k] += figures[k]
                total["seconds"] = max(total["seconds"], figures["seconds"])
        return total

    try:
        yield result
    finally:
        for p in started:
            _stop(p)
        if tool == "dnsperf":
            os.unlink(data.name)


# ----------------------------------------------------------------------------- probes


@dataclass
class Probe:
    sent: int = 0
    answered: int = 0
    tc: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1e3


def probe_udp(port: int, source: str, rate: float, seconds: float,
              timeout: float = 1.0) -> Probe:
    """Open loop: one query every 1/rate s for ``seconds``; a query unanswered after
    ``timeout`` is lost. At most ``rate * seconds`` queries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    result = Probe()
    pending: dict[int, float] = {}
    count = int(rate * seconds)
    ids = random.sample(range(65536), count)
    clock = time.perf_counter
    begin = clock()
    try:
        while True:
            now = clock()
            if result.sent < count and now >= begin + result.sent / rate:
                qid = ids[result.sent]
                pending[qid] = now
                sock.send(query(qid))
                result.sent += 1
            if result.sent >= count and not pending:
                break
            if now > begin + seconds + timeout + 1:
                break
            wait = max(0.0, min(0.005, begin + result.sent / rate - clock()))
            readable, _, _ = select.select([sock], [], [], wait)
            while readable:
                try:
                    reply = sock.recv(4096)
                except BlockingIOError:
                    break
                t = clock()
                sent_at = pending.pop(int.from_bytes(reply[:2], "big"), None)
                if sent_at is None:
                    continue
                k = kind_of(reply)
                result.tc += k == "tc"
                if k == "answer":
                    result.answered += 1
                    result.latencies.append(t - sent_at)
            now = clock()
            for qid, at in list(pending.items()):
                if now - at > timeout:
                    del pending[qid]
                    result.lost += 1
    finally:
        sock.close()
    result.lost += len(pending)
    return result


def probe_tcp(port: int, source: str, count: int, timeout: float = 3.0) -> Probe:
    """``count`` queries, each over a new TCP connection (connect + ask + answer)."""
    result = Probe()
    for _ in range(count):
        result.sent += 1
        began = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(source, 0)) as s:
                wire = query(random.randrange(65536))
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                head = _recv_exactly(s, 2)
                reply = _recv_exactly(s, int.from_bytes(head, "big"))
        except OSError:
            result.lost += 1
            continue
        if kind_of(reply) == "answer":
            result.answered += 1
            result.latencies.append(time.perf_counter() - began)
    return result


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def hold_idle(port: int, count: int, timeout: float = 3.0) -> list[socket.socket]:
    """``count`` idle TCP connections spread over `IDLE_SOURCES`, connected in parallel
    (non-blocking) and kept if the handshake completed within ``timeout`` s: a server
    whose listen queue is full makes the kernel drop SYNs, and those are not waited for
    one by one."""
    pending: dict[int, socket.socket] = {}
    for i in range(count):
        s = socket.socket()
        s.bind((IDLE_SOURCES[i % len(IDLE_SOURCES)], 0))
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        pending[s.fileno()] = s
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    held = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            s = pending.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                held.append(s)
            else:
                s.close()
    for s in pending.values():
        s.close()
    return held


# ------------------------------------------------------------------------------- main


def one_round(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["unloaded"] = probe_udp(port, args.other, args.probe_rate, args.seconds)
    warm = 1.0
    with flooders(port, args.flood_source, args.flood_rate, args.seconds + warm + 0.5,
                  args.flood_procs, args.flooder) as flood_result:
        time.sleep(warm)  # let the flood pass its burst before the neighbour probes
        cpu, began = cpu_seconds(pid), time.monotonic()
        out["flood_probe"] = probe_udp(port, args.other, args.probe_rate, args.seconds)
        out["flood_cpu"] = (cpu_seconds(pid) - cpu) / (time.monotonic() - began)
        out["flood"] = flood_result()
    held = hold_idle(port, args.idle)
    try:
        out["idle_held"] = len(held)
        out["tcp"] = probe_tcp(port, args.other, args.tcp_probes)
        out["idle_udp"] = probe_udp(port, args.other, args.probe_rate, 1.0)
        alive = 0
        for s in held:  # how many idle connections the server still has open
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        out["idle_alive"] = alive
    finally:
        for s in held:
            s.close()
    return out


def _med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def report(name: str, rounds: list[dict[str, Any]]) -> None:
    def probe_line(label: str, key: str) -> None:
        ps: list[Probe] = [r[key] for r in rounds]
        print(f"  {label:<34} answered {', '.join(f'{p.answered}/{p.sent}' for p in ps):<24}"
              f" tc {sum(p.tc for p in ps):>4} lost {sum(p.lost for p in ps):>4}"
              f"  p50 {_med([p.pct(50) for p in ps]):7.3f} ms"
              f"  p99 {_med([p.pct(99) for p in ps]):7.3f} ms")

    print(f"{name}:")
    probe_line("neighbour UDP, unloaded", "unloaded")
    probe_line("neighbour UDP, during the flood", "flood_probe")
    fl = [r["flood"] for r in rounds]
    print(f"  {'flood':<34} rate {_med([f['sent'] / f['seconds'] for f in fl]):8.0f} q/s"
          f"  full answers {_med([f['answer'] / f['sent'] for f in fl]):.3f}"
          f"  TC {_med([f['tc'] / f['sent'] for f in fl]):.3f}"
          f"  nothing {_med([1 - (f['answer'] + max(f['tc'], 0)) / f['sent'] for f in fl]):.3f}"
          f"  (shares of sent, median of rounds)")
    print(f"  {'server CPU during the flood':<34} "
          f"{_med([r['flood_cpu'] for r in rounds]) * 100:.0f} % of one core")
    print(f"  {'idle TCP held / still open':<34} "
          f"{', '.join(str(r['idle_held']) for r in rounds)} / "
          f"{', '.join(str(r['idle_alive']) for r in rounds)}")
    probe_line("neighbour TCP (new conn), idle held", "tcp")
    probe_line("neighbour UDP, idle held", "idle_udp")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: .venv/bin/python bench/dns_abuse_bench.py --rounds 3 "
               "--flood-procs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=4.0, help="probe window per phase")
    parser.add_argument("--flood-rate", type=float, default=20000.0, help="flood q/s in all")
    parser.add_argument("--flood-procs", type=int, default=2, help="flooder processes")
    parser.add_argument("--flooder", choices=("python", "dnsperf"), default="python")
    parser.add_argument("--flood-source", default="127.0.0.2")
    parser.add_argument("--other", default="127.0.1.3", help="the neighbour's address")
    parser.add_argument("--probe-rate", type=float, default=200.0, help="neighbour q/s")
    parser.add_argument("--idle", type=int, default=600, help="idle TCP connections")
    parser.add_argument("--tcp-probes", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated: flotilla,bind9")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve_flotilla(args.port))
        return
    if args.flood:
        flood(args.port, args.source, args.rate, args.seconds)
        return
    if not (1 <= args.rounds <= 9 and 0 < args.seconds <= 30 and 0 < args.flood_rate <= 200000
            and 1 <= args.flood_procs <= 8 and 0 < args.probe_rate <= 2000
            and 0 <= args.idle <= 5000 and 1 <= args.tcp_probes <= 200):
        parser.error("out of bounds: --rounds 1..9, --seconds 0..30, --flood-rate ..200000, "
                     "--flood-procs 1..8, --probe-rate ..2000, --idle ..5000, --tcp-probes ..200")
    if args.flooder == "dnsperf" and not shutil.which("dnsperf"):
        parser.error("dnsperf not installed (apt-get install dnsperf)")
    targets: list[tuple[str, Callable[[], Any]]] = [("flotilla", flotilla_server)]
    named = shutil.which("named") or ("/usr/sbin/named" if Path("/usr/sbin/named").exists()
                                      else None)
    if named:
        targets.append(("bind9", lambda: bind9_server(named)))
    else:
        print("named not installed (apt-get install bind9): BIND reference skipped")
    only = {t for t in args.only.split(",") if t}
    targets = [t for t in targets if not only or t[0] in only]
    print(f"flood {args.flood_rate:g} q/s from {args.flood_source} ({args.flood_procs} x "
          f"{args.flooder}), neighbour {args.other} at {args.probe_rate:g} q/s, "
          f"{args.seconds:g} s per phase, {args.idle} idle TCP clients from "
          f"{len(IDLE_SOURCES)} addresses, {args.rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
    for _ in range(args.rounds):
        for name, server in targets:
            with server() as (port, pid):
                results[name].append(one_round(port, pid, args))
    for name, rounds in results.items():
        report(name, rounds)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
