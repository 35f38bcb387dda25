"""Failover benchmark: what users notice of a failover (errors, latency) under a steady
load through the gateway while the cluster serving most of it is killed, then (after it
is back) paused.

    .venv/bin/python bench/failover_bench.py [--rate 300] [--window 25]
    sudo .venv/bin/python bench/failover_bench.py --netns   # the three partitions instead

Starts `flotilla up --demo` (three clusters, the shop example, a gateway) in a temp
folder on free loopback ports, sends GETs at a fixed ``--rate`` through the gateway
(bounded: at most ``--window`` seconds per scenario), and for each of kill-cluster and
pause-cluster reports (the demo's FederatedHPA held at the shop's 6, which the load
would otherwise exceed: `Plane.pin_autoscaler`):

  failed      client requests that did not get a 200 (goal 0)
  last-try    seconds from the failure to the last upstream try the gateway sent to the
              dead cluster, from its metrics scraped every 100 ms (goal < 1 s)
  last-answer seconds from the failure to the last answer the client got from it
  rebuilt     seconds from the failure until the template's ready replicas (reachable
              clusters only) are back to desired (< 10 s with the defaults)
  surplus     most shop processes above desired on live clusters, sampled after
              convergence (goal 0)
  check_failures_elsewhere
              failed active health checks on the clusters not failed (flapping; goal 0),
              for comparing ``--health-check`` settings

With ``--netns`` (root; docs/netns.md) the scenarios are the three cuts of
`chaos partition-cluster` instead (the whole link, ``--control-plane``,
``--data-plane``), each healed after its window; ``rebuilt`` is left out for the
data-plane cut (nothing moves: the demo has no application failover), which reports
``unreachable`` instead: seconds until the Cluster's TrafficReachable condition, fed by
the gateway's report, turns False; ``surplus`` counts every cluster's shop pods once the
heal converged (the cut cluster's kept running).

Everything started is stopped at the end (SIGTERM to `flotilla up`, which stops its
process groups). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flotilla.client.http import verify_for

ROOT = Path(__file__).resolve().parents[1]
SHOP_APP = str(ROOT / "examples" / "shop" / "app.py")
HOST = "shop.example.test"
DESIRED = 6
FHPA = "/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/federatedhpas/shop"
#: the demo manifest's bound that `Plane.pin_autoscaler` lowers to DESIRED
DEMO_MAX_REPLICAS = "maxReplicas: 12"
FLOTILLA = [sys.executable, "-m", "flotilla"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shop_processes(clusters: set[str]) -> int:
    """Live (not stopped) shop pods of ``clusters``, from /proc."""
    n = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "T") or SHOP_APP.encode() not in cmd:
            continue
        fields = dict(item.partition(b"=")[::2] for item in env.split(b"\0") if item)
        if fields.get(b"CLUSTER_NAME", b"").decode() in clusters:
            n += 1
    return n


@dataclass
class Load:
    url: str
    rate: float
    sent: int = 0
    failed: int = 0
    last_from: dict[str, float] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    #: (when, cluster) of every answer, to find who serves most right now
    answers: list[tuple[float, str]] = field(default_factory=list)
    elapsed: float = 0.0
    #: failed requests by what went wrong ("HTTP 504", "ConnectError", ...)
    errors: dict[str, int] = field(default_factory=dict)
    #: (when, SHOP_VERSION) of every answer, for a rollout's share of the new version
    versions: list[tuple[float, str]] = field(default_factory=list)
    #: (when, why) of every failed request
    failures: list[tuple[float, str]] = field(default_factory=list)

    async def run(self, seconds: float, limit: int | None = None,
                  stop: asyncio.Event | None = None) -> None:
        """Fixed-rate GETs for ``seconds`` (open loop: a slow answer does not slow the
        schedule), at most 256 in flight; sooner after ``limit`` requests or once
        ``stop`` is set."""
        gate = asyncio.Semaphore(256)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=10.0, limits=limits,
                                     headers={"Host": HOST}) as client:
            start = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            while (now := time.monotonic()) - start < seconds:
                if (limit is not None and self.sent >= limit) or (stop and stop.is_set()):
                    break
                due = start + self.sent / self.rate
                if due > now:
                    await asyncio.sleep(due - now)
                await gate.acquire()
                self.sent += 1
                task = asyncio.create_task(self._one(client, gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            self.elapsed = time.monotonic() - start

    def top_recent(self, seconds: float) -> str:
        """The cluster that answered most in the last ``seconds``."""
        since = time.monotonic() - seconds
        counts: dict[str, int] = {}
        for when, cluster in reversed(self.answers):
            if when < since:
                break
            counts[cluster] = counts.get(cluster, 0) + 1
        return max(counts, key=lambda c: counts[c])

    async def _one(self, client: httpx.AsyncClient, gate: asyncio.Semaphore) -> None:
        try:
            r = await client.get(self.url)
            if r.status_code != 200:
                self._fail(f"HTTP {r.status_code}")
                return
            body = r.json()
            cluster = str(body.get("cluster"))
            self.last_from[cluster] = time.monotonic()
            self.answers.append((self.last_from[cluster], cluster))
            self.served[cluster] = self.served.get(cluster, 0) + 1
            self.versions.append((self.last_from[cluster], str(body.get("version"))))
        except (httpx.HTTPError, ValueError) as exc:
            self._fail(type(exc).__name__)
        finally:
            gate.release()

    def _fail(self, why: str) -> None:
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1
        self.failures.append((time.monotonic(), why))


class Plane:
    def __init__(self, folder: Path, netns: bool = False) -> None:
        self.folder = folder
        self.data_dir = folder / ".flotilla"
        self.gateway = f"127.0.0.1:{free_port()}"
        self.gateway_admin = f"127.0.0.1:{free_port()}"
        self.log = open(folder / "up.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*FLOTILLA, "up", "--demo", "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{free_port()}", "--gateway-listen", self.gateway,
             "--gateway-admin-listen", self.gateway_admin, "--dns-listen", "",
             "--dns-admin-listen", "", *(["--netns"] if netns else [])],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.api: httpx.Client | None = None

    def wait(self, what: str, check: object, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if callable(check) and check():
                return time.monotonic() - start
            if self.proc.poll() is not None:
                raise SystemExit(f"flotilla up exited:\n{(self.folder / 'up.out').read_text()}")
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}")

    def start(self) -> None:
        up = self.data_dir / "up.json"
        self.wait("up.json", up.exists, 90)
        state = json.loads(up.read_text())
        self.api = httpx.Client(base_url=state["server"], timeout=5.0,
                                verify=verify_for(state["server"], Path(state["ca"])),
                                headers={"Authorization": f"Bearer {state['token']}"})
        self.wait("shop ready", lambda: self.ready() == DESIRED, 90)
        self.pin_autoscaler()

    def deployment(self) -> dict[str, Any]:
        """The shop Deployment, or {} while the API does not answer yet: `up` writes
        up.json (server, token, CA) before the HTTPS server listens."""
        assert self.api is not None
        try:
            r = self.api.get("/apis/apps/v1/namespaces/default/deployments/shop")
        except httpx.TransportError:
            return {}
        return dict(r.json()) if r.status_code == 200 else {}

    def ready(self) -> int:
        return int((self.deployment().get("status") or {}).get("readyReplicas") or 0)

    def pin_autoscaler(self) -> None:
        """Hold the demo's FederatedHPA at the shop's 6 (maxReplicas = minReplicas): the
        load here (300 req/s by default) is above its 25 req/s a replica, and these
        figures are about failover and rollout at the demo's size, not autoscaling."""
        assert self.api is not None
        r = self.api.patch(FHPA, content=json.dumps({"spec": {"maxReplicas": DESIRED}}),
                           headers={"Content-Type": "application/merge-patch+json"})
        r.raise_for_status()

    def retry_timeouts(self) -> None:
        """Let the shop's TrafficPolicy retry a GET that timed out (idempotent): what a
        hung cluster needs, since its sockets accept and never answer."""
        assert self.api is not None
        url = "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/trafficpolicies/shop"
        policy = self.api.get(url).json()
        retries = policy["spec"].setdefault("retries", {})
        retries["retryOn"] = sorted({*retries.get("retryOn", []), "timeout"})
        policy["spec"].setdefault("timeouts", {})["perTry"] = "700ms"
        r = self.api.put(url, json=policy)
        r.raise_for_status()

    def traffic_reachable(self, cluster: str) -> str:
        """The Cluster's TrafficReachable status ("" while it has none)."""
        assert self.api is not None
        try:
            r = self.api.get(f"/apis/cluster.flotilla.io/v1alpha1/clusters/{cluster}")
        except httpx.TransportError:
            return ""
        for c in ((r.json() if r.status_code == 200 else {}).get("status") or {}) \
                .get("conditions") or []:
            if c.get("type") == "TrafficReachable":
                return str(c.get("status"))
        return ""

    def health_check(self, spec: str) -> None:
        """``INTERVAL,TIMEOUT,UNHEALTHY`` (e.g. ``250ms,200ms,2``) as the shop
        TrafficPolicy's active health check: how fast a cut is seen, against flapping."""
        assert self.api is not None
        interval, timeout, unhealthy = spec.split(",")
        url = "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/trafficpolicies/shop"
        policy = self.api.get(url).json()
        policy["spec"].setdefault("healthCheck", {}).update(
            interval=interval, timeout=timeout, unhealthyThreshold=int(unhealthy))
        r = self.api.put(url, json=policy)
        r.raise_for_status()

    def clusters(self) -> list[str]:
        state = json.loads((self.data_dir / "up.json").read_text())
        return [str(c["name"]) for c in state["clusters"]]

    def chaos(self, action: str, cluster: str, *flags: str) -> None:
        subprocess.run([*FLOTILLA, "chaos", action, cluster, *flags,
                        "--data-dir", str(self.data_dir)],
                       cwd=ROOT, check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.log.close()


CHECK_FAILURES = re.compile(r'^flotilla_gateway_health_checks_total\{[^}]*cluster="([^"]+)"'
                            r'[^}]*result="failure"[^}]*\} ([0-9.e+]+)$', re.M)


def check_failures(admin: str) -> dict[str, float]:
    """Failed active health checks per cluster so far (the gateway's counters)."""
    try:
        text = httpx.get(f"http://{admin}/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for cluster, value in CHECK_FAILURES.findall(text):
        out[cluster] = out.get(cluster, 0.0) + float(value)
    return out


TRIES = re.compile(r'^flotilla_gateway_(?:requests|errors)_total\{[^}]*cluster="([^"]+)"'
                   r'[^}]*\} ([0-9.e+]+)$', re.M)


async def watch_tries(admin: str, victim: str, until: asyncio.Event) -> float | None:
    """Scrape the gateway's metrics every 100 ms; return the monotonic time the upstream
    tries (answered or failed) sent to ``victim`` last grew."""
    last: float | None = None
    seen = -1.0
    async with httpx.AsyncClient(timeout=2.0) as client:
        while not until.is_set():
            try:
                text = (await client.get(f"http://{admin}/metrics")).text
                total = sum(float(v) for c, v in TRIES.findall(text) if c == victim)
                if total > seen:
                    if seen >= 0:
                        last = time.monotonic()
                    seen = total
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    return last


def scenario(plane: Plane, action: str, rate: float, window: float,
             *flags: str) -> dict[str, object]:
    load = Load(f"http://{plane.gateway}/", rate)
    result: dict[str, object] = {"scenario": " ".join([action, *flags])}
    partition = action == "partition-cluster"

    async def drive() -> None:
        runner = asyncio.create_task(load.run(window))
        await asyncio.sleep(5)  # warm-up traffic before the failure (bounded)
        victim = load.top_recent(2.0)
        result["victim"] = victim
        checks_before = check_failures(plane.gateway_admin)
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(watch_tries(plane.gateway_admin, victim, stop_watch))
        await asyncio.to_thread(plane.chaos, action, victim, *flags)
        # The signal is sent just before the chaos command returns; its own start-up
        # (a Python process, ~1 s here) is not part of the failover.
        failed_at = time.monotonic()
        live = set(plane.clusters()) - {victim}

        def rebuilt() -> bool:
            per = (plane.deployment().get("status") or {}).get("clusters") or []
            return sum(int(c.get("readyReplicas") or 0) for c in per
                       if c.get("name") in live and c.get("reachable")) >= DESIRED
        if "--data-plane" not in flags:  # a data-plane cut moves nothing
            took = await asyncio.to_thread(plane.wait, "rebuilt", rebuilt, window)
            result["rebuilt_s"] = round(took, 2)
        else:  # ... but the control plane sees it
            took = await asyncio.to_thread(
                plane.wait, "TrafficReachable=False",
                lambda: plane.traffic_reachable(victim) == "False", window)
            result["unreachable_s"] = round(took, 2)
        if partition:
            await runner
            await asyncio.to_thread(plane.chaos, "heal-cluster", victim)
            live = set(plane.clusters())  # the cut cluster's pods ran on

            def converged() -> bool:
                status = plane.deployment().get("status") or {}
                return plane.ready() == DESIRED and shop_processes(live) == DESIRED \
                    and all(c.get("reachable") for c in status.get("clusters") or [])
            await asyncio.to_thread(plane.wait, "converged after the heal", converged, 90)
        surplus = 0
        for _ in range(20):  # ~2 s of samples after convergence
            surplus = max(surplus, shop_processes(live) - DESIRED)
            await asyncio.sleep(0.1)
        result["surplus"] = surplus
        if not partition:
            await runner
        stop_watch.set()
        last_try = await watcher
        last = load.last_from.get(victim)
        result["last_answer_s"] = round(max(0.0, last - failed_at), 2) if last else 0.0
        result["last_try_s"] = round(max(0.0, last_try - failed_at), 2) if last_try else 0.0
        # Flapping: health checks that failed on the clusters nobody cut.
        checks_after = check_failures(plane.gateway_admin)
        result["check_failures_elsewhere"] = int(sum(
            v - checks_before.get(c, 0.0) for c, v in checks_after.items() if c != victim))

    asyncio.run(drive())
    result.update(sent=load.sent, failed=load.failed, errors=load.errors, served=load.served,
                  achieved_rps=round(load.sent / max(load.elapsed, 1e-9), 1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="GETs per second")
    parser.add_argument("--window", type=float, default=25.0,
                        help="seconds of load per scenario (bounded)")
    parser.add_argument("--retry-timeouts", action="store_true",
                        help="add 'timeout' to the shop TrafficPolicy's retryOn "
                             "(perTry 700ms) before the load")
    parser.add_argument("--netns", action="store_true",
                        help="root: 'flotilla up --netns' and the three partitions")
    parser.add_argument("--health-check", metavar="INTERVAL,TIMEOUT,UNHEALTHY",
                        help="set the shop TrafficPolicy's active health check first, "
                             "e.g. 250ms,200ms,2 (default: the demo's 500ms,250ms,2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flotilla-failover-bench-") as tmp:
        plane = Plane(Path(tmp), netns=args.netns)
        try:
            plane.start()
            if args.retry_timeouts:
                plane.retry_timeouts()
            if args.health_check:
                plane.health_check(args.health_check)
            if args.netns:
                results = [scenario(plane, "partition-cluster", args.rate, args.window,
                                    *flags)
                           for flags in ((), ("--control-plane",), ("--data-plane",))]
                return _print(results)
            results = [scenario(plane, "kill-cluster", args.rate, args.window)]
            victim = str(results[0]["victim"])
            plane.chaos("revive-cluster", victim)
            plane.wait("recovered", lambda: plane.ready() == DESIRED, 60)
            results.append(scenario(plane, "pause-cluster", args.rate, args.window))
            plane.chaos("resume-cluster", str(results[1]["victim"]))
        finally:
            plane.stop()
    _print(results)


def _print(results: list[dict[str, object]]) -> None:
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
