"""The heartbeat fast path (`flotilla.api.renewal`) through the registry, on both stores:
a renewal is visible as a Lease, a takeover is still detected, and anything but a pure
renewal gets the general update's semantics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from flotilla.agent.heartbeat import Heartbeat, LeaseLost
from flotilla.api.registry import Registry
from flotilla.client.base import ApiError, ConflictError
from flotilla.controllers import cluster_health
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ClusterView
from flotilla.resources.wellknown import SYSTEM_NAMESPACE, TAINT_UNREACHABLE
from flotilla.store.base import Store
from flotilla.store.etcd import open_etcd_store, parse_etcd_url
from flotilla.store.sqlite import open_sqlite_store
from tests.helpers import wait_for

LEASE = by_kind("Lease")
CLUSTER = by_kind("Cluster")
_prefixes = itertools.count()


@pytest.fixture(params=["sqlite", "etcd"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Registry]:
    store: Store
    if request.param == "sqlite":
        store = await open_sqlite_store(tmp_path / "data")
    else:
        etcd = request.getfixturevalue("etcd_server")
        store = await open_etcd_store(parse_etcd_url(
            etcd.url, prefix=f"/test-renewal/{tmp_path.name}/{next(_prefixes)}/"))
    try:
        yield Registry(store)
    finally:
        await store.close()


async def lease(registry: Registry, cluster: str) -> dict[str, object]:
    return await registry.get(LEASE, SYSTEM_NAMESPACE, cluster)


async def test_renewals_move_renew_time_and_keep_the_lease_shape(registry: Registry) -> None:
    hb = Heartbeat(registry, "east-1", 1.0)
    await hb.acquire()
    await hb.renew_once()
    first = await lease(registry, "east-1")
    spec = first["spec"]
    assert isinstance(spec, dict)
    assert spec["holderIdentity"] == hb.holder
    # renewTime has one-second resolution: make the next one differ
    hb._lease["spec"]["renewTime"] = "2020-01-01T00:00:00Z"  # type: ignore[index]
    await registry.update({**hb._lease, "metadata": {**hb._lease["metadata"]}})  # type: ignore[dict-item]
    hb._lease = None
    await hb.renew_once()
    second = await lease(registry, "east-1")
    meta1, meta2 = first["metadata"], second["metadata"]
    assert isinstance(meta1, dict)
    assert isinstance(meta2, dict)
    assert int(meta2["resourceVersion"]) > int(meta1["resourceVersion"])
    assert meta2["uid"] == meta1["uid"]
    assert meta2["creationTimestamp"] == meta1["creationTimestamp"]
    assert meta2["generation"] > meta1["generation"]
    assert second["spec"]["renewTime"] != "2020-01-01T00:00:00Z"  # type: ignore[index]
    assert second["spec"]["holderIdentity"] == hb.holder  # type: ignore[index]


async def test_a_takeover_is_still_detected(registry: Registry) -> None:
    hb = Heartbeat(registry, "east-1", 1.0)
    await hb.acquire()
    await hb.renew_once()
    current = await lease(registry, "east-1")
    spec = dict(current["spec"])  # type: ignore[arg-type]
    spec["holderIdentity"] = "agent-east-1-999-beef@elsewhere"
    await registry.update({**current, "spec": spec})
    with pytest.raises(ConflictError):
        await hb.renew_once()
    with pytest.raises(LeaseLost):
        await hb.renew_once()
    after = await lease(registry, "east-1")
    assert after["spec"]["holderIdentity"] == "agent-east-1-999-beef@elsewhere"  # type: ignore[index]


async def test_a_clean_stop_releases_the_lease_even_from_a_stale_copy(
        registry: Registry) -> None:
    """A renewal cancelled by the stop can land after all: the agent's copy is then one
    version behind, and the release must still empty the holder."""
    hb = Heartbeat(registry, "east-1", 1.0)
    await hb.acquire()
    stale = hb._lease
    await hb.renew_once()  # the renewal that "landed" while the agent stopped
    hb._lease = stale
    await hb.release()
    assert (await lease(registry, "east-1"))["spec"]["holderIdentity"] == ""  # type: ignore[index]

    hb2 = Heartbeat(registry, "east-1", 1.0)
    await hb2.acquire()
    await hb2.renew_once()
    hb2._lease = None  # as after a renewal that failed
    await hb2.release()
    assert (await lease(registry, "east-1"))["spec"]["holderIdentity"] == ""  # type: ignore[index]


async def test_a_release_never_takes_the_lease_from_a_successor(registry: Registry) -> None:
    hb = Heartbeat(registry, "east-1", 1.0)
    await hb.acquire()
    current = await lease(registry, "east-1")
    spec = dict(current["spec"])  # type: ignore[arg-type]
    spec["holderIdentity"] = "agent-east-1-999-beef@elsewhere"
    await registry.update({**current, "spec": spec})
    await hb.release()
    after = await lease(registry, "east-1")
    assert after["spec"]["holderIdentity"] == "agent-east-1-999-beef@elsewhere"  # type: ignore[index]


async def test_a_body_that_changes_more_than_renew_time_is_a_full_update(
        registry: Registry) -> None:
    hb = Heartbeat(registry, "east-1", 1.0)
    await hb.acquire()
    await hb.renew_once()
    current = await lease(registry, "east-1")
    body = {**current, "metadata": {**current["metadata"], "labels": {"a": "b"}},  # type: ignore[dict-item]
            "spec": {**current["spec"], "leaseDurationSeconds": 9,  # type: ignore[dict-item]
                     "renewTime": "2030-01-01T00:00:00Z"}}
    updated = await registry.update(body)
    assert updated["metadata"]["labels"] == {"a": "b"}
    assert updated["spec"]["leaseDurationSeconds"] == 9
    # and a bad renewTime is refused by validation, as before
    bad = {**updated, "spec": {**updated["spec"], "renewTime": "yesterday"}}
    with pytest.raises(ApiError, match=r"renewTime"):
        await registry.update(bad)


async def test_the_health_controller_sees_renewals_and_their_end(registry: Registry) -> None:
    """Renewals on the fast path keep the cluster Ready; once they stop it goes Unknown
    after the grace period (1 s here), with the unreachable taint."""
    await registry.create({"apiVersion": CLUSTER.api_version, "kind": "Cluster",
                           "metadata": {"name": "east-1"},
                           "spec": {"region": "r", "zone": "z", "runtime": "local"}})
    manager = ControllerManager(registry)
    cluster_health.build(manager, grace=1.0)
    hb = Heartbeat(registry, "east-1", 0.2)
    await hb.acquire()

    async def ready() -> str:
        view = ClusterView.of(await registry.get(CLUSTER, "", "east-1"))
        return view.ready_status or ""

    async with manager:
        beating = asyncio.create_task(hb.run())
        try:
            assert await wait_for(lambda: _is(ready, "True"), timeout=20, what="Ready=True")
            first = hb.renewals
            await wait_for(lambda: _at_least(hb, first + 5), timeout=20, what="5 renewals")
            assert await ready() == "True"  # still Ready across renewals
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        assert await wait_for(lambda: _is(ready, "Unknown"), timeout=20, what="Unknown")
    taints = (await registry.get(CLUSTER, "", "east-1"))["spec"].get("taints") or []
    assert {t["key"] for t in taints} == {TAINT_UNREACHABLE}


async def _is(read: Callable[[], Awaitable[str]], want: str) -> bool:
    return await read() == want


async def _at_least(hb: Heartbeat, n: int) -> bool:
    return hb.renewals >= n
