"""The pure model builder: who is in the answers, and how odd input is handled."""

from __future__ import annotations

import pytest

from flotilla.dns.model import build_model, check_zone
from tests.dns.objects import (
    ZONE,
    cluster,
    endpoint_slice,
    service_export,
    three_regions,
    traffic_policy,
)


def _clusters_of(objects: dict[str, list[dict[str, object]]], host: str) -> list[str]:
    model = build_model(ZONE, **objects)  # type: ignore[arg-type]
    return [t.cluster for t in model.names[host].targets]


def test_healthy_clusters_with_ready_endpoints_are_targets() -> None:
    objects = three_regions()
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    assert _clusters_of(objects, "shop.global.test") == ["east", "south", "west"]


def test_not_ready_tainted_and_endpointless_clusters_are_left_out() -> None:
    objects = three_regions()
    objects["clusters"][0] = cluster("east", "cn-east", "127.0.1.1", ready=False)
    objects["clusters"][1] = cluster(
        "south", "cn-south", "127.0.2.1",
        taints=[{"key": "flotilla.io/unreachable", "effect": "NoExecute"}],
    )
    objects["endpoint_slices"][2] = endpoint_slice("shop", "west", [("127.0.3.10", 1)],
                                                   ready=False)
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    assert _clusters_of(objects, "shop.global.test") == []


def test_noschedule_taint_keeps_serving_traffic() -> None:
    objects = three_regions()
    objects["clusters"][0] = cluster("east", "cn-east", "127.0.1.1",
                                     taints=[{"key": "cordon", "effect": "NoSchedule"}])
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    assert "east" in _clusters_of(objects, "shop.global.test")


def test_strategy_mapping_and_dns_override() -> None:
    model = build_model(ZONE, traffic_policies=[
        traffic_policy("a", ["a.global.test"], strategy="WeightedRoundRobin"),
        traffic_policy("b", ["b.global.test"], strategy="Locality"),
        traffic_policy("c", ["c.global.test"], strategy="LeastRequest"),
        traffic_policy("d", ["d.global.test"], strategy="Locality",
                       dns={"strategy": "Failover", "ttl": 30}),
        traffic_policy("e", ["e.global.test"], dns={"strategy": "WeightedRoundRobin",
                                                    "ttl": "1m"}),
    ])
    got = {h: (n.strategy, n.ttl) for h, n in model.names.items()}
    assert got == {
        "a.global.test": ("Weighted", 5),
        "b.global.test": ("Geo", 5),
        "c.global.test": ("RoundRobin", 5),
        "d.global.test": ("Failover", 30),
        "e.global.test": ("Weighted", 60),
    }


def test_weights_accepted_as_list_or_map() -> None:
    objects = three_regions()
    objects["traffic_policies"] = [
        traffic_policy("shop", ["l.global.test"], weights=[
            {"cluster": "east", "weight": 3}, {"cluster": "west", "weight": 0}]),
    ]
    tp = traffic_policy("shop", ["m.global.test"], namespace="default")
    tp["metadata"]["name"] = "shop-map"
    tp["spec"]["strategy"]["weights"] = {"south": 7}
    objects["traffic_policies"].append(tp)
    model = build_model(ZONE, **objects)  # type: ignore[arg-type]
    assert {t.cluster: t.weight for t in model.names["l.global.test"].targets} == {
        "east": 3, "south": 1, "west": 0}
    assert {t.cluster: t.weight for t in model.names["m.global.test"].targets} == {
        "east": 1, "south": 7, "west": 1}


def test_bad_objects_are_skipped_and_named_not_fatal() -> None:
    objects = three_regions()
    objects["traffic_policies"] = [
        traffic_policy("shop", ["shop.global.test", "shop.elsewhere.test", 7]),  # type: ignore[list-item]
        traffic_policy("bad", ["bad.global.test"], dns={"strategy": "Nearest"}),
        {"metadata": "nonsense", "spec": []},
    ]
    objects["endpoint_slices"].append({"metadata": {"name": "x", "namespace": "default"}})
    objects["clusters"].append({"spec": {}})
    model = build_model(ZONE, **objects)  # type: ignore[arg-type]
    assert list(model.names) == ["shop.global.test"]
    text = "\n".join(model.problems)
    assert "outside zone" in text
    assert "spec.dns.strategy must be one of" in text
    assert "spec.service and spec.cluster required" in text
    assert "Cluster without metadata.name" in text


def test_duplicate_host_first_policy_wins_and_is_reported() -> None:
    model = build_model(ZONE, traffic_policies=[
        traffic_policy("b", ["x.global.test"]), traffic_policy("a", ["X.Global.Test."]),
    ])
    assert model.names["x.global.test"].policy == "default/a"
    assert any("already served" in p for p in model.problems)


def test_exported_service_backends_and_names_normalised() -> None:
    objects = three_regions()
    objects["service_exports"].append(service_export("idle"))
    model = build_model("Global.Test.", **objects)  # type: ignore[arg-type]
    assert model.zone == "global.test"
    shop = model.services[("default", "shop")]
    assert [b.cluster for b in shop.backends] == ["east", "south", "west"]
    assert shop.backends[1].endpoints[1].ports[0].port == 32002
    assert model.services[("default", "idle")].backends == ()


@pytest.mark.parametrize("zone", ["", ".", "clusterset.local", "local", "a..b", "x" * 64 + ".t"])
def test_unservable_zones_are_refused_with_a_reason(zone: str) -> None:
    with pytest.raises(ValueError, match="zone"):
        check_zone(zone)
    assert check_zone("Global.Test.") == "global.test"
