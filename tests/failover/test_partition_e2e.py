"""Network partitions end to end: `flotilla up --netns` (root), the shop under a bounded
load through the gateway, and each cut of `flotilla chaos partition-cluster`.

One `up` serves the module; each test cuts one cluster, checks what a user sees
(requests answered, where traffic goes, replicas, Events), heals it and waits until
the plane converged with nothing running twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.resources.wellknown import parse_rfc3339
from flotilla.up import netns
from tests.failover.harness import (
    CLUSTERS,
    HOST,
    FailoverUp,
    Load,
    event_reasons,
    manifests,
    placed,
    pods_of,
    ready_on,
    traffic_policy,
)
from tests.helpers import wait_for_sync
from tests.up.harness import Api, proc_table, wait_gone

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="--netns needs root")]
EAST, SOUTH, BURST = (c["name"] for c in CLUSTERS)
REPLICAS = 6
POLICY = {"placement": {"replicaScheduling": {
    "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
    "weightPreference": {"staticWeightList": [
        {"targetCluster": {"clusterNames": [EAST, SOUTH, BURST]}, "weight": 1}]}}}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FailoverUp, Api]]:
    folder: Path = tmp_path_factory.mktemp("partition")
    up = FailoverUp(folder, extra=("--netns",))
    pgids: set[int] = set()
    try:
        api = up.wait_up()
        pgids = up.pgids()
        up.apply(manifests("shop", REPLICAS, POLICY, [traffic_policy("shop", HOST)]), "shop")
        _wait_converged(api, REPLICAS, 90)
        yield up, api
    finally:
        code = up.stop()
        folder_s = str(folder)
        left = wait_gone(lambda: [p for p in proc_table() if p[2] != "Z" and
                                  (p[1] in pgids or folder_s in p[3])])
        assert not left, f"processes left behind: {left}"
        assert netns.leftovers(up.data_dir) == []
        assert code == 0, up.output()


def _converged(api: Api, replicas: int) -> dict[str, int] | None:
    where = placed(api, "shop")
    ready = ready_on(api, "shop")
    if sum(where.values()) != replicas or dict(pods_of("shop")) != where or \
            any(ready.get(c, 0) != n for c, n in where.items()):
        return None
    return where


def _wait_converged(api: Api, replicas: int, timeout: float) -> dict[str, int]:
    try:
        return wait_for_sync(lambda: _converged(api, replicas), timeout,
                             what="shop converged") or {}
    except AssertionError as exc:
        raise AssertionError(f"{exc}: placed {placed(api, 'shop')}, pods "
                             f"{pods_of('shop')}, ready {ready_on(api, 'shop')}, works "
                             f"{_works(api)}") from None


def _works(api: Api) -> dict[str, object]:
    """Each cluster's shop Work as stored: uid and status (for a failure message)."""
    out: dict[str, object] = {}
    for c in (EAST, SOUTH, BURST):
        r = api.client.get(f"/apis/work.flotilla.io/v1alpha1/namespaces/flotilla-es-{c}/works")
        for w in r.json().get("items") or []:
            out[f"{c}/{w['metadata']['name']}"] = (w["metadata"].get("uid"),
                                                   w["metadata"].get("deletionTimestamp"),
                                                   w.get("status"))
    return out


def _load(up: FailoverUp) -> Load:
    load = Load(f"http://{up.gateway}/", HOST).start()
    wait_for_sync(lambda: all(load.ok[c] > 0 for c in (EAST, SOUTH, BURST)), 30,
                  what="traffic through the gateway to every cluster")
    return load


def _traffic_off(load: Load, cluster: str, since: float, quiet: float = 1.5) -> float:
    """Seconds from ``since`` to the last answer from ``cluster``, once it has been
    quiet for ``quiet`` seconds (asserted within 15 s)."""
    wait_for_sync(lambda: time.monotonic() - load.last_seen.get(cluster, 0) > quiet, 15,
                  what=f"traffic off {cluster}")
    return max(0.0, load.last_seen.get(cluster, since) - since)


def _figure(mode: str, **values: float) -> None:
    """What the run measured, for docs/benchmarks.md (shown with ``pytest -s``)."""
    print(f"\npartition {mode}: " + ", ".join(f"{k} {v:.2f}s" for k, v in values.items()))


def _cluster_events(up: FailoverUp, cluster: str) -> str:
    """`flotilla events` about Cluster ``cluster`` (the CLI finds the plane by the
    folder's data dir)."""
    return up.cli("events", "-A", "--for", f"cluster/{cluster}").stdout


def _chaos(up: FailoverUp, *args: str) -> None:
    up.cli("chaos", *args, "--data-dir", str(up.data_dir))


def _heal_and_converge(up: FailoverUp, api: Api, cluster: str, load: Load) -> None:
    _chaos(up, "heal-cluster", cluster)
    wait_for_sync(lambda: api.ready(cluster) == "True" and not api.taint_keys(cluster), 60,
                  what=f"{cluster} Ready again")
    _wait_converged(api, REPLICAS, 90)  # nothing runs twice: surplus removed
    wait_for_sync(lambda: time.monotonic() - load.last_seen.get(cluster, 0) < 1.0, 30,
                  what=f"traffic to {cluster} again")


def test_data_plane_cut_ejects_the_cluster_and_no_request_fails(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    before = placed(api, "shop")
    load = _load(up)
    try:
        cut = time.monotonic()
        _chaos(up, "partition-cluster", SOUTH, "--data-plane")
        # The health checks (1 s interval, one failure) eject it; heartbeats still
        # arrive, so the control plane keeps it Ready and moves nothing.
        off = _traffic_off(load, SOUTH, cut)
        assert off < 3.0
        assert api.ready(SOUTH) == "True"
        assert "partitioned (data-plane)" in up.cli("status", "--data-dir",
                                                    str(up.data_dir)).stdout
        assert placed(api, "shop") == before
        # Nothing happened to the control plane: no eviction, the cluster never lost.
        assert "Evicting" not in event_reasons(api, "shop")
        assert "ClusterStatusUnknown" not in _cluster_events(up, SOUTH)
        _heal_and_converge(up, api, SOUTH, load)
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    assert placed(api, "shop") == before
    _figure("data-plane", traffic_off=off)


def test_control_plane_cut_turns_the_cluster_unknown_and_rebuilds_elsewhere(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    load = _load(up)
    try:
        cut = time.monotonic()
        _chaos(up, "partition-cluster", EAST, "--control-plane")
        wait_for_sync(lambda: api.ready(EAST) == "Unknown", 15, what="east Unknown")
        # Its pods still run (the agent cannot be told otherwise) and replicas are
        # rebuilt elsewhere: make-before-break.
        wait_for_sync(lambda: EAST not in placed(api, "shop") and
                      sum(ready_on(api, "shop").get(c, 0) for c in (SOUTH, BURST))
                      == REPLICAS, 60, what="replicas rebuilt off east")
        rebuilt = time.monotonic() - cut
        assert pods_of("shop")[EAST] > 0
        assert "Evicting" in event_reasons(api, "shop")
        assert "ClusterStatusUnknown" in _cluster_events(up, EAST)
        # The gateway keeps serving from east's pods: they pass its health checks,
        # whatever the heartbeats say.
        served = load.ok[EAST]
        wait_for_sync(lambda: load.ok[EAST] >= served + 5, 10,
                      what="the gateway still serving from east's pods")
        _heal_and_converge(up, api, EAST, load)
        assert "ClusterReady" in _cluster_events(up, EAST)
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    _figure("control-plane", replicas_ready_elsewhere=rebuilt)


def test_link_cut_is_a_dead_cluster(plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    load = _load(up)
    try:
        cut = time.monotonic()
        _chaos(up, "partition-cluster", BURST)
        off = _traffic_off(load, BURST, cut)
        assert off < 3.0
        wait_for_sync(lambda: api.ready(BURST) == "Unknown", 15, what="burst Unknown")
        wait_for_sync(lambda: BURST not in placed(api, "shop") and
                      sum(ready_on(api, "shop").get(c, 0) for c in (EAST, SOUTH))
                      == REPLICAS, 60, what="replicas rebuilt off burst")
        rebuilt = time.monotonic() - cut
        assert "Evicting" in event_reasons(api, "shop")
        assert "ClusterStatusUnknown" in _cluster_events(up, BURST)
        _heal_and_converge(up, api, BURST, load)
        assert "ClusterReady" in _cluster_events(up, BURST)
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    _figure("link", traffic_off=off, replicas_ready_elsewhere=rebuilt)


CART, CART_HOST = "cart", "cart.example.test"
#: Application failover after 3 s; the cart may live on east and south only.
CART_POLICY = {
    "placement": {"clusterAffinity": {"clusterNames": [EAST, SOUTH]},
                  "replicaScheduling": {
                      "replicaSchedulingType": "Divided",
                      "replicaDivisionPreference": "Weighted",
                      "weightPreference": {"staticWeightList": [
                          {"targetCluster": {"clusterNames": [EAST, SOUTH]}, "weight": 1}]}}},
    "failover": {"application": {"decisionConditions": {"tolerationSeconds": 3},
                                 "purgeMode": "Graciously"}}}


def _traffic_reachable(api: Api, cluster: str) -> str | None:
    for cond in ((api.cluster(cluster) or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "TrafficReachable":
            return str(cond.get("status"))
    return None


def _cluster_event_times(api: Api, cluster: str, reason: str) -> list[float]:
    """When Events ``reason`` about Cluster ``cluster`` last happened (wall clock)."""
    r = api.client.get("/api/v1/events")
    return [parse_rfc3339(str(e.get("lastTimestamp"))) for e in r.json().get("items") or []
            if e.get("reason") == reason and e.get("lastTimestamp") and
            (e.get("involvedObject") or {}).get("kind") == "Cluster" and
            (e.get("involvedObject") or {}).get("name") == cluster]


def _cart_on(api: Api, want: dict[str, int]) -> bool:
    """The cart placed, running (live pods: nothing twice) and ready exactly as ``want``."""
    ready = ready_on(api, CART)
    return placed(api, CART) == want and dict(pods_of(CART)) == want and \
        all(ready.get(c, 0) == n for c, n in want.items())


def test_data_plane_cut_past_the_application_toleration_moves_the_replicas(
        plane: tuple[FailoverUp, Api]) -> None:
    """The gateway reports south unreachable (TrafficReachable=False, heartbeats fine):
    the cart (application failover, 3 s) moves to east make-before-break; the shop (no
    application failover) stays, and its pods on south tell the gateway when it heals."""
    up, api = plane
    up.apply(manifests(CART, 2, CART_POLICY, [traffic_policy(CART, CART_HOST)]), CART)
    try:
        wait_for_sync(lambda: _cart_on(api, {EAST: 1, SOUTH: 1}), 90, what="cart placed")
        wait_for_sync(lambda: _traffic_reachable(api, SOUTH) == "True", 30,
                      what="south TrafficReachable=True before the cut")
        shop_before = placed(api, "shop")
        load = _load(up)
        cart = Load(f"http://{up.gateway}/", CART_HOST).start()
        try:
            wait_for_sync(lambda: cart.ok[EAST] > 0 and cart.ok[SOUTH] > 0, 30,
                          what="cart traffic to east and south")
            cut = time.monotonic()
            cut_at = time.time()
            _chaos(up, "partition-cluster", SOUTH, "--data-plane")
            wait_for_sync(lambda: _traffic_reachable(api, SOUTH) == "False", 10,
                          what="south TrafficReachable=False")
            unreachable = time.monotonic() - cut
            assert api.ready(SOUTH) == "True"  # heartbeats still arrive
            assert "cluster.flotilla.io/traffic-unreachable" in api.taint_keys(SOUTH)
            assert "TrafficUnreachable" in _cluster_events(up, SOUTH)
            assert max(_cluster_event_times(api, SOUTH, "TrafficUnreachable")) >= cut_at - 1
            # Past the toleration the cart's replica is rebuilt on east, then the one on
            # south goes (its agent still reaches the API).
            wait_for_sync(lambda: SOUTH not in placed(api, CART) and
                          ready_on(api, CART).get(EAST, 0) == 2, 60,
                          what="cart rebuilt on east")
            rebuilt = time.monotonic() - cut
            assert "Evicting" in event_reasons(api, CART)
            wait_for_sync(lambda: _cart_on(api, {EAST: 2}), 60,
                          what="cart's old replica on south removed")
            assert placed(api, "shop") == shop_before  # no application failover: stays
            healed_at = time.time()
            _chaos(up, "heal-cluster", SOUTH)
            wait_for_sync(lambda: _traffic_reachable(api, SOUTH) == "True" and
                          not api.taint_keys(SOUTH), 30, what="south reachable again")
            assert "TrafficReachable" in _cluster_events(up, SOUTH)
            # ... told by an Event of the heal (not the one from the start).
            assert max(_cluster_event_times(api, SOUTH, "TrafficReachable")) >= healed_at - 1
            _wait_converged(api, REPLICAS, 90)
            wait_for_sync(lambda: time.monotonic() - load.last_seen.get(SOUTH, 0) < 1.0, 30,
                          what="shop traffic to south again")
            assert _cart_on(api, {EAST: 2})  # nothing runs twice after the heal
        finally:
            load.stop()
            cart.stop()
        assert not load.failed, load.failed[:5]
        assert not cart.failed, cart.failed[:5]
        assert cart.ok[EAST] > 0
        _figure("data-plane, application failover", traffic_unreachable=unreachable,
                replicas_ready_elsewhere=rebuilt)
    finally:
        up.cli("delete", "-f", str(up.folder / f"{CART}.yaml"))
