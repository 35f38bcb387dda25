"""A control plane the rollout tests can restart: `flotilla server`, three agents and a
gateway as separate process groups (``flotilla up`` stops everything when its server
dies, so it cannot show a restart), plus a bounded load through the gateway that notes
which cluster and version answered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flotilla.api.auth import add_token
from flotilla.pki import PkiLayout, ensure_ca
from tests.helpers import agent_tls_args, free_port, wait_for_sync
from tests.up.harness import FLOTILLA, SHOP_APP, Api

CLUSTERS = [("r-east", "cn-east", "127.0.161.1"), ("r-south", "cn-south", "127.0.162.1"),
            ("r-west", "cn-west", "127.0.163.1")]
NAMES = [c[0] for c in CLUSTERS]
HOST = "shop.rollout.test"


def deployment(version: str, fail_rate: float | str = 0.0, ready_path: str = "/healthz"
               ) -> dict[str, Any]:
    """The shop at ``version``; a ``fail_rate`` that is not a number makes it exit at
    start (a version that never starts)."""
    env = [{"name": "SHOP_VERSION", "value": version}]
    if fail_rate:
        env.append({"name": "SHOP_FAIL_RATE", "value": str(fail_rate)})
    probe = {"httpGet": {"path": ready_path, "port": "http"}, "periodSeconds": 1,
             "failureThreshold": 2}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": "shop"}},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{
                                               "name": "shop", "image": "shop",
                                               "command": [sys.executable, "-u", SHOP_APP],
                                               "env": env,
                                               "ports": [{"name": "http",
                                                          "containerPort": 8080}],
                                               "readinessProbe": probe}]}}}}


WAVES: list[dict[str, Any]] = [{"clusters": ["r-east"]}, {"percent": 60}, {"percent": 100}]


def rollout_policy(pause: str = "1s", ready_timeout: str = "40s",
                   waves: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps.flotilla.io/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"selector": {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": "shop"},
                     "waves": waves if waves is not None else WAVES,
                     "pause": pause,
                     "analysis": {"interval": "2s", "minRequests": 10, "maxErrorRate": 0.05,
                                  "maxP99Latency": "500ms", "readyTimeout": ready_timeout},
                     "autoRollback": True}}


def base_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"selector": {"app": "shop"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"resourceSelectors": [
             {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
             {"apiVersion": "v1", "kind": "Service", "name": "shop"}],
             "placement": {"clusterAffinity": {"clusterNames": NAMES},
                           "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}}},
        {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"service": "shop", "hosts": [HOST], "strategy": {"type": "RoundRobin"},
                  "healthCheck": {"path": "/healthz", "interval": "1s", "timeout": "500ms",
                                  "healthyThreshold": 1, "unhealthyThreshold": 1},
                  # a 500 is not retried: the canary's failures must reach the gate
                  "retries": {"attempts": 3, "retryOn": ["connect-failure", "reset", "503"]},
                  "timeouts": {"connect": "300ms", "perTry": "2s", "total": "4s"}}},
    ]


@dataclass
class Load:
    """GETs through the gateway at ``rate``/s for at most ``limit`` s, in a thread."""

    url: str
    rate: float = 30.0
    limit: float = 150.0
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        with httpx.Client(timeout=5.0, headers={"Host": HOST}) as client:
            while not self._stop.is_set() and time.monotonic() < end:
                try:
                    r = client.get(self.url)
                    if r.status_code == 200:
                        body = r.json()
                        self.answers[(str(body["cluster"]), str(body["version"]))] += 1
                    else:
                        who = r.headers.get("x-flotilla-cluster", "?")
                        self.failed.append(f"HTTP {r.status_code} {r.text[:60]!r} from {who}")
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                self._stop.wait(1.0 / self.rate)

    def served(self) -> int:
        return sum(self.answers.values())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failed)


class Plane:
    """Server, agents and gateway, each its own process group, all stopped by `stop`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.token = add_token(self.data, "rollout-test")
        self.server_url = f"https://127.0.0.1:{free_port()}"
        # The CA first (as `flotilla init` would), so clients can be built before the
        # server starts; the server issues its pair from it.
        self.ca = PkiLayout(self.data).ca_cert
        ensure_ca(PkiLayout(self.data).pki_dir)
        self.gateway = f"127.0.160.1:{free_port('127.0.160.1')}"
        self.metrics = f"127.0.160.1:{free_port('127.0.160.1')}"
        self.env = {**os.environ, "FLOTILLA_GATEWAY_METRICS": f"http://{self.metrics}/metrics",
                    "FLOTILLA_SERVER": self.server_url, "FLOTILLA_TOKEN": self.token,
                    "FLOTILLA_CA_FILE": str(self.ca)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api = Api(self.server_url, self.token, self.ca)

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - child owns it
        try:
            self.procs[name] = subprocess.Popen(
                [*FLOTILLA, *args], cwd=self.folder, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def start_server(self) -> None:
        self._start("server", "server", "--data-dir", str(self.data), "--listen",
                    self.server_url.removeprefix("https://"), "--cluster-grace-period", "5")

        def ready() -> bool:
            assert self.procs["server"].poll() is None, self.log("server")
            try:
                return httpx.get(f"{self.server_url}/readyz", timeout=1,
                                 verify=self.api.verify).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for_sync(ready, 30, what="the API server")

    def start(self) -> None:
        self.start_server()
        for name, region, address in CLUSTERS:
            self._start(f"agent-{name}", "agent", "--server", self.server_url, "--token",
                        self.token, "--cluster", name, "--region", region, "--zone",
                        f"{region}-a", "--nodes", "1", "--address", address, "--state-dir",
                        str(self.folder / name), "--heartbeat-interval", "1",
                        "--admin-listen", f"{address}:0",
                        *agent_tls_args(self.data, name, address))
        self._start("gateway", "gateway", "--server", self.server_url, "--token", self.token,
                    "--listen", self.gateway, "--region", "cn-east",
                    "--admin-listen", self.metrics)
        for name in NAMES:
            wait_for_sync(lambda n=name: self.api.ready(n) == "True",  # type: ignore[misc]
                          60, what=f"cluster {name} Ready")

    def gateway_serves_every_cluster(self) -> bool:
        seen = set()
        with httpx.Client(timeout=2.0, headers={"Host": HOST}) as client:
            for _ in range(3 * len(NAMES)):
                try:
                    r = client.get(f"http://{self.gateway}/")
                except httpx.HTTPError:
                    return False
                if r.status_code != 200:
                    return False
                seen.add(r.json()["cluster"])
        return seen == set(NAMES)

    def restart_server(self) -> None:
        server = self.procs.pop("server")
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        self.start_server()

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FLOTILLA, *args], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def apply(self, objects: list[dict[str, Any]], name: str = "objects") -> None:
        path = self.folder / f"{name}.yaml"
        path.write_text("\n---\n".join(json.dumps(o) for o in objects))
        result = self.cli("apply", "-f", str(path))
        assert result.returncode == 0, result.stderr + result.stdout

    def binding(self) -> dict[str, Any]:
        r = self.api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                                "resourcebindings/shop-deployment")
        return dict(r.json()) if r.status_code == 200 else {}

    def annotation(self, key: str) -> Any:
        text = (self.binding().get("metadata", {}).get("annotations") or {}).get(key)
        return json.loads(text) if text else None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
