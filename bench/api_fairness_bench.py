"""Fairness under a flood: one user hammers the API while 200 agents heartbeat.

    .venv/bin/python bench/api_fairness_bench.py --agents 200 --seconds 30 --rounds 3

Starts a real ``flotilla server`` (subprocess, temp data dir, a free loopback port,
controllers ON, default limits unless --server-arg says otherwise) with one token per
simulated agent (role ``agent``, bound to its cluster, as `flotilla up` issues them) and
one ``edit`` token for the flooder. Each agent is the real
`flotilla.agent.heartbeat.Heartbeat` renewing its Lease once a second through its own
`HttpClient` (its own connection, as separate agent processes would have; 429s are not
retried, so every refusal shows), its Cluster registered first by the admin so the
cluster-health controller judges it as a real member.

Rounds are interleaved on the same server and the same agents: a *reference* window
(agents only) and a *flood* window (the same agents, plus the flooder sending
``--flood-rate`` requests/s, by default ten times its limit, from ``--flood-workers``
connections; a worker whose answer is late skips ticks instead of bursting). Per window:
heartbeat latency p50/p99/max (request sent -> answer), the agents' 429s and other
errors, the flooder's answers by code, and how many clusters went from judged (Ready
True or False) to Ready=Unknown, i.e. the health controller missed their heartbeats for
a whole grace period (followed by an informer on Clusters). Reported: per-window lines,
then medians over rounds and the flood/reference ratios.

Goal: heartbeat p99 < 50 ms under the flood, 0 agent 429s, no cluster Unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

from flotilla.agent.heartbeat import Heartbeat
from flotilla.api.auth import AGENT, add_token, ensure_admin_token
from flotilla.api.fairness_config import FairnessConfig
from flotilla.client.base import ApiError, Object
from flotilla.client.http import HttpClient, verify_for
from flotilla.client.informer import EventHandlers, Informer
from flotilla.resources.conditions import conditions_of, find
from flotilla.resources.kinds import by_kind
from heartbeat_bench import (
    WARMUP_SECONDS,
    Sample,
    cpu_seconds,
    pct,
    register,
    server_side,
    start_server,
    syn_retransmits,
    ticking,
)

CLUSTER = by_kind("Cluster")
CLUSTERS_PATH = f"/apis/{CLUSTER.api_version}/{CLUSTER.plural}"
FLOOD_PATHS = {
    # One small object: the flooder's cost is the request, not the answer.
    "get": "/api/v1/namespaces/default/configmaps/flood",
    # Every Cluster: an expensive answer for each request let through.
    "list-clusters": CLUSTERS_PATH,
}


def issue_tokens(data_dir: Path, agents: int) -> tuple[list[str], str]:
    """One agent token per simulated cluster (role ``agent``, bound to it, named as
    `flotilla up` names them), and the flooder's ``edit`` token."""
    agent_tokens = [add_token(data_dir, f"agent-sim-{i:05}", AGENT, cluster=f"sim-{i:05}")
                    for i in range(agents)]
    return agent_tokens, add_token(data_dir, "flooder", "edit")


@dataclass
class Health:
    """Ready status per cluster, and every judged -> Unknown transition."""

    ready: dict[str, str] = field(default_factory=dict)
    went_unknown: list[tuple[float, str]] = field(default_factory=list)

    def see(self, obj: Object) -> None:
        name = str(obj["metadata"]["name"])
        cond = find(conditions_of(obj), "Ready")
        status = str(cond.get("status")) if cond else ""
        before = self.ready.get(name, "")
        if status == "Unknown" and before in ("True", "False"):
            self.went_unknown.append((time.monotonic(), name))
        self.ready[name] = status

    def handlers(self) -> EventHandlers:
        return EventHandlers(on_add=self.see, on_update=lambda _old, new: self.see(new))

    def judged(self) -> int:
        return sum(1 for s in self.ready.values() if s in ("True", "False"))


@dataclass
class Flood:
    codes: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    skipped: int = 0

    def reset(self) -> None:
        self.codes.clear()
        self.errors = self.skipped = 0


async def flood(url: str, token: str, path: str, rate: float, workers: int, stats: Flood,
                stop: asyncio.Event) -> None:
    """``rate`` requests/s from ``workers`` paced connections until ``stop``."""
    interval = workers / rate

    async def worker(http: httpx.AsyncClient) -> None:
        next_tick = time.monotonic() + interval * os.urandom(1)[0] / 256
        while not stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                stats.codes[(await http.get(path)).status_code] += 1
            except httpx.HTTPError:
                stats.errors += 1
            now = time.monotonic()
            next_tick += interval
            if next_tick < now:  # late: skip the missed ticks (no catch-up burst)
                stats.skipped += int((now - next_tick) / interval) + 1
                next_tick = now + interval

    async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
            verify=verify_for(url, None),
            limits=httpx.Limits(max_connections=workers,
                                max_keepalive_connections=workers)) as http:
        await asyncio.gather(*(worker(http) for _ in range(workers)))


def flooder_main(args: argparse.Namespace) -> None:
    """The flooder as its own process (a user's script runs on its own, and in this
    process its httpx work would delay the agents' event loop and look like server
    latency). SIGUSR1 restarts its counts (a window begins); SIGTERM ends it, and its
    counts since the last SIGUSR1 are printed as one JSON line."""
    import json

    os.nice(args.flood_nice)

    async def go() -> None:
        stats, stop = Flood(), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, stats.reset)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("flooding", flush=True)
        await flood(args.flood_url, os.environ["FLOOD_TOKEN"],
                    FLOOD_PATHS[args.flood_request], args.flood_rate, args.flood_workers,
                    stats, stop)
        print(json.dumps({"codes": stats.codes, "errors": stats.errors,
                          "skipped": stats.skipped}), flush=True)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(go())


class FlooderProcess:
    """Start, count from now, stop-and-report: the parent's side of `flooder_main`."""

    def __init__(self, url: str, token: str, args: argparse.Namespace) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--flood-url", url, "--flood-rate", str(args.flood_rate),
             "--flood-workers", str(args.flood_workers), "--flood-request", args.flood_request,
             "--flood-nice", str(args.flood_nice)],
            stdout=subprocess.PIPE, env={**os.environ, "FLOOD_TOKEN": token})

    async def started(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if line.strip() != b"flooding":
            raise SystemExit(f"the flooder did not start: {line!r}")

    def count_from_now(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    async def stop(self, into: Flood) -> None:
        import json

        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGTERM)
        out = json.loads(await asyncio.to_thread(self.proc.stdout.readline))
        await asyncio.to_thread(self.proc.wait, 15)
        into.codes.update({int(k): v for k, v in out["codes"].items()})
        into.errors, into.skipped = out["errors"], out["skipped"]


@dataclass
class Window:
    label: str
    seconds: float
    done: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    agent_429: int
    agent_other_errors: int
    went_unknown: int
    flood_codes: dict[int, int]
    flood_errors: int
    flood_skipped: int
    server_cpu: float
    bench_cpu: float
    #: Lease updates as the server timed them (its /metrics histogram): mean.
    server_mean_ms: float = float("nan")

    def line(self) -> str:
        codes = " ".join(f"{c}:{n}" for c, n in sorted(self.flood_codes.items())) or "-"
        sent = sum(self.flood_codes.values())
        return (f"{self.label:<9} heartbeats={self.done:<6} p50={self.p50_ms:6.1f} ms"
                f"  p99={self.p99_ms:6.1f} ms  max={self.max_ms:7.1f} ms"
                f"  agent 429={self.agent_429} other errors={self.agent_other_errors}"
                f"  went Unknown={self.went_unknown}"
                f"  flooder answers={sent} ({sent / self.seconds:.0f}/s; {codes};"
                f" errors {self.flood_errors}, skipped ticks {self.flood_skipped})"
                f"  server-timed lease update mean={self.server_mean_ms:.1f} ms"
                f"  server CPU={self.server_cpu:4.0%}  bench CPU={self.bench_cpu:4.0%}"
                f"  load={os.getloadavg()[0]:.1f}")


class Agent:
    """A heartbeat whose refusals are sorted: 429 (what fairness must prevent) or other."""

    def __init__(self, client: HttpClient, cluster: str) -> None:
        self.beat = Heartbeat(client, cluster, 1.0)
        self.refused = 0
        self.other = 0

    async def renew(self) -> None:
        try:
            await self.beat.renew_once()
        except ApiError as exc:
            if exc.status == 429:
                self.refused += 1
            else:
                self.other += 1
            raise


async def window(label: str, seconds: float, sample: Sample, agents: list[Agent],
                 health: Health, flooder: FlooderProcess | None, server_pid: int,
                 metrics: HttpClient) -> Window:
    stats = Flood()
    m0 = await server_side(metrics)
    sample.reset()
    for a in agents:
        a.refused = a.other = 0
    unknown0 = len(health.went_unknown)
    if flooder is not None:
        flooder.count_from_now()
    t0, s0, c0 = time.monotonic(), cpu_seconds(server_pid), time.process_time()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    server_cpu, bench_cpu = (cpu_seconds(server_pid) - s0) / wall, \
        (time.process_time() - c0) / wall
    count, total, _fast = (b - a for a, b in zip(m0, await server_side(metrics), strict=True))
    if flooder is not None:
        await flooder.stop(stats)
    lat = list(sample.latencies)
    return Window(label, wall, len(lat), pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3,
                  max(lat, default=float("nan")) * 1e3, sum(a.refused for a in agents),
                  sum(a.other for a in agents), len(health.went_unknown) - unknown0,
                  dict(stats.codes), stats.errors, stats.skipped, server_cpu, bench_cpu,
                  total / count * 1e3 if count else float("nan"))


async def run(url: str, admin_token: str, agent_tokens: list[str], flood_token: str,
              server_pid: int, args: argparse.Namespace) -> list[Window]:
    n = len(agent_tokens)
    async with HttpClient(url, admin_token) as admin:
        await admin.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "flood", "namespace": "default"},
                            "data": {"k": "v"}})
        for lo in range(0, n, 50):
            await asyncio.gather(*(register(admin, f"sim-{i:05}")
                                   for i in range(lo, min(lo + 50, n))))
        health = Health()
        clusters = Informer(admin, CLUSTER)
        clusters.add_handler(health.handlers())
        following = asyncio.create_task(clusters.run())
        clients = [HttpClient(url, t, rate_limit_retries=0) for t in agent_tokens]
        agents = [Agent(c, f"sim-{i:05}") for i, c in enumerate(clients)]
        stop, sample = asyncio.Event(), Sample()
        beats = [asyncio.create_task(ticking(a.renew, 1.0, sample, stop)) for a in agents]
        windows: list[Window] = []
        try:
            deadline = time.monotonic() + 60
            while health.judged() < n and time.monotonic() < deadline:
                await asyncio.sleep(0.5)  # until every cluster was judged once
            print(f"{health.judged()}/{n} clusters judged by the health controller",
                  flush=True)
            await asyncio.sleep(WARMUP_SECONDS)
            for r in range(args.rounds):
                order = ("reference", "flood") if r % 2 == 0 else ("flood", "reference")
                for label in order:
                    flooder = None
                    if label == "flood":
                        flooder = FlooderProcess(url, flood_token, args)
                        await flooder.started()
                        await asyncio.sleep(1.0)  # the flood reaches its rate
                    try:
                        w = await window(label, args.seconds, sample, agents, health,
                                         flooder, server_pid, admin)
                    finally:
                        if flooder is not None and flooder.proc.poll() is None:
                            flooder.proc.kill()  # only if it did not report and exit
                    if flooder is not None:
                        await asyncio.sleep(2.0)  # settle before the next window
                    print(f"round {r + 1}: {w.line()}", flush=True)
                    windows.append(w)
        finally:
            stop.set()
            await asyncio.gather(*beats, return_exceptions=True)
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            for c in clients:
                await c.close()
        return windows


def summary(windows: list[Window], p99_goal: float) -> None:
    def med(label: str, attr: str) -> float:
        return float(statistics.median(getattr(w, attr) for w in windows if w.label == label))

    print("\nmedians over rounds:")
    for label in ("reference", "flood"):
        mine = [w for w in windows if w.label == label]
        print(f"  {label:<9} p50={med(label, 'p50_ms'):6.1f} ms  p99={med(label, 'p99_ms'):6.1f}"
              f" ms  agent 429s (sum)={sum(w.agent_429 for w in mine)}"
              f"  other agent errors (sum)={sum(w.agent_other_errors for w in mine)}"
              f"  went Unknown (sum)={sum(w.went_unknown for w in mine)}"
              f"  server-timed mean={med(label, 'server_mean_ms'):.1f} ms"
              f"  server CPU={med(label, 'server_cpu'):4.0%}")
    floods = [w for w in windows if w.label == "flood"]
    ok = sum(w.flood_codes.get(200, 0) for w in floods)
    refused = sum(w.flood_codes.get(429, 0) for w in floods)
    secs = sum(w.seconds for w in floods)
    print(f"  flooder: {ok} answered 200 ({ok / secs:.1f}/s), {refused} answered 429"
          f" ({refused / secs:.0f}/s)")
    p50r, p99r = med("flood", "p50_ms") / med("reference", "p50_ms"), \
        med("flood", "p99_ms") / med("reference", "p99_ms")
    print(f"  flood / reference: p50 x{p50r:.2f}, p99 x{p99r:.2f}")
    good = (med("flood", "p99_ms") < p99_goal and not any(w.agent_429 for w in windows)
            and not any(w.went_unknown for w in windows))
    print(f"goal (flood p99 < {p99_goal:g} ms, 0 agent 429s, no cluster Unknown): "
          f"{'MET' if good else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="Seconds per window.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Interleaved (reference, flood) pairs.")
    parser.add_argument("--flood-rate", type=float,
                        default=10 * FairnessConfig().user_rate,
                        help="Requests/s the flooder sends (default: 10x the user limit).")
    parser.add_argument("--flood-workers", type=int, default=50,
                        help="Connections the flooder sends them from.")
    parser.add_argument("--flood-request", choices=sorted(FLOOD_PATHS), default="get")
    parser.add_argument("--flood-nice", type=int, default=0,
                        help="Niceness of the flooder process. On this one machine its CPU "
                             "is taken from the server's cores (a user's script elsewhere "
                             "would not); a positive value softens that, but on a loaded "
                             "machine a niced flooder no longer reaches its rate.")
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="Hard bound on the whole run.")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="Extra `flotilla server` argument (repeatable), e.g. "
                             "--server-arg=--user-rate=50.")
    parser.add_argument("--flood-url", help=argparse.SUPPRESS)  # the flooder process
    args = parser.parse_args()
    if args.flood_url:
        flooder_main(args)
        return
    if args.agents < 1 or args.rounds < 1 or args.seconds <= 0 or args.flood_rate <= 0:
        parser.error("--agents, --rounds, --seconds and --flood-rate must be positive")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start;"
          f" command: {' '.join(sys.argv)}", flush=True)
    syn = syn_retransmits()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir(mode=0o700)
        admin_token = ensure_admin_token(data_dir) or ""
        agent_tokens, flood_token = issue_tokens(data_dir, args.agents)
        proc, url = start_server(data_dir, *args.server_arg)
        print(f"server pid {proc.pid} at {url}", flush=True)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                windows = runner.run(asyncio.wait_for(
                    run(url, admin_token, agent_tokens, flood_token, proc.pid, args),
                    args.max_seconds))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
    summary(windows, args.p99_ms)
    print(f"SYN retransmits during the run (whole machine): {syn_retransmits() - syn}")


if __name__ == "__main__":
    main()
