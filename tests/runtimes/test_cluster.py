"""Cluster behaviour: rolling updates, node failure, unschedulable pods, ingress."""

from __future__ import annotations

import pytest

from flotilla.runtimes.base import ManifestError
from tests.helpers import free_port, wait_for
from tests.runtimes.conftest import (
    MakeCluster,
    cluster_processes,
    deployment,
    http_get,
    pods_of,
    ready_pods,
    service,
)


async def test_rolling_update_keeps_replicas_minus_max_unavailable_ready(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    v1 = deployment("web", 4, strategy=strategy, env=[{"name": "VERSION", "value": "1"}])
    await rt.apply([v1])
    old = {p.name for p in await ready_pods(rt, "web", 4)}
    v2 = deployment("web", 4, strategy=strategy, env=[{"name": "VERSION", "value": "2"}])
    await rt.apply([v2])
    min_ready, max_total, rounds = 4, 0, 0
    async for _ in rt.changes():
        rounds += 1
        pods = [p for p in pods_of(rt, "web") if not p.terminating]
        min_ready = min(min_ready, sum(p.ready for p in pods))
        max_total = max(max_total, len(pods))
        [status] = rt.workloads()
        if (status.updated_replicas == status.ready_replicas == status.replicas == 4
                and not old & {p.name for p in pods}) or rounds > 5000:
            break
    assert min_ready >= 3, "never below replicas - maxUnavailable ready pods"
    assert max_total <= 5, "never above replicas + maxSurge pods"
    [status] = rt.workloads()
    assert status.observed_generation == 2
    assert {c.type: c.reason for c in status.conditions}["Progressing"] == \
        "NewReplicaSetAvailable"
    await wait_for(lambda: _async(len(cluster_processes(rt.name)) == 4), timeout=10,
                   what="old processes gone")


async def _async(value: bool) -> bool:
    return value


async def test_failed_node_pods_come_back_on_other_nodes(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 3)])
    pods = await ready_pods(rt, "web", 3)
    victim = pods[0].node
    assert victim is not None
    await rt.fail_node(victim)
    assert pods[0].containers[0].pid not in cluster_processes(rt.name)
    after = await ready_pods(rt, "web", 3)
    assert victim not in {p.node for p in after}
    assert {n.name: n.ready for n in rt.nodes()}[victim] is False
    assert rt.capacity().nodes.ready == 2
    await rt.recover_node(victim)
    assert rt.capacity().nodes.ready == 3


async def test_pod_that_fits_nowhere_stays_pending_with_reason(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster(cpu="2")
    await rt.apply([deployment("big", 1, cpu="3"), deployment("small", 2, cpu="1500m")])
    await ready_pods(rt, "small", 2)

    async def pending() -> bool:
        pods = pods_of(rt, "big")
        return bool(pods) and pods[0].reason == "Unschedulable"
    await wait_for(pending, timeout=10, what="Unschedulable big pod")
    [pod] = pods_of(rt, "big")
    assert pod.phase == "Pending"
    assert pod.node is None
    assert pod.message == "0/3 nodes are available: 3 Insufficient cpu."
    assert rt.estimate_replicas(deployment("x", cpu="1")["spec"]["template"]) == 2
    assert rt.capacity().allocated.cpu_millis == 3000


async def test_ingress_on_cluster_address_round_robins_ready_pods(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    port = free_port(rt.config.address)
    await rt.apply([deployment("web", 2), service("web", port)])
    pods = await ready_pods(rt, "web", 2)

    async def exposed() -> bool:
        [svc] = rt.endpoints()
        return len(svc.endpoints) == 2 and svc.ports[0].ingress_port == port
    await wait_for(exposed, timeout=10, what="service exposed with 2 endpoints")
    seen = set()
    for _ in range(4):
        url = f"http://{rt.config.address}:{port}/"
        seen.add(await http_get(url))
    assert seen == {f"hello from {p.name}" for p in pods}


async def test_invalid_manifest_is_rejected_whole(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 1)])
    await ready_pods(rt, "web", 1)
    bad = deployment("other", 1)
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(ManifestError, match=r"containers\[0\]\.ports\[0\]\.containerPort"):
        await rt.apply([bad])
    with pytest.raises(ManifestError, match="not supported"):
        await rt.apply([{"kind": "StatefulSet", "metadata": {"name": "db"}}])
    assert [w.name for w in rt.workloads()] == ["web"]
