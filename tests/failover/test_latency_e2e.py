"""WAN latency on real links: `flotilla up --netns` with ``latency:`` per cluster in
clusters.yaml (netem where the kernel has it, else the delaying relay of
`flotilla.up.relay`), the shop on each cluster, a bounded load through the gateway with
the Latency strategy, and `flotilla chaos set-latency` raising the nearest cluster's.

What is asserted: round trips through the gateway carry each link's delay (twice the
one-way latency, at least), the Latency balancer sends at least 90% to the nearest
cluster, and when its latency rises to 120 ms traffic moves away from it within 10 s.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.up import netns
from tests.failover.harness import HOST, FailoverUp, Load, manifests, placed, ready_on
from tests.helpers import wait_for_sync
from tests.up.harness import Api, proc_table, wait_gone

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="--netns needs root")]
LATENCY = {"w-near": 0.005, "w-mid": 0.040, "w-far": 0.080}
#: one region each, nearest first: what Locality's failover order follows
REGIONS = {"w-near": "cn-east", "w-mid": "cn-south", "w-far": "us-west"}
CLUSTERS: list[dict[str, Any]] = [
    {"name": name, "region": REGIONS[name], "zone": f"{REGIONS[name]}-a",
     "address": f"127.0.236.{i + 1}", "nodes": 1, "latency": f"{int(s * 1000)}ms"}
    for i, (name, s) in enumerate(LATENCY.items())]
NEAR, MID, FAR = LATENCY
POLICY = {"placement": {"replicaScheduling": {
    "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
    "weightPreference": {"staticWeightList": [
        {"targetCluster": {"clusterNames": list(LATENCY)}, "weight": 1}]}}}}


def _latency_policy(strategy: str = "Latency") -> dict[str, Any]:
    return {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"service": "shop", "hosts": [HOST], "strategy": {"type": strategy},
                     "locality": {"region": "cn-east", "failover": ["cn-south", "us-west"]},
                     "healthCheck": {"path": "/healthz", "interval": "1s",
                                     "timeout": "900ms", "healthyThreshold": 1,
                                     "unhealthyThreshold": 1},
                     "retries": {"attempts": 3, "retryOn": ["connect-failure", "reset",
                                                            "timeout"]},
                     "timeouts": {"connect": "1s", "perTry": "2s", "total": "6s"}}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FailoverUp, Api]]:
    folder: Path = tmp_path_factory.mktemp("latency")
    up = FailoverUp(folder, extra=("--netns",), clusters=CLUSTERS)
    try:
        api = up.wait_up()
        up.apply(manifests("shop", 3, POLICY, [_latency_policy()]), "shop")
        wait_for_sync(lambda: placed(api, "shop") == dict.fromkeys(LATENCY, 1) and
                      ready_on(api, "shop") == dict.fromkeys(LATENCY, 1), 90,
                      what="one shop replica ready on each cluster")
        yield up, api
    finally:
        code = up.stop()
        left = wait_gone(lambda: [p for p in proc_table()
                                  if p[2] != "Z" and str(folder) in p[3]])
        assert not left, f"processes left behind: {left}"
        assert netns.leftovers(up.data_dir) == []
        assert code == 0, up.output()


def _shares(load: Load, since: float) -> Counter[str]:
    return Counter(c for t, c, _ in load.answers if t >= since)


def test_latency_balancer_prefers_the_nearest_and_leaves_it_when_it_slows(
        plane: tuple[FailoverUp, Api]) -> None:
    up, _api = plane
    load = Load(f"http://{up.gateway}/", HOST, rate=50.0, limit=90.0).start()
    try:
        # Each cluster is tried at first (nothing known yet), the slower ones probed
        # now and then after that.
        wait_for_sync(lambda: all(load.ok[c] >= 1 for c in LATENCY), 30,
                      what="answers from every cluster")
        # Real round trips: every answer took at least the link's delay both ways.
        for cluster, one_way in LATENCY.items():
            took = [d for _, c, d in load.answers if c == cluster]
            assert min(took) >= 2 * one_way, (cluster, took[:10])
        steady = time.monotonic()
        wait_for_sync(lambda: sum(_shares(load, steady).values()) >= 200, 30,
                      what="200 answers to measure shares on")
        before = _shares(load, steady)
        print(f"\nLatency shares, 5/40/80 ms: {dict(before)}")
        assert before[NEAR] >= 0.9 * sum(before.values()), before

        up.cli("chaos", "set-latency", NEAR, "120ms", "--data-dir", str(up.data_dir))
        raised = time.monotonic()

        def moved_away() -> bool:
            # The last 3 s (a closed loop: some 10 answers a second at these delays).
            window = [c for t, c, _ in load.answers if t >= time.monotonic() - 3.0]
            return len(window) >= 10 and window.count(NEAR) < window.count(MID)
        wait_for_sync(moved_away, 10, what=f"traffic moving away from {NEAR}")
        print(f"moved away after {time.monotonic() - raised:.2f}s; shares since: "
              f"{dict(_shares(load, raised))}")
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]


def test_locality_keeps_traffic_in_region_and_spills_in_order(
        plane: tuple[FailoverUp, Api]) -> None:
    """Locality, preferred region cn-east, then cn-south, then us-west: everything to
    the cn-east cluster; with its data plane cut, to cn-south (next in order, though
    us-west also answers); healed, back to cn-east. No request fails."""
    up, _api = plane
    # As the module started (the test above slowed it to 120 ms, near the health
    # checks' timeout over a fresh connection).
    up.cli("chaos", "set-latency", NEAR, "5ms", "--data-dir", str(up.data_dir))
    up.apply([_latency_policy("Locality")], "locality")
    load = Load(f"http://{up.gateway}/", HOST, rate=50.0, limit=90.0).start()
    try:
        def only(cluster: str, seconds: float = 2.0) -> bool:
            window = [c for t, c, _ in load.answers if t >= time.monotonic() - seconds]
            return len(window) >= 5 and set(window) == {cluster}
        wait_for_sync(lambda: only(NEAR), 30, what=f"traffic in-region, on {NEAR}")
        up.cli("chaos", "partition-cluster", NEAR, "--data-plane",
               "--data-dir", str(up.data_dir))
        wait_for_sync(lambda: only(MID), 10, what=f"traffic spilled to {MID}")
        up.cli("chaos", "heal-cluster", NEAR, "--data-dir", str(up.data_dir))
        wait_for_sync(lambda: only(NEAR), 15, what=f"traffic back on {NEAR}")
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    assert load.ok[FAR] == 0  # never spilled past the next region
