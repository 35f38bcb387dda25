"""Gateway under abuse: does a normal client notice 2,000 idle connections, 50 slowloris
clients and 20 slow readers?

    .venv/bin/python bench/gateway_abuse_bench.py [--rounds 5] [--duration 10]

One gateway process (`bench/gateway/serve_static.py`, default limits except
``--header-timeout``/``--write-timeout``, 5 s here so that the cuts happen inside a
round) in front of one nginx backend serving ``ok`` and a 64 MiB file. Each round
measures a paced normal client (``--rate`` requests/s over ``--client-connections``
keep-alive connections, latency from each request's scheduled time, so a stall counts in
full) twice: unloaded (the reference) and while an attacker process keeps up

- ``--idle`` connections that never send a byte (spread over 127.0.1.0/24, at most 200
  per address: under the default per-client cap of 256), reopened when closed;
- ``--slowloris`` clients sending one header line a second and never ending the head
  (cut by the header timeout with a 408; they reconnect);
- ``--slow-readers`` clients asking for the 64 MiB file and reading one byte a second
  (cut by the write timeout; they reconnect).

The order of the two runs alternates between rounds. Reported: per round and as medians,
the client's p50/p99 unloaded and loaded, failures, what the attacker saw and the
gateway's counters. Goal: loaded p99 within 10 ms of the unloaded p99 and no failed
request. The client and the attacker are separate processes (``--role``); the fd limit
is raised here for every process started (children inherit it). Needs the Debian
package nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gateway_bench import Procs, free_port, nginx_conf, wait_port  # noqa: E402

HOST = "bench.test"
BIG = 64 << 20
PER_ADDRESS = 200


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# --- role: the normal client ----------------------------------------------------------

async def normal_client(port: int, rate: float, duration: float, conns: int) -> dict[str, float]:
    # time.perf_counter, not loop.time(): uvloop's clock has millisecond resolution
    clock = time.perf_counter
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    latencies: list[float] = []
    failures = 0
    interval = conns / rate
    start = clock() + 0.2
    end = start + duration

    async def one(i: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        at = start + i * interval / conns
        while at < end:
            delay = at - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await asyncio.wait_for(reader.readexactly(length), 10)
                if head.startswith(b"HTTP/1.1 200 "):
                    latencies.append(clock() - at)
                else:
                    failures += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError, IndexError):
                failures += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            at += interval
        writer.close()

    await asyncio.gather(*(one(i) for i in range(conns)))
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "failures": failures,
            "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
            "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
            "max_ms": 1000 * latencies[-1] if n else float("nan")}


# --- role: the attacker ---------------------------------------------------------------

async def attacker(port: int, idle: int, slowloris: int, slow_readers: int) -> None:
    loop = asyncio.get_running_loop()
    stats = {"idle_open": 0, "idle_closed": 0, "refused_503": 0, "connect_errors": 0,
             "slowloris_cut": 0, "slowloris_saw_408": 0, "slow_reader_cut": 0}

    async def open_from(source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))

    async def idle_conn(source: str) -> None:
        while True:
            try:
                reader, writer = await open_from(source)
            except OSError:
                stats["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue
            stats["idle_open"] += 1
            with contextlib.suppress(OSError):
                data = await reader.read()  # until the gateway closes it
                stats["refused_503"] += data.startswith(b"HTTP/1.1 503")
            stats["idle_open"] -= 1
            stats["idle_closed"] += 1
            writer.close()

    async def loris(source: str) -> None:
        while True:
            try:
                reader, writer = await open_from(source)
            except OSError:
                stats["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue

            async def drip(writer: asyncio.StreamWriter = writer) -> None:
                writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n".encode())
                while True:
                    await asyncio.sleep(1)
                    writer.write(b"x-slow: 1\r\n")

            task = asyncio.create_task(drip())
            data = b""
            with contextlib.suppress(OSError):
                data = await reader.read()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
            # Its head lines keep coming after the 408, so the gateway's close may reach
            # it as a reset that drops the 408: both count as cut.
            stats["slowloris_cut"] += 1
            stats["slowloris_saw_408"] += data.startswith(b"HTTP/1.1 408")
            writer.close()

    async def slow_reader(source: str) -> None:
        while True:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            sock.bind((source, 0))
            try:
                await loop.sock_connect(sock, ("127.0.0.1", port))
                await loop.sock_sendall(sock, f"GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
                                        .encode())
                while True:
                    await asyncio.sleep(1)
                    # A reset is pending behind what our receive buffer still holds
                    # (recv would drip that out first, a byte a second): ask directly.
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        break
                    try:
                        if not sock.recv(1):
                            break
                    except BlockingIOError:
                        continue
            except OSError:
                pass
            finally:
                sock.close()
            stats["slow_reader_cut"] += 1

    tasks = [asyncio.create_task(idle_conn(f"127.0.1.{1 + i // PER_ADDRESS}"))
             for i in range(idle)]
    tasks += [asyncio.create_task(loris(f"127.0.2.{1 + i % 250}")) for i in range(slowloris)]
    tasks += [asyncio.create_task(slow_reader(f"127.0.3.{1 + i % 250}"))
              for i in range(slow_readers)]
    deadline = loop.time() + 60
    while stats["idle_open"] < idle and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # the slow readers' buffers fill, the slowloris heads start
    print("READY", json.dumps(stats), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps(stats), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the driver -------------------------------------------------------------------------

def run_client(args: argparse.Namespace, port: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--role", "client", "--port", str(port),
         "--rate", str(args.rate), "--duration", str(args.duration),
         "--client-connections", str(args.client_connections)],
        capture_output=True, text=True, timeout=args.duration + 60, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def scrape(admin_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    wanted = {"flotilla_gateway_active_connections": "active",
              'flotilla_gateway_local_responses_total{reason="header-timeout",status="408"}':
                  "408_sent",
              'flotilla_gateway_client_timeouts_total{kind="write"}': "write_timeouts",
              'flotilla_gateway_refused_connections_total{reason="max-connections-per-client"}':
                  "refused_per_client"}
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


def check_big(port: int) -> None:
    """The slow readers' file must come through whole-sized, or they test nothing."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/big", method="HEAD",
                                 headers={"Host": HOST})
    with urllib.request.urlopen(req, timeout=10) as r:
        length = int(r.headers.get("content-length", "0"))
        if r.status != 200 or length != BIG:
            raise RuntimeError(f"/big answered {r.status}, {length} bytes; want 200, {BIG}")


def loaded_run(args: argparse.Namespace, port: int, admin_port: int, procs: Procs
               ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    before = scrape(admin_port)
    p = subprocess.Popen(
        [sys.executable, __file__, "--role", "attack", "--port", str(port),
         "--idle", str(args.idle), "--slowloris", str(args.slowloris),
         "--slow-readers", str(args.slow_readers)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    procs.procs.append(p)  # type: ignore[arg-type]
    try:
        assert p.stdout is not None
        ready = p.stdout.readline()
        if not ready.startswith("READY"):
            raise RuntimeError(f"the attacker did not get ready: {ready!r}")
        at_start = scrape(admin_port)
        result = run_client(args, port)
        during = scrape(admin_port)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
    attack: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    attack["gateway_active_at_start"] = at_start["active"]
    gateway = {k: during[k] - before[k] for k in ("408_sent", "write_timeouts",
                                                   "refused_per_client")}
    return result, attack, gateway


def wait_quiet(admin_port: int, timeout: float = 30.0) -> None:
    """Until the gateway has seen the attacker's connections close."""
    deadline = time.monotonic() + timeout
    while scrape(admin_port)["active"] > 10 and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("driver", "client", "attack"), default="driver")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per client run")
    ap.add_argument("--rate", type=float, default=400.0, help="normal client requests/s")
    ap.add_argument("--client-connections", type=int, default=4)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--slowloris", type=int, default=50)
    ap.add_argument("--slow-readers", type=int, default=20)
    ap.add_argument("--timeouts", type=float, default=5.0,
                    help="the gateway's header and write timeouts (s)")
    args = ap.parse_args()
    limit = raise_fd_limit(2 * (args.idle + args.slowloris + args.slow_readers) + 1024)
    if args.role == "client":
        import uvloop
        print(json.dumps(uvloop.run(normal_client(args.port, args.rate, args.duration,
                                                  args.client_connections))))
        return
    if args.role == "attack":
        import uvloop
        uvloop.run(attacker(args.port, args.idle, args.slowloris, args.slow_readers))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx is not installed: apt-get install -y nginx")
    procs = Procs()
    load_before = os.getloadavg()
    rounds: list[tuple[dict[str, float], dict[str, float], dict[str, float],
                       dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="gwabuse-") as tmpdir:
        tmp = Path(tmpdir)
        # nginx's workers (not root) must read the file: TemporaryDirectory is 0700, and
        # without this /big was a 153-byte 403 that fitted in the socket buffers, so the
        # "slow readers" never blocked a write (issue 14's unexplained non-cut).
        tmp.chmod(0o755)
        try:
            big = tmp / "big.bin"
            with big.open("wb") as f:
                f.truncate(BIG)
            bport = free_port()
            conf = nginx_conf(tmp, "backend", 1, f"""
  server {{ listen 127.0.0.1:{bport};
    location = /big {{ alias {big}; }}
    location / {{ return 200 "ok\\n"; }} }}""")
            procs.start([nginx, "-c", str(conf), "-p", str(tmp / "backend")])
            wait_port(bport)
            gport, aport = free_port(), free_port()
            procs.start([sys.executable, str(HERE / "gateway" / "serve_static.py"),
                         "--listen", f"127.0.0.1:{gport}", "--admin-listen",
                         f"127.0.0.1:{aport}", "--host", HOST, "--backend",
                         f"127.0.0.1:{bport}", "--header-timeout", str(args.timeouts),
                         "--write-timeout", str(args.timeouts)])
            wait_port(gport)
            wait_port(aport)
            run_client(argparse.Namespace(**{**vars(args), "duration": 1}), gport)  # warm-up
            check_big(gport)
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}", flush=True)
                ref: dict[str, float] = {}
                if i % 2 == 0:
                    ref = run_client(args, gport)
                loaded, attack, gateway = loaded_run(args, gport, aport, procs)
                wait_quiet(aport)
                if i % 2 == 1:
                    ref = run_client(args, gport)
                rounds.append((ref, loaded, attack, gateway))
                print(f"  unloaded p50 {ref['p50_ms']:.2f} p99 {ref['p99_ms']:.2f} ms "
                      f"({ref['requests']:.0f} ok, {ref['failures']:.0f} failed); "
                      f"loaded p50 {loaded['p50_ms']:.2f} p99 {loaded['p99_ms']:.2f} ms "
                      f"({loaded['requests']:.0f} ok, {loaded['failures']:.0f} failed)",
                      flush=True)
                print(f"  attacker {json.dumps(attack)}; gateway {json.dumps(gateway)}",
                      flush=True)
        finally:
            procs.stop_all()
    report(rounds, args, limit, load_before, os.getloadavg())


def report(rounds: list[tuple[dict[str, float], dict[str, float], dict[str, float],
                              dict[str, float]]], args: argparse.Namespace, limit: int,
           load_before: tuple[float, float, float],
           load_after: tuple[float, float, float]) -> None:
    med = statistics.median
    refs = [r[0] for r in rounds]
    loads = [r[1] for r in rounds]
    diffs = [lo["p99_ms"] - re["p99_ms"] for re, lo in zip(refs, loads, strict=True)]
    failed = sum(r["failures"] for r in refs + loads)
    print(f"\nmedians of {len(rounds)} interleaved rounds; normal client {args.rate:g} req/s "
          f"over {args.client_connections} keep-alive connections for {args.duration:g} s; "
          f"attack: {args.idle} idle, {args.slowloris} slowloris, {args.slow_readers} slow "
          f"readers; gateway header/write timeouts {args.timeouts:g} s; 1 gateway process; "
          f"fd limit {limit}; {os.cpu_count()} CPUs, load average {load_before[0]:.1f} "
          f"before, {load_after[0]:.1f} after")
    print(f"{'run':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'ok':>7} {'failed':>7}")
    for name, rs in (("unloaded", refs), ("loaded", loads)):
        print(f"{name:<10} {med(r['p50_ms'] for r in rs):>8.2f} "
              f"{med(r['p99_ms'] for r in rs):>8.2f} {med(r['max_ms'] for r in rs):>8.2f} "
              f"{sum(r['requests'] for r in rs):>7.0f} {sum(r['failures'] for r in rs):>7.0f}")
    attack_keys = rounds[0][2].keys()
    print("attacker per round (median): " + ", ".join(
        f"{k} {med(r[2][k] for r in rounds):g}" for k in attack_keys))
    print("gateway per loaded run (median): " + ", ".join(
        f"{k} {med(r[3][k] for r in rounds):g}" for k in rounds[0][3]))
    d = med(diffs)
    ok = d <= 10.0 and failed == 0
    print(f"loaded - unloaded p99: median {d:+.2f} ms (per round: "
          f"{' '.join(f'{x:+.2f}' for x in diffs)}); failed requests {failed:.0f}; "
          f"goal (<= +10 ms, 0 failed): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
