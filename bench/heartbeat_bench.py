"""How many member clusters one server holds: simulated agents heartbeating.

    .venv/bin/python bench/heartbeat_bench.py --steps 400,600,800,1000 --load-procs 2
    .venv/bin/python bench/heartbeat_bench.py --store etcd --servers 3 --steps 1000,3000

With ``--store etcd`` it starts a real etcd (as tests/etcd_server.py does) and
``--servers`` servers on one key prefix and one data directory, the agents spread over
them, and the raw reference is etcd puts at the same rate instead of sqlite3 commits.

Starts a real ``flotilla server`` (subprocess, temp data dir, a free loopback port,
controllers ON: the cluster-health controller watches every Lease and every Cluster) and
ramps N simulated agents. Each agent is the real `flotilla.agent.heartbeat.Heartbeat`
renewing its Lease once per second (a PUT of ``spec.renewTime``) through a
`HttpClient` whose ``update`` goes over `lean_http.LeanHttp` (kept-alive TLS
connections, the request bytes written by hand: httpx cost ~1 ms of CPU per request and
made the generator the bottleneck; ``--httpx`` measures with the plain `HttpClient`).
Ten agents share one client. ``--load-procs N`` spreads the agents over N generator
processes (agent i in process i mod N), so the generator can use more than one core;
every figure merges them. Each agent also registers a Cluster so the health controller
does the work it does for real members (marks them Ready).

Per step, after a 5 s join period: heartbeat latency p50/p99 (request sent -> answer), how
late the ticks fired (a load generator that cannot keep up shows here, not as server
latency), renewals/s achieved vs wanted, and the CPU of the server(s) and of the
generator processes. The ramp stops at the first step whose p99 >= ``--p99-ms`` or whose
renewals fall behind (< 95 % of wanted). Two references run in the same invocation at the
rate of the largest N that held (or of the first step), on a fresh server (the ramp's is
busy expiring its simulated clusters), from the same generator processes: a bare
``GET /healthz`` loop through the same clients (HTTP and event loops, no auth, no store),
and the raw store floor: a sqlite3 loop committing one row per renewal on the same disk
with the store's durability settings (the fsync floor; in this process), or etcd puts at
the same rate (one aetcd client per generator process). The ratios say whether the time
goes to the write path or to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
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
from typing import Any, TypeVar

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flotilla.agent.heartbeat import Heartbeat
from flotilla.api import heap
from flotilla.api.auth import ensure_admin_token
from flotilla.client.base import AlreadyExistsError, ApiError, Object
from flotilla.client.http import HttpClient, error_from_status, verify_for
from flotilla.pki import PkiLayout
from flotilla.resources.kinds import by_kind
from lean_http import LeanHttp

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

    async def healthz(self) -> None:
        (await self._http.get("/healthz")).raise_for_status()  # the same pool, on purpose


class LeanClient(PooledClient):
    """`PooledClient` whose ``update`` (the renewal, all that is measured) and
    ``healthz`` go over `LeanHttp`; registration and the first read keep httpx."""

    def __init__(self, server: str, token: str | None) -> None:
        super().__init__(server, token)
        self.lean = LeanHttp(self.server, token, verify_for(self.server, None))

    async def update(self, obj: Object) -> Object:
        kind, meta = by_kind(str(obj["kind"])), obj["metadata"]
        root = f"/apis/{kind.api_version}" if "/" in kind.api_version \
            else f"/api/{kind.api_version}"
        where = f"/namespaces/{meta['namespace']}" if kind.namespaced else ""
        status, body = await self.lean.request(
            "PUT", f"{root}{where}/{kind.plural}/{meta['name']}", obj)
        answer: Object = json.loads(body) if body else {}
        if status >= 400:
            raise error_from_status(answer, status)
        return answer

    async def healthz(self) -> None:
        status, _ = await self.lean.request("GET", "/healthz")
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}")

    async def close(self) -> None:
        await self.lean.close()
        await super().close()


_METRIC = re.compile(r'^flotilla_api_request_duration_seconds_(count|sum|bucket)\{(.*)\} (\S+)$')


async def server_side(urls: list[str], token: str) -> tuple[float, float, float]:
    """(count, seconds, count under 100 ms) of Lease updates as the servers timed them in
    their /metrics histograms (handler only: no connect, no queue before the request is
    read), summed over every server."""
    out = {"count": 0.0, "sum": 0.0, "bucket": 0.0}
    for url in urls:
        async with httpx.AsyncClient(base_url=url, verify=verify_for(url, None),
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            text = (await http.get("/metrics")).text
        for m in map(_METRIC.match, text.splitlines()):
            if m is None:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
            if labels.get("verb") == "update" and \
                    labels.get("resource", "").startswith("leases.") \
                    and labels.get("le", "0.1") == "0.1":
                out[m[1]] += float(m[3])
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
    kinds: dict[str, int] = field(default_factory=dict)  # error class -> count

    def reset(self) -> None:
        self.latencies.clear()
        self.lags.clear()
        self.errors = 0
        self.kinds.clear()


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
        except Exception as exc:  # a failed renewal counts as one, but is not a latency
            sample.errors += 1
            kind = f"{type(exc).__name__} {getattr(exc, 'status', '')}".strip()
            sample.kinds[kind] = sample.kinds.get(kind, 0) + 1
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
    error_kinds: dict[str, int] = field(default_factory=dict)
    #: CPU of the run's etcd (``--store etcd``), which shares the machine too.
    etcd_cpu: float = float("nan")

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
                + ("" if self.etcd_cpu != self.etcd_cpu else f"  etcd CPU={self.etcd_cpu:4.0%}")
                + f"  load avg={os.getloadavg()[0]:.1f}"
                + ("" if self.server_mean_ms != self.server_mean_ms else
                   f"\n{'':<10} server-timed: mean={self.server_mean_ms:.1f} ms,"
                   f" {self.server_slow:.1%} over 100 ms")
                + (f"\n{'':<10} errors: {self.error_kinds}" if self.error_kinds else ""))


# -- the load generator: one in-process pool of agents, or several processes of them ----

@dataclass
class Recorded:
    """One measured window as a generator process saw it."""

    latencies: list[float]
    lags: list[float]
    errors: int
    cpu: float  # CPU seconds this process used during the window
    kinds: dict[str, int] = field(default_factory=dict)


class Agents:
    """The agents of one generator process: ``share`` of ``procs`` (agent i runs in the
    process where i % procs == share), each ticking once a second."""

    def __init__(self, urls: list[str], token: str, share: int = 0, procs: int = 1,
                 lean: bool = True) -> None:
        self.urls, self.token, self.share, self.procs = urls, token, share, procs
        self.lean = lean
        self.clients: dict[int, PooledClient] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.sample = Sample()
        self.stop_event = asyncio.Event()
        self.started = 0  # agents 0 .. started-1 are (or were) considered

    def mine(self, n: int) -> list[int]:
        new = [i for i in range(self.started, n) if i % self.procs == self.share]
        self.started = max(self.started, n)
        return new

    def client(self, i: int) -> PooledClient:
        """One client per `AGENTS_PER_CLIENT` agents, spread round-robin over the
        servers (as the single-process generator always did)."""
        group = i // AGENTS_PER_CLIENT
        if group not in self.clients:
            url = self.urls[group % len(self.urls)]
            self.clients[group] = (LeanClient if self.lean else PooledClient)(url, self.token)
        return self.clients[group]

    def _tick(self, op: Callable[[], Awaitable[object]]) -> None:
        self.tasks.append(asyncio.create_task(
            ticking(op, 1.0, self.sample, self.stop_event)))

    async def add(self, mode: str, n: int, etcd_url: str = "") -> None:
        new = self.mine(n)
        if mode == "heartbeat":
            # Registration is not measured: 50 at a time, as agents would trickle in.
            for lo in range(0, len(new), 50):
                await asyncio.gather(*(register(self.client(i), f"sim-{i:05}")
                                       for i in new[lo:lo + 50]))
            for i in new:
                self._tick(Heartbeat(self.client(i), f"sim-{i:05}", 1.0).renew_once)
        elif mode == "healthz":
            for i in new:
                self._tick(self.client(i).healthz)
        elif mode == "etcd":
            await self._etcd_puts(new, etcd_url)
        else:
            raise ValueError(f"unknown mode {mode!r}")

    async def _etcd_puts(self, new: list[int], url: str) -> None:
        """Raw etcd puts: one small key per simulated agent, once a second, one aetcd
        client (one gRPC channel) for this process's agents."""
        import aetcd

        host, _, port = url.removeprefix("etcd://").partition("/")[0].partition(":")
        client = aetcd.Client(host, int(port))
        await client.connect()
        self._etcd = client

        def put(i: int) -> Callable[[], Awaitable[object]]:
            key = f"/bench-reference/lease/sim-{i:05}".encode()
            return lambda: client.put(key, str(time.time()).encode())

        for i in new:
            self._tick(put(i))

    async def window(self, seconds: float) -> Recorded:
        self.sample.reset()
        c0 = time.process_time()
        await asyncio.sleep(seconds)  # the agents' own ticks are the load; we only wait
        return Recorded(list(self.sample.latencies), list(self.sample.lags),
                        self.sample.errors, time.process_time() - c0,
                        dict(self.sample.kinds))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.clients.values():
            await c.close()
        if getattr(self, "_etcd", None) is not None:
            await self._etcd.close()


class Generators:
    """``procs`` generator processes (this script with ``--worker``), driven over their
    stdin/stdout with one JSON line per command; the same interface as `Agents`."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def start(cls, urls: list[str], token: str, count: int, lean: bool
                    ) -> Generators:
        env = {**os.environ, "FLOTILLA_BENCH_TOKEN": token}
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", f"{k},{count}", "--urls", ",".join(urls),
            *(() if lean else ("--httpx",)), env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, limit=64 << 20) for k in range(count)]
        return cls(procs)

    async def _all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        line = (json.dumps(command) + "\n").encode()
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(line)
        answers = []
        for p in self.procs:
            assert p.stdout is not None
            raw = await p.stdout.readline()
            if not raw:
                raise SystemExit(f"generator process {p.pid} ended")
            answers.append(json.loads(raw))
        return answers

    async def add(self, mode: str, n: int, etcd_url: str = "") -> None:
        await self._all({"op": "add", "mode": mode, "n": n, "etcd": etcd_url})

    async def window(self, seconds: float) -> Recorded:
        parts = await self._all({"op": "window", "seconds": seconds})
        return Recorded([x for p in parts for x in p["latencies"]],
                        [x for p in parts for x in p["lags"]],
                        sum(p["errors"] for p in parts), sum(p["cpu"] for p in parts),
                        {k: sum(p["kinds"].get(k, 0) for p in parts)
                         for k in {k for p in parts for k in p["kinds"]}})

    async def stop(self) -> None:
        with contextlib.suppress(SystemExit):
            await self._all({"op": "stop"})
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()


Load = Agents | Generators


async def open_load(urls: list[str], token: str, procs: int, lean: bool) -> Load:
    if procs <= 1:
        return Agents(urls, token, lean=lean)
    return await Generators.start(urls, token, procs, lean)


async def worker(share: int, procs: int, urls: list[str], lean: bool) -> None:
    """A generator process: commands on stdin, answers on stdout, one JSON line each."""
    heap.settle()  # as the server: no full collections stalling the agents' ticks
    agents = Agents(urls, os.environ["FLOTILLA_BENCH_TOKEN"], share, procs, lean)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            answer: dict[str, Any] = {"ok": True}
            if cmd["op"] == "add":
                await agents.add(cmd["mode"], cmd["n"], cmd.get("etcd", ""))
            elif cmd["op"] == "window":
                r = await agents.window(cmd["seconds"])
                answer = {"latencies": r.latencies, "lags": r.lags, "errors": r.errors,
                          "cpu": r.cpu, "kinds": r.kinds}
            elif cmd["op"] == "stop":
                await agents.stop()
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if cmd["op"] == "stop":
                return
    finally:
        await agents.stop()


async def measure(load: Load, n: int, seconds: float, server_pid: int,
                  metrics: tuple[list[str], str] | None = None) -> Window:
    m0 = await server_side(*metrics) if metrics else None
    t0, s0 = time.monotonic(), cpu_seconds(server_pid)
    e0 = cpu_seconds(ETCD_PID) if ETCD_PID else 0.0
    c0 = time.process_time()
    r = await load.window(seconds)
    wall = time.monotonic() - t0
    own = time.process_time() - c0 if isinstance(load, Generators) else 0.0
    lat = r.latencies
    w = Window(n, wall, len(lat), r.errors, pct(lat, 0.5) * 1e3,
               pct(lat, 0.99) * 1e3, max(lat, default=float("nan")) * 1e3,
               pct(r.lags, 0.99) * 1e3, (cpu_seconds(server_pid) - s0) / wall,
               (r.cpu + own) / wall, error_kinds=r.kinds)
    if ETCD_PID:
        w.etcd_cpu = (cpu_seconds(ETCD_PID) - e0) / wall
    if metrics and m0:
        count, total, fast = (b - a for a, b in zip(m0, await server_side(*metrics),
                                                    strict=True))
        if count:
            w.server_mean_ms, w.server_slow = total / count * 1e3, 1 - fast / count
    return w


async def register(client: HttpClient, name: str) -> None:
    """Create the agent's Cluster; a busy server's 503 ("serving its limit of
    concurrent requests", which the agents' renewals can cause) is waited out, a bounded
    number of times, as an agent's registration loop would."""
    for attempt in range(20):
        try:
            await client.create({"apiVersion": CLUSTER.api_version, "kind": "Cluster",
                                 "metadata": {"name": name},
                                 "spec": {"region": "bench", "zone": "bench-a",
                                          "runtime": "local"}})
            return
        except AlreadyExistsError:
            return
        except ApiError as exc:
            if exc.status not in (429, 503) or attempt == 19:
                raise
            await asyncio.sleep(0.5)


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

    agents = Agents([], "")
    for _ in range(n):
        agents._tick(lambda: loop.run_in_executor(pool, renew))
    try:
        await asyncio.sleep(WARMUP_SECONDS)
        return await measure(agents, n, seconds, server_pid)
    finally:
        await agents.stop()
        pool.shutdown(wait=True)
        conn.close()


#: Set by ``--store etcd``: the run's etcd, for the servers and the raw reference.
ETCD_URL = ""
ETCD_PID = 0
SERVERS = 1


@dataclass
class Options:
    steps: list[int]
    seconds: float
    p99_ms: float
    procs: int
    lean: bool


async def ramp(url: str, token: str, server_pid: int, opt: Options
               ) -> tuple[Window | None, bool]:
    """Add agents step by step; return the window to compare with and whether it held."""
    heap.settle()
    urls = url.split(",")
    load = await open_load(urls, token, opt.procs, opt.lean)
    best: Window | None = None
    first: Window | None = None
    try:
        for n in opt.steps:
            await load.add("heartbeat", n)
            await asyncio.sleep(JOIN_SECONDS)
            w = await measure(load, n, opt.seconds, server_pid, (urls, token))
            print(w.line("heartbeat"), flush=True)
            first = first or w
            if not w.held(opt.p99_ms):
                print(f"  -> stop: p99 >= {opt.p99_ms:g} ms, renewals behind, or errors",
                      flush=True)
                break
            best = w
        return best or first, best is not None
    finally:
        await load.stop()


async def references(url: str, token: str, server_pid: int, compare: Window, held: bool,
                     opt: Options, sqlite_path: Path) -> None:
    """On a fresh, idle server (the ramp's one would be busy expiring its simulated
    clusters): GET /healthz from the same generator processes and clients at the same
    rate, then the raw store loop."""
    async def one(mode: str) -> Window:
        load = await open_load(url.split(","), token, opt.procs, opt.lean)
        try:
            await load.add(mode, compare.n, ETCD_URL)
            await asyncio.sleep(WARMUP_SECONDS)
            return await measure(load, compare.n, opt.seconds, server_pid)
        finally:
            await load.stop()

    r = await one("healthz")
    print(r.line("healthz"), flush=True)
    if ETCD_URL:
        d = await one("etcd")
        print(d.line("etcd put"), flush=True)
    else:
        d = await disk_reference(compare.n, opt.seconds, sqlite_path, server_pid)
        print(d.line("sqlite3"), flush=True)
    print(f"\nlargest N with heartbeat p99 < {opt.p99_ms:g} ms: "
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
    parser.add_argument("--load-procs", type=int, default=1,
                        help="Generator processes the agents are spread over (1: this"
                             " process). The references use the same processes.")
    parser.add_argument("--httpx", action="store_true",
                        help="Renew through the plain HttpClient (httpx, every connection"
                             " kept) instead of the lean transport: what the old figures used.")
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite",
                        help="sqlite: one server on its own file (default). etcd: start a"
                             " real etcd (/usr/bin/etcd, as tests/etcd_server.py) and"
                             " --servers servers on one key prefix; the raw reference is"
                             " then etcd puts at the same rate.")
    parser.add_argument("--servers", type=int, default=1,
                        help="API servers on the etcd store (agents spread over them),"
                             " e.g. --store etcd --servers 3 --steps 1000,2000,3000.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # SHARE,PROCS: a generator
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        share, procs = map(int, args.worker.split(","))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(worker(share, procs, args.urls.split(","), not args.httpx))
        return
    if args.servers < 1 or (args.servers > 1 and args.store != "etcd"):
        parser.error("--servers: at least 1, and more than 1 only with --store etcd")
    if args.load_procs < 1:
        parser.error("--load-procs: at least 1")
    if args.nice:
        os.nice(args.nice)
    opt = Options([int(s) for s in args.steps.split(",") if s], args.step_seconds,
                  args.p99_ms, args.load_procs, not args.httpx)
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start;"
          f" niceness {os.nice(0)}; {opt.procs} generator process(es),"
          f" {'lean' if opt.lean else 'httpx'} transport", flush=True)
    syn = syn_retransmits()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        global ETCD_URL, ETCD_PID, SERVERS
        if args.store == "etcd":
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.etcd_server import start_etcd  # the one home of "start an etcd"

            (Path(tmp) / "etcd").mkdir()
            etcd = start_etcd(Path(tmp) / "etcd")
            stack.callback(etcd.stop)
            ETCD_URL, ETCD_PID, SERVERS = etcd.url, etcd.proc.pid, args.servers
            print(f"etcd pid {etcd.proc.pid} at {etcd.url}; {SERVERS} server(s)", flush=True)
        compare, held = with_server(
            Path(tmp) / "ramp", lambda url, token, pid: ramp(url, token, pid, opt),
            args.max_seconds)
        if compare is not None:
            with_server(Path(tmp) / "reference",
                        lambda url, token, pid: references(
                            url, token, pid, compare, held, opt, Path(tmp) / "reference.db"),
                        args.max_seconds)
    print(f"SYN retransmits during the run (whole machine): {syn_retransmits() - syn}")


if __name__ == "__main__":
    main()
