"""How many member clusters one server on SQLite holds: simulated agents heartbeating.

    .venv/bin/python bench/heartbeat_bench.py --steps 50,100,200,400,800 --step-seconds 10
    .venv/bin/python bench/heartbeat_bench.py --store etcd --servers 3 --steps 1000,3000

With ``--store etcd`` it starts a real etcd (as tests/etcd_server.py does) and
``--servers`` servers on one key prefix and one data directory, the agents spread over
them, and the raw reference is etcd puts at the same rate instead of sqlite3 commits.

Starts a real ``flotilla server`` (subprocess, temp data dir, a free loopback port,
controllers ON: the cluster-health controller watches every Lease and every Cluster) and
ramps N simulated agents. Each agent is the real `flotilla.agent.heartbeat.Heartbeat`
renewing its Lease once per second (a PUT of ``spec.renewTime``) through the real
`HttpClient`; agents share one `HttpClient` (one httpx connection pool) per 100 agents,
all in this one asyncio process, as many agents share nothing in production but here
share the machine's 2 cores with the server. Each agent also registers a Cluster so the
health controller does the work it does for real members (marks them Ready).

Per step, after a 5 s join period: heartbeat latency p50/p99 (request sent -> answer), how
late the ticks fired (a load generator that cannot keep up shows here, not as server
latency), renewals/s achieved vs wanted, and the CPU of the server and of this process.
The ramp stops at the first step whose p99 >= ``--p99-ms`` or whose renewals fall behind
(< 95 % of wanted). Two references run in the same invocation at the rate of the largest
N that held (or of the first step), on a fresh server (the ramp's is busy expiring its
simulated clusters): a bare ``GET /healthz`` loop through the same kind of pools (HTTP
and event loops, no auth, no store), and a raw sqlite3 loop committing one row per
renewal on the same disk with the store's durability settings (the fsync floor). The
ratios say whether the time goes to the write path or to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import uvloop

from flotilla.agent.heartbeat import Heartbeat
from flotilla.api.auth import ensure_admin_token
from flotilla.client.base import AlreadyExistsError
from flotilla.client.http import HttpClient, verify_for
from flotilla.pki import PkiLayout
from flotilla.resources.kinds import by_kind

CLUSTER = by_kind("Cluster")
AGENTS_PER_CLIENT = 10
WARMUP_SECONDS = 2.0
#: After new agents join: long enough for the health controller to have judged them
#: (never-updated -> tainted -> Ready, with Events) so the window measures the steady
#: state the question is about, not the join burst (~6 writes per new cluster).
JOIN_SECONDS = 5.0
#: Renewals achieved below this share of the wanted rate count as falling behind.
KEEP_UP = 0.95
TICKS = os.sysconf("SC_CLK_TCK")


def syn_retransmits() -> int:
    """The kernel's count of retransmitted SYNs: a dropped connect costs 1 s, 3 s, 7 s."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()
             if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("TCPSynRetrans", 0))


class PooledClient(HttpClient):
    """`HttpClient` with a pool that keeps every connection it opens. httpx keeps only 20
    idle connections per pool by default, so 100 agents sharing one pool would close and
    reopen connections whenever more than 20 are in flight; on this machine that churn
    gets SYNs dropped (TCPSynRetrans) and renewals wait 1-7 s for connect retries, which
    measures the loopback's connection handling rather than the server."""

    def __init__(self, server: str, token: str | None) -> None:
        super().__init__(server, token)
        self._http = httpx.AsyncClient(
            base_url=self.server, headers=self._http.headers, timeout=self._timeout,
            verify=verify_for(self.server, None),
            limits=httpx.Limits(max_connections=AGENTS_PER_CLIENT,
                                max_keepalive_connections=AGENTS_PER_CLIENT))


_METRIC = re.compile(r'^flotilla_api_request_duration_seconds_(count|sum|bucket)\{(.*)\} (\S+)$')


async def server_side(client: HttpClient) -> tuple[float, float, float]:
    """(count, seconds, count under 100 ms) of Lease updates as the server timed them in
    its /metrics histogram (handler only: no connect, no queue before the request is read)."""
    text = (await client._http.get("/metrics")).text  # the same pool, on purpose
    out = {"count": 0.0, "sum": 0.0, "bucket": 0.0}
    for m in map(_METRIC.match, text.splitlines()):
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
        if labels.get("verb") == "update" and labels.get("resource", "").startswith("leases.") \
                and labels.get("le", "0.1") == "0.1":
            out[m[1]] = float(m[3])
    return out["count"], out["sum"], out["bucket"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: first server's pid -> every server's pid, when ``--servers`` starts several.
SERVER_GROUPS: dict[int, list[int]] = {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (from /proc, so no dependency is needed);
    for the first of several servers, of all of them."""
    total = 0.0
    for one in SERVER_GROUPS.get(pid, [pid]):
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


@dataclass
class Sample:
    """What the agents recorded since the last `reset` (one measured window)."""

    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: int = 0

    def reset(self) -> None:
        self.latencies.clear()
        self.lags.clear()
        self.errors = 0


async def ticking(op: Callable[[], Awaitable[object]], interval: float, sample: Sample,
                  stop: asyncio.Event) -> None:
    """Call ``op`` once per ``interval`` at a random phase, like `Heartbeat.run`, timing
    each call; a late tick is recorded as lag and not made up for (no bursts)."""
    next_tick = time.monotonic() + random.uniform(0, interval)
    while not stop.is_set():
        delay = next_tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        start = time.monotonic()
        sample.lags.append(start - next_tick)
        try:
            await op()
            sample.latencies.append(time.monotonic() - start)
        except Exception:  # a failed renewal counts as one, but is not a latency
            sample.errors += 1
        next_tick = max(next_tick + interval, time.monotonic())


@dataclass
class Window:
    n: int
    seconds: float
    done: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float
    server_cpu: float
    client_cpu: float
    #: Lease updates as the server timed them: mean, and share over 100 ms.
    server_mean_ms: float = float("nan")
    server_slow: float = float("nan")

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def held(self, p99_ms: float) -> bool:
        return self.p99_ms < p99_ms and self.rate >= KEEP_UP * self.n and self.errors == 0

    def line(self, label: str) -> str:
        return (f"{label:<10} N={self.n:<5} p50={self.p50_ms:6.1f} ms  p99={self.p99_ms:7.1f}"
                f" ms  max={self.max_ms:7.1f} ms  tick-lag p99={self.lag_p99_ms:6.1f} ms"
                f"  renewals/s={self.rate:6.1f} (wanted {self.n})  errors={self.errors}"
                f"  server CPU={self.server_cpu:4.0%}  bench CPU={self.client_cpu:4.0%}"
                f"  load avg={os.getloadavg()[0]:.1f}"
                + ("" if self.server_mean_ms != self.server_mean_ms else
                   f"\n{'':<10} server-timed: mean={self.server_mean_ms:.1f} ms,"
                   f" {self.server_slow:.1%} over 100 ms"))


async def measure(n: int, seconds: float, sample: Sample, server_pid: int,
                  metrics: HttpClient | None = None) -> Window:
    sample.reset()
    m0 = await server_side(metrics) if metrics else None
    t0, s0, c0 = time.monotonic(), cpu_seconds(server_pid), time.process_time()
    await asyncio.sleep(seconds)  # the agents' own ticks are the load; we only wait
    wall = time.monotonic() - t0
    lat = list(sample.latencies)
    w = Window(n, wall, len(lat), sample.errors, pct(lat, 0.5) * 1e3,
               pct(lat, 0.99) * 1e3, max(lat, default=float("nan")) * 1e3,
               pct(sample.lags, 0.99) * 1e3, (cpu_seconds(server_pid) - s0) / wall,
               (time.process_time() - c0) / wall)
    if metrics and m0:
        count, total, fast = (b - a for a, b in zip(m0, await server_side(metrics),
                                                    strict=True))
        if count:
            w.server_mean_ms, w.server_slow = total / count * 1e3, 1 - fast / count
    return w


async def register(client: HttpClient, name: str) -> None:
    with contextlib.suppress(AlreadyExistsError):
        await client.create({"apiVersion": CLUSTER.api_version, "kind": "Cluster",
                             "metadata": {"name": name},
                             "spec": {"region": "bench", "zone": "bench-a",
                                      "runtime": "local"}})


async def disk_reference(n: int, seconds: float, path: Path, server_pid: int) -> Window:
    """A plain sqlite3 loop at the same rate on the same disk, with the store's settings
    (WAL, synchronous=FULL): one UPDATE + COMMIT (one fsync) per renewal, from one
    thread. The floor a durable renewal cannot go below without batching."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS lease(name TEXT PRIMARY KEY, renew TEXT)")
    conn.executemany("INSERT OR REPLACE INTO lease VALUES (?, '')",
                     [(f"sim-{i:05}",) for i in range(n)])
    pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-ref")
    loop = asyncio.get_running_loop()
    names = itertools.cycle([f"sim-{i:05}" for i in range(n)])

    def renew() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE lease SET renew = ? WHERE name = ?", (str(time.time()), next(names)))
        conn.execute("COMMIT")

    stop, sample = asyncio.Event(), Sample()
    tasks = [asyncio.create_task(ticking(lambda: loop.run_in_executor(pool, renew), 1.0,
                                         sample, stop)) for _ in range(n)]
    try:
        await asyncio.sleep(WARMUP_SECONDS)
        return await measure(n, seconds, sample, server_pid)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.shutdown(wait=True)
        conn.close()


async def etcd_reference(n: int, seconds: float, url: str, server_pid: int) -> Window:
    """The same rate of raw etcd puts (one small key per simulated agent, once a second,
    one shared aetcd client = one gRPC channel) on the run's own etcd: the floor of a
    durable renewal on etcd (Raft + fsync), with no API server in between."""
    import aetcd

    host, _, port = url.removeprefix("etcd://").partition("/")[0].partition(":")
    stop, sample = asyncio.Event(), Sample()
    async with aetcd.Client(host, int(port)) as client:
        def put(i: int) -> Callable[[], Awaitable[object]]:
            key = f"/bench-reference/lease/sim-{i:05}".encode()
            return lambda: client.put(key, str(time.time()).encode())

        tasks = [asyncio.create_task(ticking(put(i), 1.0, sample, stop)) for i in range(n)]
        try:
            await asyncio.sleep(WARMUP_SECONDS)
            return await measure(n, seconds, sample, server_pid)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


#: Set by ``--store etcd``: the run's etcd, for the servers and the raw reference.
ETCD_URL = ""
SERVERS = 1


def make_clients(url: str, token: str, n: int, pooled: bool) -> list[HttpClient]:
    """One client per `AGENTS_PER_CLIENT` agents; with several servers (``url`` is a
    comma-separated list) the clients, and so the agents, are spread over them."""
    urls = url.split(",")
    count = -(-n // AGENTS_PER_CLIENT)
    return [PooledClient(urls[i % len(urls)], token) if pooled
            else HttpClient(urls[i % len(urls)], token) for i in range(count)]


async def ramp(url: str, token: str, server_pid: int, steps: list[int], seconds: float,
               p99_ms: float, pooled: bool) -> tuple[Window | None, bool]:
    """Add agents step by step; return the window to compare with and whether it held."""
    clients = make_clients(url, token, max(steps), pooled)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    sample = Sample()
    best: Window | None = None
    first: Window | None = None
    try:
        for n in steps:
            new = range(len(tasks), n)
            # Registration is not measured: 50 at a time, as agents would trickle in.
            for lo in range(new.start, new.stop, 50):
                await asyncio.gather(*(register(clients[i // AGENTS_PER_CLIENT], f"sim-{i:05}")
                                       for i in range(lo, min(lo + 50, new.stop))))
            for i in new:
                hb = Heartbeat(clients[i // AGENTS_PER_CLIENT], f"sim-{i:05}", 1.0)
                tasks.append(asyncio.create_task(ticking(hb.renew_once, 1.0, sample, stop)))
            await asyncio.sleep(JOIN_SECONDS)
            w = await measure(n, seconds, sample, server_pid, clients[0])
            print(w.line("heartbeat"), flush=True)
            first = first or w
            if not w.held(p99_ms):
                print(f"  -> stop: p99 >= {p99_ms:g} ms, renewals behind, or errors", flush=True)
                break
            best = w
        return best or first, best is not None
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()


async def references(url: str, token: str, server_pid: int, compare: Window, held: bool,
                     seconds: float, p99_ms: float, sqlite_path: Path, pooled: bool) -> None:
    """On a fresh, idle server (the ramp's one would be busy expiring its simulated
    clusters): GET /healthz through the same kind of pools at the same rate, then the
    raw sqlite3 loop."""
    clients = make_clients(url, token, compare.n, pooled)
    stop, ref = asyncio.Event(), Sample()

    def healthz(c: HttpClient) -> Callable[[], Awaitable[object]]:
        return lambda: c._http.get("/healthz")  # the same pool, on purpose

    tasks = [asyncio.create_task(ticking(healthz(clients[i // AGENTS_PER_CLIENT]), 1.0,
                                         ref, stop)) for i in range(compare.n)]
    try:
        await asyncio.sleep(WARMUP_SECONDS)
        r = await measure(compare.n, seconds, ref, server_pid)
        print(r.line("healthz"), flush=True)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()
    if ETCD_URL:
        d = await etcd_reference(compare.n, seconds, ETCD_URL, server_pid)
        print(d.line("etcd put"), flush=True)
    else:
        d = await disk_reference(compare.n, seconds, sqlite_path, server_pid)
        print(d.line("sqlite3"), flush=True)
    print(f"\nlargest N with heartbeat p99 < {p99_ms:g} ms: "
          f"{compare.n if held else 'none of the steps'}")
    raw = "raw etcd put (aetcd)" if ETCD_URL else "raw sqlite3 commit"
    for name, ref_w in (("GET /healthz", r), (raw, d)):
        print(f"heartbeat / {name} at N={compare.n}: p50 x{compare.p50_ms / ref_w.p50_ms:.1f},"
              f" p99 x{compare.p99_ms / ref_w.p99_ms:.1f}", flush=True)


T = TypeVar("T")


def with_server(data_dir: Path, work: Callable[[str, str, int], Awaitable[T]],
                max_seconds: float) -> T:
    """Start a server in ``data_dir``, run ``work(url, token, pid)`` on uvloop, stop it."""
    token = ensure_admin_token(data_dir) or ""
    # With etcd, every server shares one data directory (one CA, one token file) and
    # one key prefix, as replicas of one control plane do.
    extra = ("--store", f"{ETCD_URL}/{data_dir.name}") if ETCD_URL else ()
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(SERVERS if ETCD_URL else 1):
            proc, url = start_server(data_dir, *extra)  # inherits this process's niceness
            procs.append(proc)
            urls.append(url)
            print(f"server pid {proc.pid} at {url}", flush=True)
        SERVER_GROUPS[procs[0].pid] = [p.pid for p in procs]
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(asyncio.wait_for(work(",".join(urls), token, procs[0].pid),
                                               max_seconds))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_server(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flotilla", "server", "--data-dir", str(data_dir),
         "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(rb"listening on (https?://\S+)", line):
            url = m.group(1).decode()
            # Every HttpClient of this process verifies the server with its CA.
            os.environ["FLOTILLA_CA_FILE"] = str(PkiLayout(data_dir).ca_cert)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1,
                                 verify=verify_for(url, None)).status_code == 200:
                        return proc, url
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)  # polling a starting server, not synchronising a test
        if not line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,100,200,400,800,1600",
                        help="Agent counts to ramp through (comma-separated).")
    parser.add_argument("--step-seconds", type=float, default=10.0,
                        help="Measured seconds per step (after a 5 s join period).")
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="Hard bound on the ramp (and again on the references).")
    parser.add_argument("--nice", type=int, default=0,
                        help="Niceness for the server and this process (negative needs root):"
                             " on a shared machine, measures the server rather than the"
                             " run queue it waits in.")
    parser.add_argument("--httpx-default-pool", action="store_true",
                        help="Use HttpClient's default pool (20 kept-alive connections).")
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite",
                        help="sqlite: one server on its own file (default). etcd: start a"
                             " real etcd (/usr/bin/etcd, as tests/etcd_server.py) and"
                             " --servers servers on one key prefix; the raw reference is"
                             " then etcd puts at the same rate.")
    parser.add_argument("--servers", type=int, default=1,
                        help="API servers on the etcd store (agents spread over them),"
                             " e.g. --store etcd --servers 3 --steps 1000,2000,3000.")
    args = parser.parse_args()
    if args.servers < 1 or (args.servers > 1 and args.store != "etcd"):
        parser.error("--servers: at least 1, and more than 1 only with --store etcd")
    if args.nice:
        os.nice(args.nice)
    steps = [int(s) for s in args.steps.split(",") if s]
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start;"
          f" niceness {os.nice(0)}", flush=True)
    pooled, seconds = not args.httpx_default_pool, args.step_seconds
    syn = syn_retransmits()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        global ETCD_URL, SERVERS
        if args.store == "etcd":
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.etcd_server import start_etcd  # the one home of "start an etcd"

            (Path(tmp) / "etcd").mkdir()
            etcd = start_etcd(Path(tmp) / "etcd")
            stack.callback(etcd.stop)
            ETCD_URL, SERVERS = etcd.url, args.servers
            print(f"etcd pid {etcd.proc.pid} at {etcd.url}; {SERVERS} server(s)", flush=True)
        compare, held = with_server(
            Path(tmp) / "ramp",
            lambda url, token, pid: ramp(url, token, pid, steps, seconds, args.p99_ms, pooled),
            args.max_seconds)
        if compare is not None:
            with_server(Path(tmp) / "reference",
                        lambda url, token, pid: references(
                            url, token, pid, compare, held, seconds, args.p99_ms,
                            Path(tmp) / "reference.db", pooled),
                        args.max_seconds)
    print(f"SYN retransmits during the run (whole machine): {syn_retransmits() - syn}")


if __name__ == "__main__":
    main()
