"""Leases: expiry and revocation delete attached objects; keepalive; reopening the store
(both stores: the SQLite store keeps deadlines itself, the etcd store uses etcd's leases)."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from flotilla.store.base import NotFound, Store, WatchEvent
from tests.helpers import wait_for
from tests.store.conftest import OpenStore, cm

R = "configmaps"


async def gone(store: Store, name: str) -> bool:
    try:
        await store.get(R, "default", name)
    except NotFound:
        return True
    return False


async def test_expiry_deletes_attached_objects_with_events(store: Store) -> None:
    base = await store.current_revision()
    started = time.monotonic()
    lease = await store.grant_lease(1.0)
    assert lease.ttl == pytest.approx(1.0)
    await store.create(R, cm("held1"), lease_id=lease.id)
    await store.create(R, cm("held2"), lease_id=lease.id)
    await store.create(R, cm("free"))
    await wait_for(lambda: gone(store, "held1"), timeout=10, what="lease expiry")
    assert time.monotonic() - started >= 0.99  # not before the TTL
    assert await gone(store, "held2")
    assert not await gone(store, "free")
    with pytest.raises(NotFound, match=f"lease {lease.id}"):
        await store.keepalive(lease.id)
    with pytest.raises(NotFound):
        await store.lease_info(lease.id)
    with pytest.raises(NotFound, match="lease"):
        await store.create(R, cm("late"), lease_id=lease.id)

    events: list[WatchEvent] = []
    async with aclosing(store.watch(R, since=base + 3)) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == 2:
                break
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("DELETED", "held1"), ("DELETED", "held2")]


async def test_keepalive_holds_the_lease(store: Store) -> None:
    lease = await store.grant_lease(1.0)
    await store.create(R, cm("held"), lease_id=lease.id)
    deadline = time.monotonic() + 2.2  # more than two TTLs, renewed every ~0.1 s
    renewals = 0
    while time.monotonic() < deadline:
        renewed = await store.keepalive(lease.id)
        renewals += 1
        assert renewed.remaining == pytest.approx(1.0)
        await asyncio.sleep(0.1)  # the heartbeat interval, not synchronisation
    assert renewals >= 5
    assert not await gone(store, "held")
    info = await store.lease_info(lease.id)
    assert 0 <= info.remaining <= 1.0  # etcd counts whole seconds, truncated


async def test_revoke_deletes_at_once(store: Store) -> None:
    lease = await store.grant_lease(60)
    await store.create(R, cm("held"), lease_id=lease.id)
    await store.revoke_lease(lease.id)
    assert await gone(store, "held")
    with pytest.raises(NotFound):
        await store.revoke_lease(lease.id)
    with pytest.raises(ValueError, match="ttl"):
        await store.grant_lease(0)


async def test_leases_survive_reopening_the_store(open_store: OpenStore) -> None:
    store = await open_store()
    lease = await store.grant_lease(30)
    await store.create(R, cm("held"), lease_id=lease.id)
    short = await store.grant_lease(1.0)
    await store.create(R, cm("short"), lease_id=short.id)
    await store.close()
    store = await open_store()
    info = await store.lease_info(lease.id)
    # SQLite: the full TTL again, as etcd after a restart of etcd; etcd: the lease lives
    # on in etcd, whichever server holds it.
    assert 25 < info.remaining <= 30
    assert not await gone(store, "held")
    # A lease not renewed after the reopening still expires.
    await wait_for(lambda: gone(store, "short"), timeout=10, what="restored lease expiry")
    other = await store.grant_lease(1)
    assert other.id not in (lease.id, short.id)
