"""A `flotilla up` with a gateway, the shop app and a bounded load through the gateway:
what the failover tests assert on (requests, processes, bindings, Events)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port
from tests.up.harness import (
    SHOP_APP,
    Api,
    UpProcess,
    environ_of,
    proc_table,
    started_by_this_run,
)

ADDRESS = "127.0.231.{}"
CLUSTERS: list[dict[str, Any]] = [
    {"name": "f-east", "region": "cn-east", "zone": "cn-east-a", "address": ADDRESS.format(1),
     "nodes": 2},
    {"name": "f-south", "region": "cn-south", "zone": "cn-south-a",
     "address": ADDRESS.format(2), "nodes": 2},
    {"name": "f-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": ADDRESS.format(3), "labels": {"flotilla.io/burst": "true"}, "nodes": 2},
]
NAMES = frozenset(str(c["name"]) for c in CLUSTERS)
HOST = "shop.example.test"


def pods_of(app: str, clusters: frozenset[str] = NAMES) -> Counter[str]:
    """Live (not stopped, not zombie) pods of deployment ``app`` per cluster of
    ``clusters``, from the process table: what "nothing runs twice" is checked against."""
    out: Counter[str] = Counter()
    for pid, _pgid, state, cmd in proc_table():
        if state in ("Z", "T", "t") or SHOP_APP not in cmd:
            continue
        env = environ_of(pid)
        cluster = env.get("CLUSTER_NAME", "")
        # Only our clusters: other tests on the machine run shop pods too.
        if cluster in clusters and env.get("POD_NAME", "").startswith(f"{app}-") and \
                started_by_this_run(pid):
            out[cluster] += 1
    return out


def manifests(name: str, replicas: int, policy: dict[str, Any],
              extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A shop Deployment + Service + PropagationPolicy named ``name``."""
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1,
             "failureThreshold": 2}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                   "name": "shop", "image": "shop",
                                   "command": [sys.executable, "-u", SHOP_APP],
                                   "ports": [{"name": "http", "containerPort": 8080}],
                                   "readinessProbe": probe}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"selector": {"app": name},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"resourceSelectors": [
             {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
             {"apiVersion": "v1", "kind": "Service", "name": name}], **policy}},
        *(extra or []),
    ]


def traffic_policy(name: str, host: str) -> dict[str, Any]:
    return {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"service": name, "hosts": [host], "strategy": {"type": "RoundRobin"},
                     "healthCheck": {"path": "/healthz", "interval": "1s",
                                     "timeout": "500ms", "healthyThreshold": 1,
                                     "unhealthyThreshold": 1},
                     # GETs are idempotent: a hung cluster's timeout is retried too.
                     "retries": {"attempts": 3, "retryOn": ["connect-failure", "reset",
                                                            "timeout", "gateway-error"]},
                     # Generous for a loaded 2-core machine: a slow answer is not what
                     # these tests are about, a lost one is.
                     "timeouts": {"connect": "500ms", "perTry": "1s", "total": "6s"}}}


@dataclass
class Load:
    """A bounded GET loop through the gateway in a thread (``rate`` req/s, at most
    ``limit`` seconds): counts answers per cluster and failures."""

    url: str
    host: str
    rate: float = 20.0
    limit: float = 120.0
    ok: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    last_seen: dict[str, float] = field(default_factory=dict)
    #: (when answered, cluster, seconds the request took), in order
    answers: list[tuple[float, str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        with httpx.Client(timeout=10.0, headers={"Host": self.host}) as client:
            while not self._stop.is_set() and time.monotonic() < end:
                try:
                    started = time.monotonic()
                    r = client.get(self.url)
                    if r.status_code == 200:
                        cluster = str(r.json().get("cluster"))
                        self.ok[cluster] += 1
                        self.last_seen[cluster] = now = time.monotonic()
                        self.answers.append((now, cluster, now - started))
                    else:
                        self.failed.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                self._stop.wait(1.0 / self.rate)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def total(self) -> int:
        return sum(self.ok.values()) + len(self.failed)


class FailoverUp(UpProcess):
    """`flotilla up` with three clusters and a gateway, in ``folder``."""

    def __init__(self, folder: Path, grace: float = 2.0,
                 extra: tuple[str, ...] = (),
                 clusters: list[dict[str, Any]] | None = None) -> None:
        gateway = f"{ADDRESS.format(100)}:{free_port(ADDRESS.format(100))}"
        super().__init__(folder, CLUSTERS if clusters is None else clusters, grace,
                         gateway=gateway, extra=extra)

    def apply(self, objects: list[dict[str, Any]], name: str) -> None:
        result = self.apply_result(objects, name)
        assert result.returncode == 0, result.stderr + result.stdout

    def apply_result(self, objects: list[dict[str, Any]], name: str
                     ) -> subprocess.CompletedProcess[str]:
        path = self.folder / f"{name}.yaml"
        path.write_text("\n---\n".join(json.dumps(o) for o in objects))
        return self.cli("apply", "-f", str(path), check=False)


def binding(api: Api, name: str) -> dict[str, Any]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       f"resourcebindings/{name}-deployment")
    return dict(r.json()) if r.status_code == 200 else {}


def placed(api: Api, name: str) -> dict[str, int]:
    return {t["name"]: t["replicas"] for t in binding(api, name).get("spec", {})
            .get("clusters") or []}


def condition(api: Api, name: str, kind: str) -> dict[str, Any]:
    for c in binding(api, name).get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def event_reasons(api: Api, name: str) -> list[str]:
    r = api.client.get("/api/v1/namespaces/default/events")
    items = r.json().get("items") or []
    return [str(e.get("reason")) for e in items
            if (e.get("involvedObject") or {}).get("name") == f"{name}-deployment"]


def ready_on(api: Api, name: str) -> dict[str, int]:
    """Ready replicas per cluster, as the agents report them on the binding."""
    out = {}
    for item in binding(api, name).get("status", {}).get("aggregatedStatus") or []:
        out[item["clusterName"]] = int((item.get("status") or {}).get("readyReplicas") or 0)
    return out


def binding_tasks(api: Api, name: str) -> list[dict[str, Any]]:
    return list(binding(api, name).get("spec", {}).get("gracefulEvictionTasks") or [])


def shop_nodes(cluster: str) -> set[str]:
    """The nodes the shop's live pods run on in ``cluster``."""
    out = set()
    for pid, _pgid, state, cmd in proc_table():
        if state in ("Z", "T", "t") or SHOP_APP not in cmd:
            continue
        env = environ_of(pid)
        if env.get("CLUSTER_NAME") == cluster and env.get("POD_NAME", "").startswith("shop-"):
            out.add(env.get("NODE_NAME", "?"))
    return out
