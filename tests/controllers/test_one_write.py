"""A reconcile writes each object at most once per part: one spec write and one status
write, and none at all when nothing changed.

Over the real API registry and SQLite store, through a client that records every write
on its way to the registry and the resourceVersion the store gave back, so a write the
recording missed would still show as a version the test did not expect.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from flotilla.api.registry import Registry
from flotilla.client.base import Object, ObjectList, WatchEvent
from flotilla.client.desired import converge, write_desired
from flotilla.controllers.failover.controller import FailoverController
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.placement.scheduling import SchedulingController
from flotilla.controllers.runtime import ControllerManager
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.wellknown import TAINT_UNREACHABLE, parse_rfc3339
from tests.helpers import wait_for

BINDING = by_kind("ResourceBinding")
CLUSTER = by_kind("Cluster")
PP = by_kind("PropagationPolicy")
CPP = by_kind("ClusterPropagationPolicy")
KEY = ObjectKey("default", "shop-deployment")
T0 = parse_rfc3339("2027-01-15T08:00:00Z")


@dataclass
class Recording:
    """The real client, with a log of (verb, kind, name, resourceVersion stored)."""

    inner: Registry
    writes: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def get(self, kind: Kind, namespace: str, name: str) -> Object:
        return await self.inner.get(kind, namespace, name)

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   selector: str | None = None, limit: int = 0,
                   continue_token: str | None = None) -> ObjectList:
        return await self.inner.list(kind, namespace, selector=selector, limit=limit,
                                     continue_token=continue_token)

    async def create(self, obj: Object) -> Object:
        return self._log("create", await self.inner.create(obj))

    async def update(self, obj: Object) -> Object:
        return self._log("update", await self.inner.update(obj))

    async def update_status(self, obj: Object) -> Object:
        return self._log("update_status", await self.inner.update_status(obj))

    async def delete(self, kind: Kind, namespace: str, name: str, *,
                     resource_version: str | None = None) -> Object | None:
        self.writes.append(("delete", kind.kind, name, ""))
        return await self.inner.delete(kind, namespace, name,
                                       resource_version=resource_version)

    def watch(self, kind: Kind, namespace: str | None = None, *, resource_version: str,
              selector: str | None = None) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(kind, namespace, resource_version=resource_version,
                                selector=selector)

    def _log(self, verb: str, stored: Object) -> Object:
        meta = stored["metadata"]
        self.writes.append((verb, stored["kind"], meta["name"], meta["resourceVersion"]))
        return stored

    def take(self) -> list[tuple[str, str]]:
        """The writes since the last call, as (verb, kind), Events left out."""
        out = [(verb, kind) for verb, kind, _, _ in self.writes if kind != "Event"]
        self.writes.clear()
        return out


async def _cluster(registry: Registry, name: str, taints: list[Object] | None = None) -> None:
    created = await registry.create({
        "apiVersion": CLUSTER.api_version, "kind": "Cluster", "metadata": {"name": name},
        "spec": {"region": "r1", "zone": "r1-a", "taints": taints or []}})
    created["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                         "reason": "ClusterReady"}]}
    await registry.update_status(created)


async def _binding(registry: Registry, clusters: list[Object]) -> Object:
    return await registry.create({
        "apiVersion": BINDING.api_version, "kind": "ResourceBinding",
        "metadata": {"name": KEY.name, "namespace": KEY.namespace},
        "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment",
                              "namespace": "default", "name": "shop"},
                 "replicas": 4, "placement": {}, "clusters": clusters}})


async def _caught_up(registry: Registry, informer: Informer) -> None:
    """Wait until the informer holds the binding as the store has it now."""
    async def same() -> bool:
        cached = informer.cache.get(KEY)
        stored = await registry.get(BINDING, KEY.namespace, KEY.name)
        return cached is not None and \
            cached["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    await wait_for(same, what="the informer to catch up with the binding")


async def test_a_failover_reconcile_writes_the_spec_once_and_then_nothing(
        registry: Registry) -> None:
    """An eviction changes spec.clusters, the eviction tasks and the timers annotation:
    one spec write (it took two before). The next reconcile sees the task and sets the
    Failover condition: one status write. Then nothing changes, and nothing is written."""
    await _cluster(registry, "a")
    await _cluster(registry, "b", [{"key": TAINT_UNREACHABLE, "effect": "NoExecute",
                                    "timeAdded": "2027-01-15T07:00:00Z"}])
    await _binding(registry, [{"name": "a", "replicas": 2}, {"name": "b", "replicas": 2}])
    recording = Recording(registry)
    manager = ControllerManager(recording)  # type: ignore[arg-type]
    informers = {k.kind: manager.informer(k) for k in (BINDING, CLUSTER, PP, CPP)}
    reconciler = FailoverController(recording, informers, grace=3,  # type: ignore[arg-type]
                                    clock=lambda: T0)
    async with manager:
        await wait_for(lambda: _synced(manager), what="the informers' first lists")
        before = (await registry.get(BINDING, KEY.namespace, KEY.name))["metadata"]
        await reconciler.reconcile(KEY)
        assert recording.take() == [("update", "ResourceBinding")]
        after = await registry.get(BINDING, KEY.namespace, KEY.name)
        assert int(after["metadata"]["resourceVersion"]) > int(before["resourceVersion"])
        assert [t["name"] for t in after["spec"]["clusters"]] == ["a"]
        assert [t["fromCluster"] for t in after["spec"]["gracefulEvictionTasks"]] == ["b"]
        assert "failover.flotilla.io/timers" in after["metadata"]["annotations"]

        await _caught_up(registry, informers["ResourceBinding"])
        await reconciler.reconcile(KEY)
        assert recording.take() == [("update_status", "ResourceBinding")]
        written = await registry.get(BINDING, KEY.namespace, KEY.name)
        assert [(c["type"], c["status"], c["reason"])
                for c in written["status"]["conditions"]] == [("Failover", "True", "Evicting")]

        await _caught_up(registry, informers["ResourceBinding"])
        for _ in range(3):
            await reconciler.reconcile(KEY)
        assert recording.take() == []
        still = await registry.get(BINDING, KEY.namespace, KEY.name)
        assert still["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]


async def test_a_scheduling_reconcile_writes_spec_and_status_once_each(
        registry: Registry) -> None:
    await _cluster(registry, "a")
    await _cluster(registry, "b")
    await _binding(registry, [])
    recording = Recording(registry)
    manager = ControllerManager(recording)  # type: ignore[arg-type]
    bindings, clusters = manager.informer(BINDING), manager.informer(CLUSTER)
    reconciler = SchedulingController(recording, bindings, clusters)  # type: ignore[arg-type]
    async with manager:
        await wait_for(lambda: _synced(manager), what="the informers' first lists")
        await reconciler.reconcile(KEY)
        assert recording.take() == [("update", "ResourceBinding"),
                                    ("update_status", "ResourceBinding")]
        placed = await registry.get(BINDING, KEY.namespace, KEY.name)
        # No placement: Duplicated, every cluster runs all replicas.
        assert placed["spec"]["clusters"] == [{"name": "a", "replicas": 4},
                                              {"name": "b", "replicas": 4}]
        assert placed["status"]["conditions"][0]["type"] == "Scheduled"

        await _caught_up(registry, bindings)
        await reconciler.reconcile(KEY)
        assert recording.take() == []
        again = await registry.get(BINDING, KEY.namespace, KEY.name)
        assert again["metadata"]["resourceVersion"] == placed["metadata"]["resourceVersion"]


async def test_the_caches_controllers_read_cannot_be_changed_in_place(
        registry: Registry) -> None:
    """What a reconciler reads from the manager's informers is read-only all the way
    down, so a reconciler that edits it instead of a copy fails at once, not later as
    a cache that disagrees with the server."""
    await _cluster(registry, "a")
    await _binding(registry, [{"name": "a", "replicas": 4}])
    manager = ControllerManager(registry)
    bindings, clusters = manager.informer(BINDING), manager.informer(CLUSTER)
    async with manager:
        await wait_for(lambda: _synced(manager), what="the informers' first lists")
        binding, cluster = bindings.cache.get(KEY), clusters.cache.get(ObjectKey("", "a"))
        assert binding is not None
        assert cluster is not None
        for change in (lambda: binding["spec"]["clusters"].append({"name": "b"}),
                       lambda: binding["spec"]["clusters"][0].__setitem__("replicas", 0),
                       lambda: binding["metadata"].setdefault("annotations", {}),
                       lambda: cluster["status"]["conditions"].clear(),
                       lambda: cluster["spec"].update(unschedulable=True)):
            with pytest.raises(TypeError, match="read-only"):
                change()
        desired = copy.deepcopy(binding)  # the way to a desired object: a plain copy
        desired["spec"]["clusters"][0]["replicas"] = 3
        assert binding["spec"]["clusters"] == [{"name": "a", "replicas": 4}]
        assert (await registry.get(BINDING, KEY.namespace, KEY.name))["spec"]["clusters"] \
            == [{"name": "a", "replicas": 4}]


async def test_a_stale_read_costs_a_conflict_and_a_fresh_read_never_a_lost_write(
        registry: Registry) -> None:
    stale = await _binding(registry, [{"name": "a", "replicas": 4}])
    newer = copy.deepcopy(stale)
    newer["metadata"]["labels"] = {"someone": "else"}
    await registry.update(newer)
    recording = Recording(registry)

    def desire(obj: Object) -> None:
        obj["spec"]["clusters"] = [{"name": "b", "replicas": 4}]
        obj["status"] = {"aggregatedStatus": []}

    await converge(recording, BINDING, KEY.namespace, KEY.name, desire,  # type: ignore[arg-type]
                   read=stale)
    assert recording.take() == [("update", "ResourceBinding"),
                                ("update_status", "ResourceBinding")]
    stored = await registry.get(BINDING, KEY.namespace, KEY.name)
    assert stored["metadata"]["labels"] == {"someone": "else"}, "the other write is kept"
    assert stored["spec"]["clusters"] == [{"name": "b", "replicas": 4}]
    assert stored["status"] == {"aggregatedStatus": []}
    # Desired == read: nothing is sent.
    assert await write_desired(recording, stored, copy.deepcopy(stored)) is stored  # type: ignore[arg-type]
    assert recording.take() == []


async def _synced(manager: ControllerManager) -> bool:
    return manager.has_synced()
