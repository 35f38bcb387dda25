"""The demo's own FederatedHPA, end to end: a real `flotilla up --demo` (east-1, south-1
and burst-1 as `up` names them) comes up with the shop at rest exactly as before (6
replicas, 4/1/1 by the static 2:1 weights) and the FederatedHPA visible through the CLI;
a bounded load through the gateway above the FederatedHPA's 6 x 25 req/s grows the shop
beyond 6 with burst-1 taking and serving more replicas, and when the load stops it goes
back to 6 and 4/1/1; not one request fails on the way. A scale by hand is taken back to
6, and examples/shop/peak.sh does the same peak itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.controllers.autoscaling.test_fhpa_e2e import PacedLoad, ready, split, wanted
from tests.helpers import free_port, wait_for_sync
from tests.up.harness import Api, UpProcess

pytestmark = pytest.mark.slow
ADDRESS = "127.0.247.{}"
EAST, SOUTH, BURST = "east-1", "south-1", "burst-1"
# `flotilla up`'s default three clusters (topology.py), on addresses of this module's own
CLUSTERS: list[dict[str, Any]] = [
    {"name": EAST, "region": "cn-east", "zone": "cn-east-a", "address": ADDRESS.format(1),
     "labels": {"tier": "core"}},
    {"name": SOUTH, "region": "cn-south", "zone": "cn-south-a",
     "address": ADDRESS.format(2), "labels": {"tier": "core"}},
    {"name": BURST, "region": "cn-south", "zone": "cn-south-b", "address": ADDRESS.format(3),
     "labels": {"tier": "burst", "flotilla.io/burst": "true"}},
]
HOST = "shop.example.test"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments/shop"
AT_REST = {EAST: 4, SOUTH: 1, BURST: 1}
DEMO = Path(__file__).resolve().parents[3] / "examples" / "shop" / "shop.yaml"
#: asked of the load: 300 req/s is 12 replicas' worth at the demo's 25 req/s a replica;
#: >= 165 reached is enough to scale (6 x 25 beyond the 10 % tolerance)
RATE = 300.0


def demo_fhpa() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(DEMO.read_text()) if d]
    return next(d for d in docs if d["kind"] == "FederatedHPA")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("demohpa")
    gateway_ip = ADDRESS.format(100)
    with pytest.MonkeyPatch.context() as mp:
        # decide every second instead of every 15 s (the servers inherit up's environment);
        # the demo's FederatedHPA itself is what the user gets
        mp.setenv("FLOTILLA_HPA_SYNC_PERIOD", "1")
        up = UpProcess(folder, CLUSTERS, gateway=f"{gateway_ip}:{free_port(gateway_ip)}",
                       gateway_admin=f"{gateway_ip}:{free_port(gateway_ip)}",
                       extra=("--demo",))
    try:
        yield up, up.wait_up(90)
    finally:
        up.stop()


def test_the_demo_has_a_federatedhpa_and_is_unchanged_at_rest(
        demo: tuple[UpProcess, Api]) -> None:
    up, api = demo
    spec = demo_fhpa()["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (6, 12), spec
    wait_for_sync(lambda: ready(api) == 6 and split(api) == AT_REST, 90,
                  interval=0.5, what="the shop at rest: 6 ready, 4/1/1")
    listed = up.cli("get", "fhpa").stdout
    assert "shop" in listed, listed

    def described_at_rest() -> str | None:
        out = up.cli("describe", "fhpa", "shop").stdout
        return out if "6 current / 6 desired" in out else None
    described = wait_for_sync(described_at_rest, 30, 0.5, what="the autoscaler's status")
    assert "min 6, max 12" in described, described
    assert "Deployment/shop" in described, described
    # a scale by hand (the README's `kubectl scale deploy shop --replicas 9`) is taken
    # back to the FederatedHPA's 6, as Kubernetes' HPA does
    r = api.client.patch(DEPLOY, content=json.dumps({"spec": {"replicas": 9}}),
                         headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    wait_for_sync(lambda: wanted(api) == 6 and split(api) == AT_REST, 60, 0.5,
                  what="the FederatedHPA taking the shop back to 6, 4/1/1")


def test_a_peak_through_the_gateway_fills_burst_1_and_drains_it(
        demo: tuple[UpProcess, Api]) -> None:
    up, api = demo
    url = f"http://{up.gateway}/"
    wait_for_sync(lambda: ready(api) == 6 and split(api) == AT_REST, 90,
                  interval=0.5, what="the shop at rest: 6 ready, 4/1/1")

    def serves() -> bool:
        try:
            return httpx.get(url, headers={"Host": HOST}, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_for_sync(serves, 30, what="the gateway serving the shop")

    # Up: RATE asked for at most 75 s.
    load = PacedLoad(url, RATE, limit=75.0, host=HOST).start()
    started = time.monotonic()
    try:
        wait_for_sync(lambda: wanted(api) > 6 and split(api).get(BURST, 0) > AT_REST[BURST],
                      60, 0.5, what="the shop above 6 with more replicas on burst-1")
        grew_in = time.monotonic() - started
        wait_for_sync(lambda: ready(api) == wanted(api) > 6, 30, 0.5,
                      what="the new replicas ready")

        def burst_pods() -> int:  # dict() copies in one step: the workers write on
            return len({pod for cluster, pod in dict(load.first_seen) if cluster == BURST})
        wait_for_sync(lambda: burst_pods() > AT_REST[BURST], 20, 0.2,
                      what="a new burst-1 pod answering")
        peak = split(api)
    finally:
        rate = load.stop()
    assert load.failed == [], load.failed[:5]
    print(f"\n{sum(peak.values())} replicas {peak} in {grew_in:.1f}s at {rate:.0f} req/s; "
          f"served {dict(load.ok)}")

    # Down: the demo's window is 30 s, then 2 replicas per 10 s; a trickle (5 req/s, at
    # most 120 s) watches for failed requests meanwhile.
    trickle = PacedLoad(url, 5.0, limit=120.0, workers=2, host=HOST).start()
    started = time.monotonic()
    try:
        wait_for_sync(lambda: wanted(api) == 6 and ready(api) == 6 and split(api) == AT_REST,
                      110, interval=0.5, what="back to 6, 4/1/1")
    finally:
        trickle.stop()
    assert trickle.failed == [], trickle.failed[:5]
    assert sum(trickle.ok.values()) > 0
    print(f"back to 6 {split(api)} in {time.monotonic() - started:.1f}s")
    events = up.cli("describe", "fhpa", "shop").stdout
    assert "SuccessfulRescale" in events, events


PEAK = DEMO.parent / "peak.sh"


def test_peak_sh_drives_the_demos_federatedhpa_and_waits_for_the_drain(
        demo: tuple[UpProcess, Api]) -> None:
    up, api = demo
    usage = subprocess.run([str(PEAK), "--help"], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 0, usage
    assert "Usage:" in usage.stdout, usage
    bad = subprocess.run([str(PEAK), "--nope"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2, bad
    wait_for_sync(lambda: ready(api) == 6 and split(api) == AT_REST, 90,
                  interval=0.5, what="the shop at rest: 6 ready, 4/1/1")
    flotilla = Path(sys.executable).with_name("flotilla")
    assert flotilla.is_file(), flotilla
    # 5 s steps: 35 s of ramp (at most 300 x 5 x 4 requests), then the drain (<= 180 s)
    run = subprocess.run([str(PEAK), "300", "5"], cwd=up.folder, capture_output=True,
                         text=True, timeout=330, env={**os.environ, "FLOTILLA": str(flotilla)})
    print("\n" + run.stdout[-600:])
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"(\d+) requests, 0 failed; at most (\d+) replicas, (\d+) on burst-1; "
                        r"back at rest", run.stdout)
    assert summary, run.stdout
    assert int(summary[2]) > 6, summary[0]
    assert int(summary[3]) > AT_REST[BURST], summary[0]
    assert "through " + up.gateway in run.stdout  # the gateway named by up.json
    assert split(api) == AT_REST
    assert wanted(api) == 6
