"""The pure derivation of a ServiceImport from Works, EndpointSlices and Clusters."""

from __future__ import annotations

from typing import Any, cast

from flotilla.client.base import ResourceClient, WatchEvent
from flotilla.controllers.discovery import (
    ClusterView,
    Condition,
    Index,
    cluster_exports,
    cluster_view,
    derive,
    services_of_work,
    set_conditions,
)
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.resources.kinds import by_kind
from flotilla.resources.models.discovery import ServiceImport

Obj = dict[str, Any]


def service(port: int = 8000, *, headless: bool = False, name: str = "shop") -> Obj:
    spec: Obj = {"selector": {"app": name},
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def work(cluster: str, created: str, *manifests: Obj) -> Obj:
    return {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "Work",
            "metadata": {"name": "default.shop", "namespace": f"flotilla-es-{cluster}",
                         "creationTimestamp": created},
            "spec": {"workload": {"manifests": list(manifests)}}}


def endpoint_slice(cluster: str, *ports: int, ready: bool = True) -> Obj:
    return {"metadata": {"name": f"shop-{cluster}", "namespace": "default"},
            "spec": {"service": "shop", "cluster": cluster, "region": "r", "zone": "z",
                     "endpoints": [{"address": "127.0.0.1", "pod": f"shop-{cluster}-{i}",
                                    "ready": ready,
                                    "ports": [{"name": "http", "port": p}]}
                                   for i, p in enumerate(ports)]}}


HEALTHY = {"east": ClusterView("cn-east", "cn-east-a", True),
           "south": ClusterView("cn-south", "cn-south-a", True)}


def conditions(d: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in d.conditions}


def test_two_clusters_same_ports_list_every_endpoint() -> None:
    works = [work("east", "2026-01-01T00:00:00Z", service()),
             work("south", "2026-01-01T00:00:01Z", service())]
    exports = cluster_exports(works, "default", "shop")
    d = derive(service(), exports,
               {"east": endpoint_slice("east", 4001, 4002), "south": endpoint_slice("south", 5001)},
               HEALTHY)
    assert conditions(d) == {"Valid": ("True", "Valid"), "Conflict": ("False", "NoConflicts")}
    assert d.spec == {"type": "ClusterSetIP",
                      "ports": [{"name": "http", "protocol": "TCP", "port": 8000}]}
    assert d.status["clusters"] == [{"cluster": "east"}, {"cluster": "south"}]
    got = [(e["cluster"], e["region"], e["zone"], e["port"], e["ready"])
           for e in d.status["endpoints"]]
    # An endpoint without a zone of its own is in its cluster's zone.
    assert got == [("east", "cn-east", "cn-east-a", 4001, True),
                   ("east", "cn-east", "cn-east-a", 4002, True),
                   ("south", "cn-south", "cn-south-a", 5001, True)]
    # What the controller writes validates against the ServiceImport model.
    ServiceImport.model_validate({"apiVersion": "multicluster.x-k8s.io/v1alpha1",
                                  "kind": "ServiceImport",
                                  "metadata": {"name": "shop", "namespace": "default"},
                                  "spec": d.spec, "status": d.status})


def test_unhealthy_or_no_execute_cluster_contributes_no_endpoints() -> None:
    works = [work("east", "2026-01-01T00:00:00Z", service()),
             work("south", "2026-01-01T00:00:00Z", service())]
    slices = {"east": endpoint_slice("east", 4001), "south": endpoint_slice("south", 5001)}
    views = {**HEALTHY, "east": ClusterView("cn-east", "", False)}
    d = derive(service(), cluster_exports(works, "default", "shop"), slices, views)
    assert {e["cluster"] for e in d.status["endpoints"]} == {"south"}
    assert d.status["clusters"] == [{"cluster": "east"}, {"cluster": "south"}]

    tainted: Obj = {"metadata": {"name": "east"},
               "spec": {"region": "cn-east", "taints": [{"key": "x", "effect": "NoExecute"}]},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert cluster_view(tainted).healthy is False
    tainted["spec"]["taints"][0]["effect"] = "NoSchedule"
    assert cluster_view(tainted).healthy is True


def test_port_conflict_oldest_export_wins_and_conflicting_endpoints_are_left_out() -> None:
    works = [work("south", "2026-01-01T00:00:05Z", service(8001)),
             work("east", "2026-01-01T00:00:00Z", service(8000))]
    slices = {"east": endpoint_slice("east", 4001), "south": endpoint_slice("south", 5001)}
    d = derive(service(), cluster_exports(works, "default", "shop"), slices, HEALTHY)
    assert conditions(d)["Conflict"] == ("True", "PortConflict")
    assert d.spec is not None
    assert d.spec["ports"][0]["port"] == 8000
    msg = next(c.message for c in d.conditions if c.type == "Conflict")
    assert "oldest export (east)" in msg
    assert "south has http:8001/TCP" in msg
    assert {e["cluster"] for e in d.status["endpoints"]} == {"east"}


def test_type_conflict_is_reported() -> None:
    works = [work("east", "2026-01-01T00:00:00Z", service()),
             work("south", "2026-01-01T00:00:01Z", service(headless=True))]
    d = derive(service(), cluster_exports(works, "default", "shop"), {}, HEALTHY)
    assert conditions(d)["Conflict"] == ("True", "TypeConflict")


def test_missing_or_external_name_service_is_not_exported() -> None:
    d = derive(None, {}, {}, HEALTHY)
    assert d.spec is None
    assert conditions(d) == {"Valid": ("False", "NoService")}
    external = service()
    external["spec"]["type"] = "ExternalName"
    d = derive(external, {}, {}, HEALTHY)
    assert d.spec is None
    assert conditions(d) == {"Valid": ("False", "InvalidServiceType")}


def test_placed_nowhere_describes_the_template() -> None:
    d = derive(service(9000), {}, {}, HEALTHY)
    assert d.spec is not None
    assert d.spec["ports"][0]["port"] == 9000
    assert d.status == {"clusters": [], "endpoints": []}


def test_other_services_and_namespaces_in_works_are_ignored() -> None:
    other = service(name="cart")
    elsewhere = service()
    elsewhere["metadata"]["namespace"] = "prod"
    works = [work("east", "2026-01-01T00:00:00Z", other, elsewhere),
             {"metadata": {"namespace": "not-an-execution-ns"}, "spec": {}}]
    assert cluster_exports(works, "default", "shop") == {}


def test_set_conditions_keeps_transition_time_when_status_is_unchanged() -> None:
    obj: Obj = {}
    assert set_conditions(obj, [Condition("Valid", "True", "Valid", "ok")])
    first = obj["status"]["conditions"][0]["lastTransitionTime"]
    assert not set_conditions(obj, [Condition("Valid", "True", "Valid", "ok")])
    assert set_conditions(obj, [Condition("Valid", "True", "Valid", "new words")])
    assert obj["status"]["conditions"][0]["lastTransitionTime"] == first


def test_index_follows_the_informer_through_add_move_and_delete() -> None:
    """Works grouped by the Services they carry, kept in step by the informer's own
    event path (a Work that stops carrying a Service leaves that group)."""
    informer = Informer(cast(ResourceClient, None), by_kind("Work"))
    index = Index(informer, services_of_work)
    shop, cart = ObjectKey("default", "shop"), ObjectKey("default", "cart")

    def event(type_: str, obj: Obj, rv: int) -> None:
        obj["metadata"]["resourceVersion"] = str(rv)
        informer._apply(WatchEvent(type_, obj))  # type: ignore[arg-type]

    event("ADDED", work("east", "t", service()), 1)
    event("ADDED", work("south", "t", service(), service(name="cart")), 2)
    assert sorted(w["metadata"]["namespace"] for w in index.get(shop)) == \
        ["flotilla-es-east", "flotilla-es-south"]
    event("MODIFIED", work("south", "t", service(name="cart")), 3)
    assert [w["metadata"]["namespace"] for w in index.get(shop)] == ["flotilla-es-east"]
    assert len(index.get(cart)) == 1
    event("DELETED", work("south", "t", service(name="cart")), 4)
    assert index.get(cart) == []
