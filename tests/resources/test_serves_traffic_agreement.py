"""Failover, discovery, the DNS and the gateway agree on which clusters serve traffic.

Each row is a Cluster as the store holds it; each consumer is asked through its own
entry point (failover's recovery rule, the ServiceImport derivation, the DNS answer
model, the gateway routing model) whether the cluster would get users or replicas. They
must all give the row's verdict: a disagreement sends users where the control plane has
given up, or keeps replicas where no user can reach them. The same rows also go to
every component that reads Ready alone (scheduler, status aggregation, failover).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.controllers.discovery import cluster_exports, cluster_view, derive
from flotilla.controllers.failover.decide import cluster_ready, healthy
from flotilla.controllers.placement import status as placement_status
from flotilla.dns.model import build_model as dns_model
from flotilla.resources.views import ClusterView
from flotilla.resources.wellknown import (
    TAINT_NOT_READY,
    TAINT_TRAFFIC_UNREACHABLE,
    TAINT_UNREACHABLE,
)
from flotilla.scheduler import compile_cluster
from flotilla.traffic.model import build_model as gateway_model
from tests.resources.stored import ready, registry_at, stored_cluster

Obj = dict[str, Any]
NAME = "east-1"
HOST = "shop.global.test"


def _traffic(status: str) -> Obj:
    return {"type": "TrafficReachable", "status": status, "reason": "x", "message": "",
            "lastTransitionTime": "2027-01-15T08:00:00Z"}


def _pair(key: str) -> list[Obj]:
    return [{"key": key, "effect": e, "timeAdded": "2027-01-15T08:00:01Z"}
            for e in ("NoSchedule", "NoExecute")]


#: (what, stored_cluster keyword arguments, serves traffic?)
STATES: list[tuple[str, Obj, bool]] = [
    ("ready", {"conditions": [ready("True")]}, True),
    ("ready, NoSchedule taint", {"conditions": [ready("True")], "taints": [
        {"key": "maintenance", "effect": "NoSchedule"}]}, True),
    ("ready, PreferNoSchedule taint", {"conditions": [ready("True")], "taints": [
        {"key": "maintenance", "effect": "PreferNoSchedule"}]}, True),
    ("ready, cordoned", {"conditions": [ready("True")], "unschedulable": True}, True),
    ("ready, NoExecute taint", {"conditions": [ready("True")], "taints": [
        {"key": "maintenance", "value": "true", "effect": "NoExecute"}]}, False),
    ("Ready=False, not-ready taints", {"conditions": [ready("False", "NodesNotReady")],
                                       "taints": _pair(TAINT_NOT_READY)}, False),
    ("Ready=Unknown, unreachable taints", {"conditions": [ready("Unknown")],
                                           "taints": _pair(TAINT_UNREACHABLE)}, False),
    ("Ready=Unknown, taints not written yet", {"conditions": [ready("Unknown")]}, False),
    ("no Ready condition yet", {}, False),
    ("two Ready conditions, False first", {"conditions": [ready("False"), ready("True")]},
     False),
    ("two Ready conditions, True first", {"conditions": [ready("True"), ready("False")]},
     True),
    # The gateways' verdict (TrafficReachable, from their GatewayReports).
    ("ready, TrafficReachable=False, traffic-unreachable taints", {
        "conditions": [ready("True"), _traffic("False")],
        "taints": _pair(TAINT_TRAFFIC_UNREACHABLE)}, False),
    ("ready, TrafficReachable=False, taints not written yet", {
        "conditions": [ready("True"), _traffic("False")]}, False),
    ("ready, TrafficReachable=Unknown", {
        "conditions": [ready("True"), _traffic("Unknown")]}, True),
    ("ready, TrafficReachable=True", {"conditions": [ready("True"), _traffic("True")]}, True),
    ("Ready=Unknown, unreachable and traffic-unreachable taints", {
        "conditions": [ready("Unknown"), _traffic("False")],
        "taints": [*_pair(TAINT_UNREACHABLE), *_pair(TAINT_TRAFFIC_UNREACHABLE)]}, False),
]


def _slice() -> Obj:
    return {"apiVersion": "discovery.flotilla.io/v1alpha1", "kind": "EndpointSlice",
            "metadata": {"name": f"shop-{NAME}", "namespace": "default"},
            "spec": {"service": "shop", "cluster": NAME, "region": "cn-east", "zone": "",
                     "ingress": {"address": "127.0.1.1", "ports": []},
                     "endpoints": [{"address": "127.0.1.10", "pod": "shop-0", "ready": True,
                                    "ports": [{"name": "http", "port": 31001,
                                               "protocol": "TCP"}]}]}}


SERVICE: Obj = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "shop", "namespace": "default"},
                "spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80}]}}
WORK: Obj = {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "Work",
             "metadata": {"name": "default.shop", "namespace": f"flotilla-es-{NAME}",
                          "creationTimestamp": "2027-01-15T08:00:00Z"},
             "spec": {"workload": {"manifests": [SERVICE]}}}
POLICY: Obj = {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
               "metadata": {"name": "shop", "namespace": "default"},
               "spec": {"service": "shop", "hosts": [HOST], "strategy": {"type": "RoundRobin"}}}


def failover_says(cluster: Obj) -> bool:
    return healthy(cluster)


def discovery_says(cluster: Obj) -> bool:
    derived = derive(SERVICE, cluster_exports([WORK], "default", "shop"), {NAME: _slice()},
                     {NAME: cluster_view(cluster)})
    return any(e["cluster"] == NAME for e in derived.status["endpoints"])


def dns_says(cluster: Obj) -> bool:
    model = dns_model("global.test", traffic_policies=[POLICY], endpoint_slices=[_slice()],
                      clusters=[cluster])
    name = model.names.get(HOST)
    return name is not None and any(t.cluster == NAME for t in name.targets)


def gateway_says(cluster: Obj) -> bool:
    backend = gateway_model([POLICY], [_slice()], [cluster]).match(HOST, "/")
    assert backend is not None
    return any(e.cluster == NAME for e in backend.endpoints)


@pytest.mark.parametrize(("what", "state", "serves"), STATES, ids=[s[0] for s in STATES])
async def test_every_consumer_gives_the_same_verdict(tmp_path: Path, what: str, state: Obj,
                                                     serves: bool) -> None:
    async with registry_at(tmp_path) as registry:
        cluster = await stored_cluster(registry, NAME, ingressAddress="127.0.1.1", **state)
    verdicts = {"rule": ClusterView.of(cluster).serves_traffic,
                "failover": failover_says(cluster), "discovery": discovery_says(cluster),
                "dns": dns_says(cluster), "gateway": gateway_says(cluster)}
    assert verdicts == dict.fromkeys(verdicts, serves), what


#: Rows whose cluster is Ready but must still get no traffic.
READY_BUT_DRAINED = {"ready, NoExecute taint",
                     "ready, TrafficReachable=False, traffic-unreachable taints",
                     "ready, TrafficReachable=False, taints not written yet"}


@pytest.mark.parametrize(("what", "state", "serves"), STATES, ids=[s[0] for s in STATES])
async def test_every_reader_of_ready_agrees(tmp_path: Path, what: str, state: Obj,
                                            serves: bool) -> None:
    """The scheduler (may new replicas go there), status aggregation (are its replicas
    counted as ready) and failover (are replacements ready) read Ready the same way."""
    async with registry_at(tmp_path) as registry:
        cluster = await stored_cluster(registry, NAME, ingressAddress="127.0.1.1", **state)
    expected = serves or what in READY_BUT_DRAINED
    readers = {"view": ClusterView.of(cluster).ready,
               "scheduler": compile_cluster(cluster).ready,
               "status": placement_status.cluster_ready(cluster),
               "failover": cluster_ready(cluster)}
    assert readers == dict.fromkeys(readers, expected), what


#: Rows where only the control plane lost the cluster (heartbeats stopped): the one
#: case a gateway that checks the pods itself keeps serving from them.
LOST_BY_CONTROL_PLANE = {"Ready=Unknown, unreachable taints",
                         "Ready=Unknown, taints not written yet"}
#: ... and the rows the gateways found unreachable: their checks must see the heal.
LEFT_TO_HEALTH_CHECKS = LOST_BY_CONTROL_PLANE | {
    "ready, TrafficReachable=False, traffic-unreachable taints",
    "ready, TrafficReachable=False, taints not written yet",
    "Ready=Unknown, unreachable and traffic-unreachable taints"}
HEALTH_CHECKED: Obj = {**POLICY, "spec": {**POLICY["spec"], "healthCheck": {
    "path": "/healthz", "interval": "1s"}}}


@pytest.mark.parametrize(("what", "state", "serves"), STATES, ids=[s[0] for s in STATES])
async def test_a_health_checked_gateway_keeps_only_what_the_control_plane_lost(
        tmp_path: Path, what: str, state: Obj, serves: bool) -> None:
    """With active health checks the gateway keeps an Unknown cluster's endpoints (they
    are checked, not the heartbeats: a control-plane partition must not cut users off),
    and drops them for every other reason the rule gives."""
    async with registry_at(tmp_path) as registry:
        cluster = await stored_cluster(registry, NAME, ingressAddress="127.0.1.1", **state)
    backend = gateway_model([HEALTH_CHECKED], [_slice()], [cluster]).match(HOST, "/")
    assert backend is not None
    kept = any(e.cluster == NAME for e in backend.endpoints)
    assert kept == (serves or what in LEFT_TO_HEALTH_CHECKS), what
    assert ClusterView.of(cluster).lost_by_control_plane == (what in LOST_BY_CONTROL_PLANE)
