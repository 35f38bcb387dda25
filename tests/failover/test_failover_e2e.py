"""Failover end to end: real `flotilla up`, real pods, a gateway under load.

One `up` serves the whole module; the tests run in order and each leaves the plane
converged for the next: kill a cluster (and a region-bound workload that must not
spill), revive it, pause another then resume it, a workload crashing in one cluster,
a failed node. Every test asserts what a user sees: requests answered, replicas back,
no pod running twice, the Events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.failover.harness import (
    CLUSTERS,
    HOST,
    FailoverUp,
    Load,
    binding,
    binding_tasks,
    condition,
    event_reasons,
    manifests,
    placed,
    pods_of,
    ready_on,
    shop_nodes,
    traffic_policy,
)
from tests.helpers import wait_for_sync
from tests.up.harness import Api, proc_table, wait_gone

pytestmark = pytest.mark.slow
EAST, SOUTH, BURST = (c["name"] for c in CLUSTERS)
REPLICAS = 6
SHOP_POLICY = {"placement": {"replicaScheduling": {
    "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
    "weightPreference": {"staticWeightList": [
        {"targetCluster": {"clusterNames": [EAST]}, "weight": 2},
        {"targetCluster": {"clusterNames": [SOUTH, BURST]}, "weight": 1}]}}}}
# Data residency: only cn-east may hold the ledger.
LEDGER_POLICY = {"placement": {
    "clusterAffinity": {"fieldSelector": {"matchExpressions": [
        {"key": "region", "operator": "In", "values": ["cn-east"]}]}},
    "replicaScheduling": {"replicaSchedulingType": "Divided"}}}


# Aggregated (as few clusters as fit: the first by name of two equal ones), and moved
# back after a recovery.
STEADY_POLICY = {"rebalance": "OnRecovery", "placement": {
    "clusterAffinity": {"clusterNames": [EAST, SOUTH]},
    "replicaScheduling": {"replicaSchedulingType": "Divided",
                          "replicaDivisionPreference": "Aggregated"}}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FailoverUp, Api]]:
    folder: Path = tmp_path_factory.mktemp("failover")
    up = FailoverUp(folder)
    pgids: set[int] = set()
    try:
        api = up.wait_up()
        pgids = up.pgids()
        # First, while every cluster has the same free capacity (Aggregated then picks
        # the first by name).
        up.apply(manifests("steady", 2, STEADY_POLICY), "steady")
        assert _wait_converged(api, "steady", 2, 60) == {EAST: 2}
        up.apply(manifests("shop", REPLICAS, SHOP_POLICY, [traffic_policy("shop", HOST)]),
                 "shop")
        up.apply(manifests("ledger", 2, LEDGER_POLICY), "ledger")
        wait_for_sync(lambda: sum(pods_of("shop").values()) == REPLICAS and
                      sum(ready_on(api, "shop").values()) == REPLICAS, 60,
                      what="shop ready")
        wait_for_sync(lambda: pods_of("ledger") == {EAST: 2}, 60, what="ledger on east")
        yield up, api
    finally:
        code = up.stop()
        folder_s = str(folder)
        left = wait_gone(lambda: [p for p in proc_table() if p[2] != "Z" and
                                  (p[1] in pgids or folder_s in p[3])])
        assert not left, f"processes left behind: {left}"
        assert code == 0, up.output()


def _load(up: FailoverUp) -> Load:
    load = Load(f"http://{up.gateway}/", HOST).start()
    wait_for_sync(lambda: sum(load.ok.values()) >= 5, 20, what="traffic through gateway")
    return load


def _converged(api: Api, name: str, replicas: int) -> dict[str, int] | None:
    """The per-cluster pods once the plane converged: binding placed in full, that many
    ready, and exactly that many processes (nothing above desired)."""
    where = placed(api, name)
    pods = pods_of(name)
    ready = ready_on(api, name)
    if sum(where.values()) != replicas or dict(pods) != where or \
            any(ready.get(c, 0) != n for c, n in where.items()):
        return None
    return dict(pods)


def _wait_converged(api: Api, name: str, replicas: int, timeout: float) -> dict[str, int]:
    try:
        found = wait_for_sync(lambda: _converged(api, name, replicas), timeout,
                              what=f"{name} converged")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: placed {placed(api, name)}, pods {pods_of(name)}, "
                             f"ready {ready_on(api, name)}") from None
    return found or {}


def test_what_if_answers_without_changing_anything(plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    before = placed(api, "shop")
    out = json.loads(up.cli("what-if", "--fail-cluster", EAST, "-o", "json").stdout)
    by_name = {w["binding"]: w for w in out["workloads"]}
    shop, ledger = by_name["default/shop-deployment"], by_name["default/ledger-deployment"]
    assert EAST not in shop["after"]
    assert sum(shop["after"].values()) == REPLICAS
    assert shop["unplaced"] == 0
    # Residency: the ledger may not leave cn-east, and the reasons say why.
    assert ledger["unplaced"] == 2
    assert ledger["after"] == {}
    assert "affinity" in ledger["reasons"][SOUTH] or "region" in ledger["reasons"][SOUTH]
    assert EAST in ledger["reasons"]
    table = up.cli("what-if", "--fail-cluster", EAST).stdout
    assert "nowhere to go" in table
    assert placed(api, "shop") == before  # nothing changed


def test_describe_shows_timers_and_an_unmeetable_budget_is_refused(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    wait_for_sync(lambda: "toleration" in binding(api, "shop")["metadata"]
                  .get("annotations", {}).get("failover.flotilla.io/timers", ""), 30,
                  what="timers annotation")
    text = up.cli("describe", "resourcebinding", "shop-deployment").stdout
    assert "cluster.flotilla.io/unreachable: 5s" in text
    policy = manifests("budget", 1, {"failover": {"budget": "3s"}})[2]
    refused = up.apply_result([policy], "budget")
    assert refused.returncode != 0
    message = refused.stderr + refused.stdout
    assert "spec.failover.budget" in message
    assert "at least" in message
    ok = manifests("budget", 1, {"failover": {"budget": "30s"}})[2]
    assert up.apply_result([ok], "budget-ok").returncode == 0
    up.cli("delete", "-f", str(up.folder / "budget-ok.yaml"))


def test_kill_cluster_moves_replicas_and_keeps_residency(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    load = _load(up)
    try:
        before = placed(api, "shop")
        assert before.get(EAST, 0) > 0
        up.cli("chaos", "kill-cluster", EAST, "--data-dir", str(up.data_dir))
        after = _wait_converged(api, "shop", REPLICAS, 60)
        assert EAST not in after
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    assert load.ok[SOUTH] + load.ok[BURST] > 0
    assert "Evicting" in event_reasons(api, "shop")
    wait_for_sync(lambda: "EvictionDone" in event_reasons(api, "shop"), 30,
                  what="old east replicas released")
    # The ledger may live only in cn-east: it must not spill, and the binding says why.
    blocked = wait_for_sync(lambda: condition(api, "ledger", "Failover").get("reason")
                            == "NoClusterFit", 30, what="ledger failover blocked")
    assert blocked
    assert "FailoverBlocked" in event_reasons(api, "ledger")
    assert not pods_of("ledger")  # east is dead; nothing spilled to the south
    assert _wait_converged(api, "steady", 2, 30) == {SOUTH: 2}


def test_revived_cluster_takes_work_back_without_duplicates(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    load = _load(up)
    try:
        up.cli("chaos", "revive-cluster", EAST, "--data-dir", str(up.data_dir))
        wait_for_sync(lambda: api.ready(EAST) == "True" and not api.taint_keys(EAST), 60,
                      what="east Ready again")
        # The region-bound ledger had nowhere else to go: its Work stayed, and it runs on
        # east again. The shop's static weights put east's share back (as Karmada does);
        # its old east replicas were released long ago, so nothing runs twice.
        assert _wait_converged(api, "ledger", 2, 60) == {EAST: 2}
        _wait_converged(api, "shop", REPLICAS, 60)
        # rebalance: OnRecovery puts the aggregated workload back where it was.
        assert _wait_converged(api, "steady", 2, 60) == {EAST: 2}
        assert "Rebalanced" in event_reasons(api, "steady")
        wait_for_sync(lambda: load.ok[EAST] > 0, 30, what="traffic to east again")
    finally:
        load.stop()
    # Known gap outside failover (reported): for ~0.1 s after the revived agent's first
    # heartbeat makes east Ready, its EndpointSlice still lists as ready the pods that
    # died with it, and a request whose every retry lands on them gets a 502 (seen once
    # in ~15 runs).
    assert len(load.failed) <= max(1, load.total() // 100), load.failed[:5]
    wait_for_sync(lambda: condition(api, "ledger", "Failover").get("status") == "False",
                  30, what="ledger failover over")


def test_paused_cluster_is_failed_over_and_cleaned_up_on_resume(
        plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    assert placed(api, "shop").get(SOUTH, 0) > 0
    load = _load(up)
    try:
        up.cli("chaos", "pause-cluster", SOUTH, "--data-dir", str(up.data_dir))
        try:
            moved = _wait_converged(api, "shop", REPLICAS, 60)
            assert SOUTH not in moved
            wait_for_sync(lambda: not binding_tasks(api, "shop"), 30,
                          what="old south replicas released")
        finally:
            up.cli("chaos", "resume-cluster", SOUTH, "--data-dir", str(up.data_dir))
        wait_for_sync(lambda: api.ready(SOUTH) == "True" and not api.taint_keys(SOUTH), 60,
                      what="south Ready again")
        # The hung cluster's pods woke up with no Work behind them: they go, and the
        # plane converges with exactly the desired count running.
        _wait_converged(api, "shop", REPLICAS, 60)
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]


def test_workload_crashing_in_one_cluster_moves_away(plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    crash = {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "OverridePolicy",
             "metadata": {"name": "crashy-burst", "namespace": "default"},
             "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "crashy"}],
                      "overrideRules": [{"targetCluster": {"clusterNames": [BURST]},
                                         "overriders": {"plaintext": [{
                                             "path": "/spec/template/spec/containers/0/command",
                                             "operator": "replace",
                                             "value": ["python3", "-c", "raise SystemExit(3)"],
                                         }]}}]}}
    policy = {"placement": {
        "clusterAffinity": {"clusterNames": [EAST, BURST]},
        "replicaScheduling": {"replicaSchedulingType": "Divided", "weightPreference": {
            "staticWeightList": [{"targetCluster": {"clusterNames": [EAST, BURST]},
                                  "weight": 1}]}}},
        "failover": {"application": {"decisionConditions": {"tolerationSeconds": 3},
                                     "gracePeriodSeconds": 120}}}
    up.apply([crash], "crashy-override")  # first, so burst never runs a good copy
    up.apply(manifests("crashy", 2, policy), "crashy")
    moved = _wait_converged(api, "crashy", 2, 60)
    assert moved == {EAST: 2}
    assert "Evicting" in event_reasons(api, "crashy")
    tasks = binding_tasks(api, "crashy")
    assert [t["reason"] for t in tasks] == ["ApplicationFailure"]  # burst stays avoided
    up.cli("delete", "-f", str(up.folder / "crashy.yaml"))
    up.cli("delete", "-f", str(up.folder / "crashy-override.yaml"))
    wait_for_sync(lambda: not pods_of("crashy"), 30, what="crashy gone")


def test_failed_node_pods_come_back_inside_the_cluster(plane: tuple[FailoverUp, Api]) -> None:
    up, api = plane
    before = _wait_converged(api, "shop", REPLICAS, 30)
    cluster = max(before, key=lambda c: before[c])
    node = f"{cluster}-node-1"
    load = _load(up)
    try:
        up.cli("chaos", "fail-node", cluster, node)
        try:
            wait_for_sync(lambda: shop_nodes(cluster) and node not in shop_nodes(cluster)
                          and _converged(api, "shop", REPLICAS) == before, 60,
                          what=f"shop pods off {node}")
        finally:
            up.cli("chaos", "recover-node", cluster, node)
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
