"""A real controller (ConfigMap mirror) on ControllerManager, against a real server,
plus the EventRecorder's aggregation."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Iterable

import pytest

from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.client.http import HttpClient
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.runtime import (
    Controller,
    ControllerManager,
    LostLeadership,
    ObjectKey,
    Result,
)
from flotilla.resources.kinds import by_kind
from tests.helpers import free_port, wait_for

CM = by_kind("ConfigMap")
EVENT = by_kind("Event")


class Mirror:
    """Keeps ConfigMap ``copy-X`` equal to ``src-X`` (in the same namespace): a primary
    and a secondary of the same kind, which is the smallest honest controller."""

    def __init__(self, client: ResourceClient, manager: ControllerManager) -> None:
        self.client = client
        self.cache = manager.informer(CM).cache
        self.recorder = EventRecorder(client, "mirror-controller")

    async def reconcile(self, key: ObjectKey) -> Result | None:
        src = self.cache.get(key)
        copy_key = ObjectKey(key.namespace, "copy-" + key.name.removeprefix("src-"))
        existing = self.cache.get(copy_key)
        if src is None:
            if existing is not None:
                with contextlib.suppress(NotFoundError):
                    await self.client.delete(CM, copy_key.namespace, copy_key.name)
            return None
        if existing is None:
            await self.client.create({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": copy_key.name, "namespace": key.namespace},
                "data": dict(src.get("data") or {}),
            })
            await self.recorder.record(src, "Normal", "Mirrored", f"created {copy_key.name}")
        elif existing.get("data") != src.get("data"):
            updated = copy.deepcopy(existing)
            updated["data"] = dict(src.get("data") or {})
            await self.client.update(updated)
            await self.recorder.record(src, "Normal", "Mirrored", f"updated {copy_key.name}")
        return None


def primaries(obj: Object) -> Iterable[ObjectKey]:
    key = ObjectKey.of(obj)
    if key.name.startswith("src-"):
        return (key,)
    if key.name.startswith("copy-"):
        return (ObjectKey(key.namespace, "src-" + key.name.removeprefix("copy-")),)
    return ()


async def test_manager_runs_a_controller_to_convergence(client: HttpClient) -> None:
    manager = ControllerManager(client, resync_period=30)
    mirror = Mirror(client, manager)
    ctrl = Controller("mirror", mirror, workers=2)
    ctrl.watches(manager.informer(CM), primaries)
    manager.add(ctrl)
    assert manager.informer(CM) is manager.informer(CM), "one shared informer per kind"

    async def has(name: str, data: object) -> bool:
        try:
            return (await client.get(CM, "mirror", name)).get("data") == data
        except NotFoundError:
            return data is None

    async with manager:
        for i in range(3):
            await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": f"src-{i}", "namespace": "mirror"},
                                 "data": {"n": str(i)}})
        for i in range(3):
            await wait_for(lambda i=i: has(f"copy-{i}", {"n": str(i)}), timeout=10)
        # A user edits the copy: the controller, woken through the mapping, reverts it.
        tampered = await client.get(CM, "mirror", "copy-1")
        tampered["data"] = {"n": "tampered"}
        await client.update(tampered)
        await wait_for(lambda: has("copy-1", {"n": "1"}), timeout=10)
        src = await client.get(CM, "mirror", "src-2")
        src["data"] = {"n": "two"}
        await client.update(src)
        await wait_for(lambda: has("copy-2", {"n": "two"}), timeout=10)
        await client.delete(CM, "mirror", "src-0")
        await wait_for(lambda: has("copy-0", None), timeout=10)
        assert manager.has_synced()
    assert ctrl.failed == 0
    events = (await client.list(EVENT, "mirror")).items
    assert {e["reason"] for e in events} == {"Mirrored"}
    assert all(e["source"]["component"] == "mirror-controller" for e in events)


def _deploy(name: str, uid: str = "") -> Object:
    meta = {"name": name, "namespace": "ev"} | ({"uid": uid} if uid else {})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}


async def _events_for(client: HttpClient, name: str, namespace: str = "ev") -> list[Object]:
    items = (await client.list(EVENT, namespace)).items
    return sorted((e for e in items if e["involvedObject"]["name"] == name),
                  key=lambda e: e["metadata"]["name"])


async def test_recorder_aggregates_repeats_within_the_window(client: HttpClient) -> None:
    now = [1_800_000_000.0]
    rec = EventRecorder(client, "test", window=60, clock=lambda: now[0])
    obj = _deploy("web", uid="u-1")
    for _ in range(3):
        await rec.record(obj, "Warning", "FailedScheduling", "0/3 clusters match")
        now[0] += 10
    evs = await _events_for(client, "web")
    assert len(evs) == 1
    ev = evs[0]
    assert ev["count"] == 3
    assert ev["type"] == "Warning"
    assert ev["reason"] == "FailedScheduling"
    assert ev["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "namespace": "ev", "name": "web", "uid": "u-1"}
    assert ev["firstTimestamp"] == "2027-01-15T08:00:00Z"
    assert ev["lastTimestamp"] == "2027-01-15T08:00:20Z"
    assert ev["source"] == {"component": "test"}

    await rec.record(obj, "Warning", "FailedScheduling", "1/3 clusters match")
    assert len(await _events_for(client, "web")) == 2, "another message is another Event"

    now[0] += 61  # past the window since the last occurrence
    await rec.record(obj, "Warning", "FailedScheduling", "0/3 clusters match")
    assert len(await _events_for(client, "web")) == 3


async def test_concurrent_identical_records_fold_into_one(client: HttpClient) -> None:
    rec = EventRecorder(client, "test")
    obj = _deploy("api")
    await asyncio.gather(*(rec.record(obj, "Normal", "Scaled", "to 3") for _ in range(5)))
    evs = await _events_for(client, "api")
    assert [e["count"] for e in evs] == [5]


async def test_recorder_recreates_an_event_deleted_under_it(client: HttpClient) -> None:
    rec = EventRecorder(client, "test")
    obj = _deploy("gone")
    await rec.record(obj, "Normal", "Started", "ok")
    (ev,) = await _events_for(client, "gone")
    await client.delete(EVENT, "ev", ev["metadata"]["name"])
    await rec.record(obj, "Normal", "Started", "ok")
    evs = await _events_for(client, "gone")
    assert [e["count"] for e in evs] == [1]


async def test_cluster_scoped_object_events_go_to_default(client: HttpClient) -> None:
    rec = EventRecorder(client, "test")
    cluster = {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
               "metadata": {"name": "east-ev"}}
    await rec.record(cluster, "Warning", "ClusterNotReady", "heartbeat lost")
    (ev,) = await _events_for(client, "east-ev", namespace="default")
    assert "namespace" not in ev["involvedObject"]


async def test_recorder_never_raises_into_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    async with HttpClient(f"http://127.0.0.1:{free_port()}", "t", timeout=1) as dead:
        rec = EventRecorder(dead, "test")
        await rec.record(_deploy("x"), "Normal", "Whatever", "nobody listens")
    assert "could not record event" in caplog.text


class Gate:
    """A leader elector a test drives by hand."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()

    async def wait_until_leader(self) -> None:
        self.waiting.set()
        await self.elected.wait()

    async def lost(self) -> None:
        await self.deposed.wait()


class Counting:
    def __init__(self) -> None:
        self.keys: list[ObjectKey] = []

    async def reconcile(self, key: ObjectKey) -> Result | None:
        self.keys.append(key)
        return None


async def test_manager_runs_only_while_leader(client: HttpClient) -> None:
    await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "led", "namespace": "leader"}})
    gate = Gate()
    manager = ControllerManager(client, leader=gate)
    rec = Counting()
    manager.add(Controller("count", rec).watches(manager.informer(CM)))
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(gate.waiting.wait(), 5)
        assert not manager.running
        assert manager.informer(CM).lists == 0, "nothing starts before leadership"
        gate.elected.set()

        async def reconciled() -> bool:
            return ObjectKey("leader", "led") in rec.keys

        await wait_for(reconciled, timeout=10)
        assert manager.running
        gate.deposed.set()
        with pytest.raises(LostLeadership):
            await asyncio.wait_for(task, 10)
        assert not manager.running, "losing leadership stops informers and controllers"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
