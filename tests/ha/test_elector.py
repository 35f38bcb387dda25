"""The controller leader elector on a real store (SQLite and etcd), in one process:
one leader among candidates, takeover of a Lease that stops changing, step-down, the
fence refusing a deposed leader's write, release on a clean stop.

The timers are short so each test takes a few seconds; the process-level tests
(test_replicas.py) run the real defaults on real `flotilla server` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from flotilla.api.registry import Registry
from flotilla.client.base import ApiError
from flotilla.controllers.leader import LEADER_LEASE, ElectionTimers, LeaseElector
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import SYSTEM_NAMESPACE
from flotilla.store.base import Fenced, NotFound, Store
from flotilla.store.fence import FENCE_SOURCE, FencingStore
from tests.helpers import wait_for

FAST = ElectionTimers(lease_duration=1.0, renew_deadline=0.6, renew_interval=0.2,
                      retry_period=0.1)
LEASE = by_kind("Lease")


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": name}}


@contextlib.asynccontextmanager
async def campaigning(elector: LeaseElector) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(elector.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def holder(registry: Registry) -> str:
    lease = await registry.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


async def as_controller(elector: LeaseElector, coro_fn: object) -> object:
    """Run a registry call in a context whose writes are fenced by ``elector``, as the
    controllers' tasks are."""
    async def inner() -> object:
        FENCE_SOURCE.set(elector)
        return await coro_fn()  # type: ignore[operator]
    return await asyncio.create_task(inner())


async def test_one_leader_and_the_lease_shape(store: Store) -> None:
    registry = Registry(FencingStore(store))
    a, b = LeaseElector(registry, "a", FAST), LeaseElector(registry, "b", FAST)
    async with campaigning(a):
        await asyncio.wait_for(a.wait_until_leader(), 10)
        async with campaigning(b):
            lease = await registry.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE)
            # b watches a renewing for over two lease durations and never takes over
            await wait_for(lambda: _renewed_past(registry, lease, 6), timeout=20)
            assert a.is_leader
            assert not b.is_leader
            assert await holder(registry) == "a"
    spec = (await registry.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE))["spec"]
    assert spec["leaseDurationSeconds"] == 1
    assert spec["acquireTime"]
    assert spec["renewTime"]
    assert spec["leaseTransitions"] == 0
    assert spec["holderIdentity"] == ""  # released on a clean stop


async def _renewed_past(registry: Registry, first: dict[str, object], times: int) -> bool:
    now = await registry.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE)
    first_rv = int(first["metadata"]["resourceVersion"])  # type: ignore[index]
    return bool(int(now["metadata"]["resourceVersion"]) >= first_rv + times)


async def test_a_released_lease_is_taken_at_once_and_counted(store: Store) -> None:
    registry = Registry(FencingStore(store))
    a, b = LeaseElector(registry, "a", FAST), LeaseElector(registry, "b", FAST)
    async with campaigning(a):
        await asyncio.wait_for(a.wait_until_leader(), 10)
        pass
    async with campaigning(b):
        await asyncio.wait_for(b.wait_until_leader(), 10)
        spec = (await registry.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE))["spec"]
        assert spec["holderIdentity"] == "b"
        assert spec["leaseTransitions"] == 1


class Freezable:
    """The elector's view of the API, frozen on demand: every call waits while frozen,
    as every step of a SIGSTOPped process does (the real SIGSTOP is in
    test_replicas.py)."""

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.running = asyncio.Event()
        self.running.set()

    def __getattr__(self, name: str) -> object:
        method = getattr(self.inner, name)

        async def gated(*args: object, **kwargs: object) -> object:
            await self.running.wait()
            return await method(*args, **kwargs)
        return gated


async def test_a_frozen_leader_is_replaced_and_its_in_flight_write_is_fenced(
        store: Store) -> None:
    """A leader that freezes right after taking a fence for a write loses the Lease to
    another after the lease duration; the write it then sends with that fence is
    refused by the store and writes nothing; once thawed it finds the Lease taken,
    steps down, and its controllers' writes are refused (503)."""
    fencing = FencingStore(store)
    registry = Registry(fencing)
    frozen = Freezable(registry)
    a = LeaseElector(frozen, "a", FAST)  # type: ignore[arg-type]
    b = LeaseElector(registry, "b", FAST)
    async with campaigning(a):
        await asyncio.wait_for(a.wait_until_leader(), 10)
        async with campaigning(b):
            async with a.hold() as fence:
                pass
            frozen.running.clear()
            await asyncio.wait_for(b.wait_until_leader(), 20)
            assert await holder(registry) == "b"
            with pytest.raises(Fenced):
                await fencing.create("configmaps", configmap("stale"), fence=fence)
            with pytest.raises(NotFound):
                await store.get("configmaps", "default", "stale")
            frozen.running.set()
            await wait_for(lambda: _not_leading(a), timeout=10, what="a steps down")
            with pytest.raises(ApiError) as refused:
                await as_controller(a, lambda: registry.create(configmap("late")))
            assert refused.value.status == 503
            assert "no longer leads" in refused.value.message
            with pytest.raises(NotFound):
                await store.get("configmaps", "default", "late")
            # b's controllers write fine, b stays the leader, a campaigns again
            await as_controller(b, lambda: registry.create(configmap("fresh")))
            assert b.is_leader
            assert not a.is_leader
            assert await holder(registry) == "b"


async def test_a_store_refusal_makes_the_leader_step_down(store: Store) -> None:
    """The store is the last word: a leader whose Lease was moved behind its back
    (here: rewritten directly) has its next controller write refused and steps down."""
    registry = Registry(FencingStore(store))
    slow = ElectionTimers(lease_duration=30, renew_deadline=20, renew_interval=10,
                          retry_period=0.1)
    a = LeaseElector(registry, "a", slow)
    async with campaigning(a):
        await asyncio.wait_for(a.wait_until_leader(), 10)
        lease = await store.get(LEASE.resource, SYSTEM_NAMESPACE, LEADER_LEASE)
        await store.update(LEASE.resource, {**lease, "spec": {"holderIdentity": "intruder"}})
        with pytest.raises(ApiError):
            await as_controller(a, lambda: registry.create(configmap("x")))
        assert a.refusals == 1
        assert not a.is_leader
        with pytest.raises(NotFound):
            await store.get("configmaps", "default", "x")


async def _not_leading(elector: LeaseElector) -> bool:
    return not elector.is_leader


def test_timers_are_checked() -> None:
    assert ElectionTimers().problems() == []
    assert ElectionTimers(lease_duration=2, renew_deadline=3).problems()
    assert ElectionTimers(renew_interval=3.0).problems()


def test_server_name_flag_is_checked_and_defaulted() -> None:
    from flotilla.api.plane import default_server_name
    from tests.cli.serverproc import clean_env, flotilla

    assert default_server_name("127.0.0.1:8443").endswith("-8443")
    assert default_server_name("127.0.0.1:0").rsplit("-", 1)[1].startswith("p")
    empty = flotilla("server", "--name", " ", env=clean_env())
    assert empty.returncode == 2
    assert "--name must not be empty" in empty.stderr
    timers = flotilla("server", "--leader-lease-duration", "2", "--leader-renew-deadline",
                      "3", env=clean_env())
    assert timers.returncode == 2
    assert "must be shorter than the lease duration" in timers.stderr
