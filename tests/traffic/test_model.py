"""Building the routing model from API objects (a pure function: dicts in, model out)."""

from __future__ import annotations

from typing import Any

import yaml

from flotilla.traffic.model import build_model, cluster_usable, parse_policy

SHOP_POLICY = yaml.safe_load("""
apiVersion: traffic.flotilla.io/v1alpha1
kind: TrafficPolicy
metadata: {name: shop, namespace: default}
spec:
  service: shop
  hosts: [shop.example.test]
  strategy: {type: Locality, hashOn: "header:x-user"}
  locality: {failover: [cn-east, cn-south]}
  healthCheck: {path: /healthz, interval: 1s, timeout: 500ms,
                healthyThreshold: 2, unhealthyThreshold: 2}
  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 10s, maxEjectionPercent: 50}
  retries: {attempts: 2, retryOn: [connect-failure, reset, "503"]}
  timeouts: {connect: 1s, perTry: 2s, total: 5s}
""")


def cluster(name: str, region: str, ready: str = "True",
            taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {"region": region, "zone": f"{region}-a", "taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def eps(cluster_name: str, region: str, *ports: int, ready: bool = True,
        service: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "discovery.flotilla.io/v1alpha1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-{cluster_name}", "namespace": "default"},
            "spec": {"service": service, "cluster": cluster_name, "region": region,
                     "zone": f"{region}-a",
                     "ingress": {"address": "127.0.1.1", "ports": [{"name": "http",
                                                                    "port": 80}]},
                     "endpoints": [{"address": "127.0.0.1", "ready": ready, "pod": f"p{p}",
                                    "node": "n1", "zone": f"{region}-a",
                                    "ports": [{"name": "http", "port": p,
                                               "protocol": "TCP"}]} for p in ports]}}


def test_the_shop_policy_applies_as_written() -> None:
    p = parse_policy(SHOP_POLICY)
    assert p.hosts == ("shop.example.test",)
    assert p.strategy.type == "Locality"
    assert p.strategy.hash_on is not None
    assert (p.strategy.hash_on.source, p.strategy.hash_on.name) == ("header", "x-user")
    assert p.locality.failover == ("cn-east", "cn-south")
    assert p.health_check is not None
    assert (p.health_check.interval, p.health_check.timeout) == (1.0, 0.5)
    assert p.outlier.consecutive_errors == 3
    assert p.outlier.base_ejection_time == 10.0
    assert p.retries.attempts == 2
    assert p.retries.retry_on == {"connect-failure", "reset", "503"}
    assert (p.timeouts.connect, p.timeouts.per_try, p.timeouts.total) == (1.0, 2.0, 5.0)


def test_endpoints_of_ready_untainted_clusters_only() -> None:
    """And of a cluster only the control plane lost (Unknown, no other NoExecute
    taint): SHOP_POLICY checks the pods itself, so they stay while they pass."""
    model = build_model(
        [SHOP_POLICY],
        [eps("east", "cn-east", 8001, 8002), eps("south", "cn-south", 8003),
         eps("down", "cn-west", 8004), eps("tainted", "cn-west", 8005),
         eps("ghost", "cn-west", 8006), eps("east2", "cn-east", 8007, ready=False),
         eps("drained", "cn-west", 8008)],
        [cluster("east", "cn-east"), cluster("south", "cn-south"),
         cluster("down", "cn-west", ready="Unknown"),
         cluster("tainted", "cn-west", taints=[{"key": "flotilla.io/unreachable",
                                                "effect": "NoExecute"}]),
         cluster("east2", "cn-east"),
         cluster("drained", "cn-west", ready="Unknown", taints=[
             {"key": "maintenance", "effect": "NoExecute"}])])
    backend = model.match("shop.example.test", "/cart")
    assert backend is not None
    assert sorted((e.cluster, e.region, e.port) for e in backend.endpoints) == [
        ("down", "cn-west", 8004), ("east", "cn-east", 8001), ("east", "cn-east", 8002),
        ("south", "cn-south", 8003)]
    assert model.errors == ()


def test_noschedule_taint_keeps_traffic() -> None:
    assert cluster_usable(cluster("a", "r", taints=[{"key": "k", "effect": "NoSchedule"}]))
    assert not cluster_usable(cluster("a", "r", ready="False"))


def test_weights_paths_and_wildcard_hosts() -> None:
    policy = {"metadata": {"name": "api", "namespace": "default"},
              "spec": {"service": "shop", "hosts": ["*.example.test"], "paths": ["/api"],
                       "strategy": {"type": "WeightedRoundRobin"},
                       "weights": {"east": 3, "south": 0}}}
    model = build_model([policy], [eps("east", "r1", 9001), eps("south", "r2", 9002)],
                        [cluster("east", "r1"), cluster("south", "r2")])
    backend = model.match("shop.example.test", "/api/items")
    assert backend is not None
    assert [(e.cluster, e.weight) for e in backend.endpoints] == [("east", 3)]
    assert model.match("shop.example.test", "/web") is None
    assert model.match("example.test", "/api") is None


def test_a_bad_policy_is_reported_and_skipped_not_half_applied() -> None:
    bad = {"metadata": {"name": "bad", "namespace": "default"},
           "spec": {"service": "shop", "hosts": ["bad.test"],
                    "strategy": {"type": "Fastest"}}}
    model = build_model([SHOP_POLICY, bad], [], [])
    assert model.match("bad.test", "/") is None
    assert model.match("shop.example.test", "/") is not None
    assert len(model.errors) == 1
    assert "default/bad" in model.errors[0]
    assert "spec.strategy.type" in model.errors[0]
