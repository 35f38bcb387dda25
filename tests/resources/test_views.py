"""ClusterView: what every component reads of a stored Cluster, and the serve-traffic rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flotilla.resources.views import ClusterView, Taint
from flotilla.resources.wellknown import TAINT_UNREACHABLE
from tests.resources.stored import ready, registry_at, stored_cluster

UNREACHABLE = [{"key": TAINT_UNREACHABLE, "effect": "NoSchedule",
                "timeAdded": "2027-01-15T08:00:01Z"},
               {"key": TAINT_UNREACHABLE, "effect": "NoExecute",
                "timeAdded": "2027-01-15T08:00:01Z"}]


async def test_a_ready_cluster_reads_as_registered_and_serves_traffic(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored_cluster(
            registry, "east-1", ingressAddress="127.0.1.1:80", unschedulable=True,
            apiEndpoint="http://127.0.1.1:9100", provider="local",
            conditions=[ready("True")],
            status={"capacity": {"cpu": "4", "memory": "8Gi", "pods": 110},
                    "allocatable": {"cpu": "3500m", "pods": "100"},
                    "allocated": {"cpu": "250m"}})
    view = ClusterView.of(obj)
    assert (view.name, view.region, view.zone, view.provider) == \
        ("east-1", "cn-east", "cn-east-a", "local")
    assert dict(view.labels) == {"tier": "gold"}
    assert view.ingress_address == "127.0.1.1:80"
    assert view.api_endpoint == "http://127.0.1.1:9100"
    assert view.cordoned is True
    assert (view.ready_status, view.ready_reason) == ("True", "ClusterReady")
    assert view.ready
    assert view.serves_traffic
    # Quantities stay as the API accepts them; an integer pod count reads like "110".
    assert dict(view.capacity) == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert dict(view.allocatable) == {"cpu": "3500m", "pods": "100"}
    assert dict(view.allocated) == {"cpu": "250m"}


async def test_ready_unknown_with_unreachable_taints_serves_nothing(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored_cluster(registry, "east-1", taints=UNREACHABLE,
                                   conditions=[ready("Unknown", "ClusterStatusUnknown")])
    view = ClusterView.of(obj)
    assert (view.ready_status, view.ready_reason) == ("Unknown", "ClusterStatusUnknown")
    assert not view.ready
    assert not view.serves_traffic
    assert view.taints == (
        Taint(TAINT_UNREACHABLE, "NoSchedule", "", "2027-01-15T08:00:01Z"),
        Taint(TAINT_UNREACHABLE, "NoExecute", "", "2027-01-15T08:00:01Z"))
    assert view.no_execute_taints == view.taints[1:]


async def test_ready_unknown_alone_is_enough_to_stop_traffic(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored_cluster(registry, "east-1", conditions=[ready("Unknown")])
    assert not ClusterView.of(obj).serves_traffic


async def test_a_cluster_never_heard_from_is_not_ready(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored_cluster(registry, "east-1")  # registered, no status yet
    assert "status" not in obj or not obj["status"].get("conditions")
    view = ClusterView.of(obj)
    assert (view.ready_status, view.ready_reason) == ("", "")
    assert not view.ready
    assert not view.serves_traffic


async def test_no_schedule_keeps_traffic_no_execute_stops_it(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        kept = await stored_cluster(
            registry, "a", conditions=[ready("True")],
            taints=[{"key": "maintenance", "value": "true", "effect": "NoSchedule"},
                    {"key": "soon", "effect": "PreferNoSchedule"}])
        drained = await stored_cluster(
            registry, "b", conditions=[ready("True")],
            taints=[{"key": "maintenance", "value": "true", "effect": "NoExecute"}])
    assert ClusterView.of(kept).serves_traffic
    assert ClusterView.of(kept).no_execute_taints == ()
    view = ClusterView.of(drained)
    assert view.ready
    assert not view.serves_traffic
    assert view.no_execute_taints == (Taint("maintenance", "NoExecute", "true"),)


async def test_the_first_ready_condition_is_the_one_that_counts(tmp_path: Path) -> None:
    """The store accepts a list with two Ready entries; every reader must take the
    first, as Kubernetes' FindStatusCondition does (one "any Ready=True" reader would
    send traffic to a cluster the others think is down)."""
    async with registry_at(tmp_path) as registry:
        down_then_up = await stored_cluster(registry, "a",
                                            conditions=[ready("False"), ready("True")])
        up_then_down = await stored_cluster(registry, "b",
                                            conditions=[ready("True"), ready("False")])
    assert ClusterView.of(down_then_up).ready_status == "False"
    assert not ClusterView.of(down_then_up).serves_traffic
    assert ClusterView.of(up_then_down).serves_traffic


async def test_the_view_cannot_be_changed_nor_follows_the_cached_dict(tmp_path: Path) -> None:
    async with registry_at(tmp_path) as registry:
        obj = await stored_cluster(registry, "a", conditions=[ready("True")],
                                   status={"capacity": {"cpu": "4"}})
    view = ClusterView.of(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.region = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.labels["tier"] = "bronze"  # type: ignore[index]
    with pytest.raises(TypeError):
        view.capacity["cpu"] = "64"  # type: ignore[index]
    assert isinstance(view.taints, tuple)
    # A change to the cached dict after the view was built does not show through it.
    obj["metadata"]["labels"]["tier"] = "bronze"
    obj["status"]["conditions"][0]["status"] = "False"
    obj["spec"]["taints"].append({"key": "x", "effect": "NoExecute"})
    assert view.labels["tier"] == "gold"
    assert view.serves_traffic
    # Views of equal clusters are equal, and hashable (usable as keys and in sets).
    other = ClusterView.of(await _same(tmp_path, view))
    assert other == view
    assert hash(other) == hash(view)


async def _same(tmp_path: Path, view: ClusterView) -> dict[str, object]:
    """A second stored copy of the cluster ``view`` was built from (for equality)."""
    async with registry_at(tmp_path / "again") as registry:
        return await stored_cluster(registry, view.name, conditions=[ready("True")],
                                    status={"capacity": {"cpu": "4"}})


@pytest.mark.parametrize("odd", [
    None,
    {},
    {"metadata": "east", "spec": [], "status": 7},
    {"spec": {"taints": "NoExecute", "region": 5, "unschedulable": "yes"},
     "status": {"conditions": {"type": "Ready", "status": "True"}}},
    {"spec": {"taints": [None, "x", {"effect": 3}]},
     "status": {"conditions": [None, "Ready", {"type": "Ready", "status": True}],
                "capacity": {"cpu": ["4"], "pods": True}}},
])
def test_an_odd_object_reads_as_empty_and_serves_nothing(odd: object) -> None:
    """The data planes build views of whatever the store lists; one odd object must not
    stop them (and an odd Ready, such as the boolean true, is not "True")."""
    view = ClusterView.of(odd)  # type: ignore[arg-type]
    assert not view.serves_traffic
    assert view.region == ""
    assert view.cordoned is False
    assert dict(view.capacity) == {}
    assert all(isinstance(t, Taint) for t in view.taints)
