"""Watch: replay then live without gap or duplicate, filters, compaction, slow consumers
(both stores)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from contextlib import aclosing

import pytest

from flotilla.store.base import (
    AlreadyExists,
    Conflict,
    Expired,
    NotFound,
    Store,
    StoreClosed,
    WatchEvent,
)
from flotilla.store.sqlite import SqliteStore
from tests.store.conftest import OpenStore, cm

R = "configmaps"


async def collect(store: Store, since: int, count: int, **filters: str | None
                  ) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async with aclosing(store.watch(since=since, **filters)) as events:
        async for event in events:
            out.append(event)
            if len(out) == count:
                break
    return out


async def writer(store: Store, prefix: str, n: int) -> None:
    for i in range(n):
        created = await store.create(R, cm(f"{prefix}{i}"))
        await store.update(R, created)


async def test_event_shapes_and_revisions(store: Store) -> None:
    base = await store.current_revision()
    created = await store.create(R, cm("a"))
    await store.update(R, created)
    await store.delete(R, "default", "a")
    events = await asyncio.wait_for(collect(store, base, 3), 10)
    assert [(e.type, e.revision - base, e.resource) for e in events] == [
        ("ADDED", 1, R), ("MODIFIED", 2, R), ("DELETED", 3, R)]
    assert events[2].object["metadata"]["resourceVersion"] == str(base + 3)
    assert events[2].object["data"] == {"k": "a"}


async def test_resume_under_concurrent_writes_loses_and_duplicates_nothing(
    store: Store,
) -> None:
    """Watchers start (and restart) at arbitrary points while 4 writers run."""
    base = await store.current_revision()
    writers = [asyncio.create_task(writer(store, f"w{w}-", 150)) for w in range(4)]
    total = 4 * 150 * 2
    try:
        got: list[int] = []
        since = base
        # Cut the watch every 137 events and resume from the last revision seen.
        for _ in range(100):
            chunk = await asyncio.wait_for(collect(store, since, min(137, total - len(got))),
                                           20)
            got.extend(e.revision for e in chunk)
            since = got[-1]
            if len(got) == total:
                break
        assert got == list(range(base + 1, base + total + 1))
        await asyncio.gather(*writers)
    finally:
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)


async def test_concurrent_watchers_from_different_points(store: Store) -> None:
    base = await store.current_revision()
    await writer(store, "pre", 50)  # revisions 1..100
    watchers = [asyncio.create_task(collect(store, base + since, 300 - since)) for since in
                (0, 17, 99, 100)]
    await writer(store, "live", 100)  # revisions 101..300
    for since, task in zip((0, 17, 99, 100), watchers, strict=True):
        events = await asyncio.wait_for(task, 20)
        assert [e.revision - base for e in events] == list(range(since + 1, 301))


async def test_filters_by_resource_and_namespace(store: Store) -> None:
    base = await store.current_revision()
    await store.create(R, cm("a", "ns1"))
    await store.create("secrets", cm("b", "ns1"))
    await store.create(R, cm("c", "ns2"))
    await store.create(R, cm("d", "ns1"))
    only = await asyncio.wait_for(collect(store, base, 2, resource=R, namespace="ns1"), 10)
    assert [e.object["metadata"]["name"] for e in only] == ["a", "d"]
    everything = await asyncio.wait_for(collect(store, base, 4, resource=None), 10)
    assert [e.resource for e in everything] == [R, "secrets", R, R]
    any_resource = await asyncio.wait_for(
        collect(store, base, 3, resource=None, namespace="ns1"), 10)
    assert [e.object["metadata"]["name"] for e in any_resource] == ["a", "b", "d"]


async def test_watch_from_compacted_revision_is_expired(store: Store) -> None:
    base = await store.current_revision()
    await writer(store, "x", 10)  # revisions 1..20
    await store.compact(base + 12)
    with pytest.raises(Expired) as err:
        await collect(store, base + 11, 1)
    assert err.value.compacted_revision == base + 12
    assert [e.revision - base for e in await collect(store, base + 12, 8)] == list(
        range(13, 21))
    with pytest.raises(ValueError, match=f"current revision is {base + 20}"):
        await store.compact(base + 21)
    await store.compact(base + 5)  # already compacted further: a no-op, not an error


async def test_automatic_compaction_keeps_recent_history(open_store: OpenStore) -> None:
    store = await open_store(keep_revisions=100)
    base = await store.current_revision()
    for i in range(30):
        await asyncio.gather(*(store.create(R, cm(f"o{i}-{j}")) for j in range(10)))
    assert await store.current_revision() == base + 300
    with pytest.raises(Expired) as err:
        await collect(store, base, 1)
    assert 190 <= err.value.compacted_revision - base <= 200
    assert len(await collect(store, base + 200, 100)) == 100


async def test_slow_consumer_catches_up_and_does_not_stall_writers(
    open_store: OpenStore,
) -> None:
    """A watcher that reads nothing while 2000 writes go by stalls neither the writers
    nor a watcher that keeps up, and later gets every event. (SQLite: its 256-event
    buffer overflows and it falls back to the log; etcd: gRPC flow control and etcd's
    unsynced-watcher catch-up.)"""
    store = await open_store(watch_buffer=256)
    base = await store.current_revision()
    last = base + 2001
    async with aclosing(store.watch(R, since=base)) as slow, \
            aclosing(store.watch(R, since=base)) as fast:
        fast_seen: list[int] = []

        async def follow_fast() -> None:
            async for event in fast:
                fast_seen.append(event.revision)
                if event.revision == last:
                    return

        fast_task = asyncio.create_task(follow_fast())
        await store.create(R, cm("first"))
        assert (await asyncio.wait_for(anext(slow), 10)).revision == base + 1  # slow is live
        # 2000 more writes, at most 100 in flight, while `slow` reads nothing.
        for i in range(20):
            await asyncio.wait_for(
                asyncio.gather(*(store.create(R, cm(f"o{i}-{j}")) for j in range(100))),
                20)
        await asyncio.wait_for(fast_task, 20)
        assert fast_seen == list(range(base + 1, last + 1))
        if isinstance(store, SqliteStore):
            assert store.stats().watch_overflows == 1  # slow overflowed, fast did not
        slow_seen = []
        async for event in slow:
            slow_seen.append(event.revision)
            if event.revision == last:
                break
        assert slow_seen == list(range(base + 2, last + 1))


async def test_close_ends_live_watches(open_store: OpenStore) -> None:
    store = await open_store()
    base = await store.current_revision()
    await store.create(R, cm("a"))
    replayed = asyncio.Event()  # set once the watch is past its replay, i.e. live

    async def drain() -> list[int]:
        seen = []
        async for event in store.watch(since=base):
            seen.append(event.revision)
            replayed.set()
        return seen

    task = asyncio.create_task(drain())
    try:
        await asyncio.wait_for(replayed.wait(), 10)
    finally:
        await store.close()
    with pytest.raises(StoreClosed):
        await asyncio.wait_for(task, 10)


async def test_watch_from_the_future_waits_for_it(store: Store) -> None:
    base = await store.current_revision()
    await store.create(R, cm("a"))
    task = asyncio.create_task(collect(store, base + 3, 1))
    await store.create(R, cm("b"))
    await store.create(R, cm("c"))
    assert not task.done()
    await store.create(R, cm("d"))
    assert [e.object["metadata"]["name"] for e in await asyncio.wait_for(task, 10)] == ["d"]


async def test_log_replay_rebuilds_the_stored_state(store: Store) -> None:
    """Random concurrent creates/updates/deletes; folding the whole watch history must
    give exactly what `list` returns, at exactly the list's revision."""
    rng = random.Random(7)
    base = await store.current_revision()

    async def churn(w: int) -> None:
        for i in range(60):
            name = f"o{rng.randrange(15)}"
            try:
                if rng.random() < 0.2:
                    await store.delete(R, "default", name)
                    continue
                current = await store.get(R, "default", name)
                await store.update(R, {**current, "data": {"w": f"{w}-{i}"}},
                                   expected_revision=int(current["metadata"]["resourceVersion"]))
            except (NotFound, Conflict):
                with contextlib.suppress(AlreadyExists):  # a racing writer was first
                    await store.create(R, cm(name))

    await asyncio.gather(*(churn(w) for w in range(4)))
    listed = await store.list(R)
    assert listed.items
    folded: dict[str, dict[str, object]] = {}
    types: set[str] = set()
    async with aclosing(store.watch(R, since=base)) as stream:
        async for event in stream:
            types.add(event.type)
            if event.type == "DELETED":
                folded.pop(event.object["metadata"]["name"])
            else:
                folded[event.object["metadata"]["name"]] = event.object
            if event.revision == listed.revision:
                break
    assert types == {"ADDED", "MODIFIED", "DELETED"}
    assert sorted(folded.values(), key=lambda o: o["metadata"]["name"]) == listed.items  # type: ignore[index]
