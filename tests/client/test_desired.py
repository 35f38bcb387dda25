"""`write_desired` and `converge` over the real registry and SQLite store: what is
written, and what is not."""

from __future__ import annotations

import copy

from flotilla.api.registry import Registry
from flotilla.client.base import Object
from flotilla.client.desired import converge, write_desired
from flotilla.resources.kinds import by_kind

CONFIGMAP = by_kind("ConfigMap")
CLUSTER = by_kind("Cluster")


def rv(obj: Object) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_an_edit_that_adds_only_empty_metadata_writes_nothing(registry: Registry) -> None:
    read = await registry.create({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "c", "namespace": "default"},
                                  "data": {"k": "v"}})
    desired = copy.deepcopy(read)
    desired["metadata"].setdefault("annotations", {})
    desired["metadata"].setdefault("labels", {})
    assert await write_desired(registry, read, desired) is read
    assert rv(await registry.get(CONFIGMAP, "default", "c")) == rv(read)


async def test_a_kind_without_a_status_subresource_is_written_whole(registry: Registry) -> None:
    read = await registry.create({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "c", "namespace": "default"},
                                  "data": {"k": "v"}})
    desired = copy.deepcopy(read)
    desired["data"]["k"] = "w"
    stored = await write_desired(registry, read, desired)
    assert rv(stored) > rv(read)
    assert (await registry.get(CONFIGMAP, "default", "c"))["data"] == {"k": "w"}


async def test_converge_creates_with_status_and_then_leaves_it(registry: Registry) -> None:
    def fresh() -> Object:
        return {"apiVersion": CLUSTER.api_version, "kind": "Cluster",
                "metadata": {"name": "a"}, "spec": {"region": "r1"},
                "status": {"conditions": [{"type": "Ready", "status": "True",
                                           "reason": "ClusterReady", "message": "",
                                           "lastTransitionTime": "2027-01-15T08:00:00Z"}]}}

    def same(obj: Object) -> None:
        obj["spec"]["region"] = "r1"

    created = await converge(registry, CLUSTER, "", "a", same, create=fresh)
    assert created is not None
    assert created["status"]["conditions"][0]["status"] == "True"
    again = await converge(registry, CLUSTER, "", "a", same, create=fresh)
    assert again is not None
    assert rv(again) == rv(created), "nothing changed, nothing written"
    assert await converge(registry, CLUSTER, "", "missing", same) is None
