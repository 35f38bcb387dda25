"""FederatedHPA end to end: a real `flotilla up` (two core clusters holding 6 replicas
between them, one burst cluster), the shop app behind the gateway, a bounded load of
~200 req/s through the gateway. The autoscaler must grow the app to >= 8 replicas
within 60 s with the burst cluster taking the overflow and serving, then shrink it back
to 2 after the (short) stabilisation window with the burst cluster emptied first; not
one request may fail on the way up or down. Then the same on CPU: the shop app burning
CPU per request, measured from /proc by the agents; and a CronFederatedHPA raising the
shop's minimum on a schedule, before any traffic, then letting it go."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, wait_for_sync
from tests.up.harness import SHOP_APP, Api, UpProcess, environ_of, proc_table

pytestmark = pytest.mark.slow
ADDRESS = "127.0.246.{}"
CORE_A, CORE_B, BURST = "hpa-east", "hpa-south", "hpa-burst"
# One replica asks for a whole CPU: each core cluster (one node of 3 CPUs) holds 3.
CLUSTERS: list[dict[str, Any]] = [
    {"name": CORE_A, "region": "cn-east", "zone": "cn-east-a", "address": ADDRESS.format(1),
     "nodes": 1, "nodeCpu": "3"},
    {"name": CORE_B, "region": "cn-south", "zone": "cn-south-a",
     "address": ADDRESS.format(2), "nodes": 1, "nodeCpu": "3"},
    {"name": BURST, "region": "cn-south", "zone": "cn-south-b", "address": ADDRESS.format(3),
     "labels": {"flotilla.io/burst": "true"}, "nodes": 2, "nodeCpu": "4"},
]
CORE = (CORE_A, CORE_B)
HOST = "shop.hpa.test"
RATE = 200.0
#: Scale-down: 5 s window, then at most 4 replicas every 2 s (so "burst first" is seen).
BEHAVIOR = {"scaleDown": {"stabilizationWindowSeconds": 5,
                          "policies": [{"type": "Pods", "value": 4, "periodSeconds": 2}]}}


def manifests() -> list[dict[str, Any]]:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                  "template": {"metadata": {"labels": {"app": "shop"}},
                               "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                   "name": "shop", "image": "shop",
                                   "command": [sys.executable, "-u", SHOP_APP],
                                   "ports": [{"name": "http", "containerPort": 8080}],
                                   "resources": {"requests": {"cpu": "1"}},
                                   "readinessProbe": probe}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"selector": {"app": "shop"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"resourceSelectors": [
             {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
             {"apiVersion": "v1", "kind": "Service", "name": "shop"}],
             "placement": {"replicaScheduling": {
                 "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                 "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}}},
        {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"service": "shop", "hosts": [HOST], "strategy": {"type": "RoundRobin"},
                  "healthCheck": {"path": "/healthz", "interval": "1s", "timeout": "500ms",
                                  "healthyThreshold": 1, "unhealthyThreshold": 1},
                  "retries": {"attempts": 3, "retryOn": ["connect-failure", "reset",
                                                         "timeout", "gateway-error"]},
                  "timeouts": {"connect": "500ms", "perTry": "1s", "total": "6s"}}},
        {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "FederatedHPA",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "shop"},
                  "minReplicas": 2, "maxReplicas": 12,
                  "metrics": [{"type": "Object", "object": {
                      "describedObject": {"apiVersion": "v1", "kind": "Service",
                                          "name": "shop"},
                      "metric": {"name": "flotilla.io/requests-per-second"},
                      "target": {"type": "AverageValue", "averageValue": "20"}}}],
                  "behavior": BEHAVIOR}},
    ]


@dataclass
class PacedLoad:
    """``rate`` GETs a second through the gateway, paced on one shared schedule by
    ``workers`` threads, for at most ``limit`` seconds and ``rate * limit`` requests.
    Counts answers per cluster and every failure (non-200 or no answer)."""

    url: str
    rate: float
    limit: float
    workers: int = 8
    host: str = HOST
    ok: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    #: (cluster, pod) -> when it first answered (monotonic)
    first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> PacedLoad:
        self._start = time.monotonic()
        for _ in range(self.workers):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _slot(self) -> float | None:
        with self._lock:
            n, self._next = self._next, self._next + 1
        if n >= self.rate * self.limit:
            return None
        return self._start + n / self.rate

    def _run(self) -> None:
        with httpx.Client(timeout=10.0, headers={"Host": self.host}) as client:
            while not self._stop.is_set():
                slot = self._slot()
                if slot is None or slot > self._start + self.limit:
                    return
                if self._stop.wait(max(0.0, slot - time.monotonic())):
                    return
                try:
                    r = client.get(self.url)
                    if r.status_code == 200:
                        who = r.json()
                        pod = (str(who.get("cluster")), str(who.get("pod")))
                        with self._lock:
                            self.ok[pod[0]] += 1
                            self.first_seen.setdefault(pod, time.monotonic())
                    else:
                        with self._lock:
                            self.failed.append(f"HTTP {r.status_code}: {r.text[:80]}")
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failed.append(repr(exc))

    def stop(self) -> float:
        """Stop; the achieved rate."""
        self._stop.set()
        for t in self._threads:
            t.join(15)
        took = time.monotonic() - self._start
        return (sum(self.ok.values()) + len(self.failed)) / took if took else 0.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("fhpa")
    gateway_ip = ADDRESS.format(100)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOTILLA_HPA_SYNC_PERIOD", "1")  # the servers inherit up's environment
        up = UpProcess(folder, CLUSTERS, gateway=f"{gateway_ip}:{free_port(gateway_ip)}",
                       gateway_admin=f"{gateway_ip}:{free_port(gateway_ip)}")
    try:
        api = up.wait_up()
        path = folder / "shop.yaml"
        path.write_text("\n---\n".join(json.dumps(o) for o in manifests()))
        up.cli("apply", "-f", str(path))
        yield up, api
    finally:
        up.stop()


def app_pods(app: str) -> list[int]:
    """Live pids of Deployment ``app``'s pods in this module's clusters."""
    names = {c["name"] for c in CLUSTERS}
    return [pid for pid, _pgid, state, cmd in proc_table()
            if state != "Z" and SHOP_APP in cmd
            and environ_of(pid).get("CLUSTER_NAME") in names
            and environ_of(pid).get("POD_NAME", "").startswith(f"{app}-")]


def serves(url: str, host: str) -> bool:
    """The gateway answers for ``host``: its pods' endpoints have reached the gateway,
    which trails the Deployment's ready count by a watch or two."""
    try:
        return httpx.get(url, headers={"Host": host}, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def split(api: Api) -> dict[str, int]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       "resourcebindings/shop-deployment")
    if r.status_code != 200:
        return {}
    return {t["name"]: t["replicas"] for t in r.json()["spec"].get("clusters") or []}


def deployment(api: Api) -> dict[str, Any]:
    r = api.client.get("/apis/apps/v1/namespaces/default/deployments/shop")
    return dict(r.json()) if r.status_code == 200 else {}


def ready(api: Api) -> int:
    return int((deployment(api).get("status") or {}).get("readyReplicas") or 0)


def wanted(api: Api) -> int:
    return int((deployment(api).get("spec") or {}).get("replicas") or 0)


def test_requests_per_second_scale_out_into_burst_and_back(
        plane: tuple[UpProcess, Api]) -> None:
    up, api = plane
    url = f"http://{up.gateway}/"
    wait_for_sync(lambda: ready(api) == 2, 60, what="2 replicas ready")
    assert BURST not in split(api), split(api)
    wait_for_sync(lambda: serves(url, HOST), 30, what="the gateway serving the shop")

    # Up: ~200 req/s for at most 75 s.
    load = PacedLoad(url, RATE, limit=75.0).start()
    started = time.monotonic()
    try:
        wait_for_sync(lambda: ready(api) >= 8, 60, what=">= 8 replicas ready")
        grew_in = time.monotonic() - started
        placed = split(api)
        assert sum(placed.get(c, 0) for c in CORE) == 6, placed  # core full ...
        assert placed.get(BURST, 0) >= 2, placed  # ... and only the overflow on burst
        seen = load.ok[BURST]
        wait_for_sync(lambda: load.ok[BURST] >= seen + 50, 20, what="burst serving")
    finally:
        rate = load.stop()
    assert load.failed == [], load.failed[:5]
    assert rate >= 150, f"the load reached only {rate:.0f} req/s"
    print(f"\n>= 8 ready in {grew_in:.1f}s at {rate:.0f} req/s; served {dict(load.ok)}")

    # Down: a trickle (5 req/s, at most 90 s) watches for failed requests meanwhile.
    trickle = PacedLoad(url, 5.0, limit=90.0, workers=2).start()
    started = time.monotonic()
    splits: list[dict[str, int]] = []
    try:
        def back_to_two() -> bool:
            splits.append(split(api))
            return sum(splits[-1].values()) == 2 and ready(api) == 2 and wanted(api) == 2
        wait_for_sync(back_to_two, 75, interval=0.2, what="back to 2 replicas")
    finally:
        trickle.stop()
    assert trickle.failed == [], trickle.failed[:5]
    assert sum(trickle.ok.values()) > 0
    final = splits[-1]
    assert BURST not in final, final
    assert sum(final.values()) == 2, final
    # burst first: no split had fewer than 6 on core while burst still held replicas
    assert not [s for s in splits if s.get(BURST, 0) and sum(s.get(c, 0) for c in CORE) < 6
                ], splits
    most = max(s.get(BURST, 0) for s in splits)
    assert any(s.get(BURST, 0) < most and sum(s.get(c, 0) for c in CORE) == 6
               for s in splits), f"burst never shrank while core stayed full: {splits}"
    print(f"back to 2 in {time.monotonic() - started:.1f}s (window 5 s); trickle served "
          f"{dict(trickle.ok)}")


def burner() -> list[dict[str, Any]]:
    """The shop app burning 20 ms of CPU per request, 100m requested per pod, under a
    FederatedHPA on CPU utilisation (target 50 %, min 2, max 6)."""
    docs = [json.loads(json.dumps(d)) for d in manifests()]
    for d in docs:
        d["metadata"]["name"] = "burn"
    deploy, service, policy, traffic, hpa = docs
    deploy["spec"]["selector"] = {"matchLabels": {"app": "burn"}}
    template = deploy["spec"]["template"]
    template["metadata"]["labels"] = {"app": "burn"}
    container = template["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "100m"}}
    container["env"] = [{"name": "SHOP_BURN_MS", "value": "20"}]
    service["spec"]["selector"] = {"app": "burn"}
    for selector in policy["spec"]["resourceSelectors"]:
        selector["name"] = "burn"
    traffic["spec"]["service"] = "burn"
    traffic["spec"]["hosts"] = [BURN_HOST]
    hpa["spec"]["scaleTargetRef"]["name"] = "burn"
    hpa["spec"]["maxReplicas"] = 6
    hpa["spec"]["metrics"] = [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    return docs


BURN_HOST = "burn.hpa.test"


def test_cpu_utilisation_scales_a_cpu_burning_app(plane: tuple[UpProcess, Api]) -> None:
    up, api = plane
    path = up.folder / "burn.yaml"
    path.write_text("\n---\n".join(json.dumps(o) for o in burner()))
    up.cli("apply", "-f", str(path))

    def burn(api: Api) -> dict[str, Any]:
        r = api.client.get("/apis/apps/v1/namespaces/default/deployments/burn")
        return dict(r.json()) if r.status_code == 200 else {}

    def burn_ready() -> int:
        return int((burn(api).get("status") or {}).get("readyReplicas") or 0)

    def burn_wanted() -> int:
        return int((burn(api).get("spec") or {}).get("replicas") or 0)

    try:
        wait_for_sync(lambda: burn_ready() == 2, 60, what="2 burners ready")
        url = f"http://{up.gateway}/"
        wait_for_sync(lambda: serves(url, BURN_HOST), 30, what="the gateway serving burn")
        # 20 req/s x 20 ms = 400m over 2 pods of 100m requested: 200 % against 50 %
        load = PacedLoad(url, 20.0, limit=75.0, workers=4, host=BURN_HOST).start()
        started = time.monotonic()
        try:
            wait_for_sync(lambda: burn_ready() >= 4, 60, what=">= 4 burners ready")
            grew_in = time.monotonic() - started
        finally:
            load.stop()
        assert load.failed == [], load.failed[:5]
        r = api.client.get("/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/"
                           "federatedhpas/burn")
        current = r.json()["status"]["currentMetrics"][0]["resource"]["current"]
        print(f"\n>= 4 burners ready in {grew_in:.1f}s; utilisation then {current}")
        started = time.monotonic()
        wait_for_sync(lambda: burn_wanted() == 2, 60, interval=0.2, what="back to 2 burners")
        print(f"back to 2 burners in {time.monotonic() - started:.1f}s")
    finally:
        # the burners ask for CPU on the core clusters: leave them whole for the next
        # test, even when this one failed
        up.cli("delete", "-f", str(path))
        wait_for_sync(lambda: not app_pods("burn"), 30, what="the burners gone")


def test_a_cron_rule_prescales_the_shop_before_any_traffic(
        plane: tuple[UpProcess, Api]) -> None:
    up, api = plane
    wait_for_sync(lambda: wanted(api) == 2 and ready(api) == 2, 60, what="shop at 2")
    now = datetime.now(UTC)

    def second(after: float) -> str:  # a six-field schedule: once a minute at that second
        return f"{(now + timedelta(seconds=after)).second} * * * * *"
    sale = {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "CronFederatedHPA",
            "metadata": {"name": "sale", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "autoscaling.karmada.io/v1alpha1",
                                        "kind": "FederatedHPA", "name": "shop"},
                     "rules": [{"name": "sale", "schedule": second(5), "targetMinReplicas": 6},
                               {"name": "after", "schedule": second(25),
                                "targetMinReplicas": 2}]}}
    path = up.folder / "sale.yaml"
    path.write_text(json.dumps(sale))
    up.cli("apply", "-f", str(path))
    # no request reaches the shop: the schedule alone brings 6 replicas up, all on core
    wait_for_sync(lambda: ready(api) >= 6, 30, what="6 replicas ready before any load")
    placed = split(api)
    assert BURST not in placed, placed
    assert sum(placed.values()) == 6, placed
    # the later rule lets them go: the idle FederatedHPA returns to its new minimum
    wait_for_sync(lambda: wanted(api) == 2, 60, interval=0.2, what="back to 2 after the sale")
    r = api.client.get("/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/"
                       "cronfederatedhpas/sale")
    runs = {h["ruleName"]: h.get("successfulExecutions") or []
            for h in r.json()["status"]["executionHistories"]}
    assert runs["sale"][0]["appliedMinReplicas"] == 6
    assert runs["after"][0]["appliedMinReplicas"] == 2
    api.client.delete("/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/"
                      "cronfederatedhpas/sale")
