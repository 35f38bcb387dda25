"""API-shaped dicts for DNS tests: what the API server would list for each kind."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
ZONE = "global.test"


def cluster(
    name: str,
    region: str,
    ingress: str,
    *,
    ready: bool = True,
    taints: list[Obj] | None = None,
) -> Obj:
    return {
        "apiVersion": "cluster.flotilla.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"region": region, "zone": f"{region}-a", "ingressAddress": ingress,
                 "taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def endpoint_slice(
    service: str,
    cluster_name: str,
    endpoints: list[tuple[str, int]],
    *,
    namespace: str = "default",
    region: str = "",
    port_name: str = "http",
    ready: bool = True,
    ingress: str = "127.0.0.1:8080",
) -> Obj:
    return {
        "apiVersion": "discovery.flotilla.io/v1alpha1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-{cluster_name}", "namespace": namespace},
        "spec": {
            "service": service,
            "cluster": cluster_name,
            "region": region,
            "zone": "",
            "ingress": {"address": ingress, "ports": []},
            "endpoints": [
                {
                    "address": addr,
                    "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
                    "ready": ready,
                    "pod": f"{service}-{i}",
                    "node": "node-1",
                    "zone": "",
                }
                for i, (addr, port) in enumerate(endpoints)
            ],
        },
    }


def traffic_policy(
    name: str,
    hosts: list[str],
    *,
    service: str | None = None,
    strategy: str = "RoundRobin",
    dns: Obj | None = None,
    failover: list[str] | None = None,
    weights: list[Obj] | None = None,
    namespace: str = "default",
) -> Obj:
    spec: Obj = {"service": service or name, "hosts": hosts, "strategy": {"type": strategy}}
    if dns is not None:
        spec["dns"] = dns
    if failover is not None:
        spec["locality"] = {"failover": failover}
    if weights is not None:
        spec["weights"] = weights
    return {
        "apiVersion": "traffic.flotilla.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def service_export(name: str, namespace: str = "default") -> Obj:
    return {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport",
        "metadata": {"name": name, "namespace": namespace},
    }


def three_regions() -> dict[str, list[Obj]]:
    """east (cn-east), south (cn-south), west (us-west), each running ``shop``."""
    return {
        "clusters": [
            cluster("east", "cn-east", "127.0.1.1"),
            cluster("south", "cn-south", "127.0.2.1"),
            cluster("west", "us-west", "127.0.3.1"),
        ],
        "endpoint_slices": [
            endpoint_slice("shop", "east", [("127.0.1.10", 31001)]),
            endpoint_slice("shop", "south", [("127.0.2.10", 32001), ("127.0.2.11", 32002)]),
            endpoint_slice("shop", "west", [("127.0.3.10", 33001)]),
        ],
        "service_exports": [service_export("shop")],
    }
