"""`Modifying.modify`: read, check and write one object as one store step (both stores)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from flotilla.store.base import Conflict, Modifying, NotFound, Store
from flotilla.store.etcd import EtcdStore
from tests.store.conftest import OpenStore, cm, is_etcd

R = "configmaps"


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def changed(obj: dict[str, Any]) -> dict[str, Any]:
    obj["data"] = {"k": "changed"}
    return obj


async def test_modify_writes_the_change_and_watchers_see_it(store: Store) -> None:
    assert isinstance(store, Modifying)
    created = await store.create(R, cm("a"))
    async with aclosing(store.watch(R, since=rv(created))) as events:  # type: ignore[type-var]
        done = await store.modify(R, "default", "a", changed, expected_revision=rv(created))
        assert done is not None
        assert rv(done) > rv(created)
        assert await store.get(R, "default", "a") == done
        event = await asyncio.wait_for(anext(events), 10)
        assert (event.type, event.object) == ("MODIFIED", done)


async def test_modify_is_a_compare_and_set(store: Store) -> None:
    assert isinstance(store, Modifying)
    created = await store.create(R, cm("a"))
    moved = await store.update(R, changed(dict(created)))
    with pytest.raises(Conflict) as err:
        await store.modify(R, "default", "a", changed, expected_revision=rv(created))
    assert err.value.current_revision == rv(moved)
    with pytest.raises(NotFound):
        await store.modify(R, "default", "nope", changed, expected_revision=1)


async def test_a_declined_change_writes_nothing(store: Store) -> None:
    assert isinstance(store, Modifying)
    created = await store.create(R, cm("a"))
    seen: list[dict[str, Any]] = []

    def decline(obj: dict[str, Any]) -> None:
        seen.append(obj)

    before = await store.current_revision()
    assert await store.modify(R, "default", "a", decline, expected_revision=rv(created)) is None
    assert seen == [created]  # the change saw the object as stored
    assert await store.current_revision() == before
    assert await store.get(R, "default", "a") == created


async def _writer_beside(store: Store, open_store: OpenStore) -> Store:
    """Another writer on the same data: for etcd a second store (another API server,
    with its own memory of recent values), for SQLite the same store (one process
    owns the file)."""
    return await open_store() if is_etcd(store) else store


async def test_a_write_elsewhere_makes_modify_conflict_then_read_again(
        store: Store, open_store: OpenStore) -> None:
    """The renewal fast path's fallback: this store last wrote revision A, another
    server moved the object to B. A renewal expecting A is refused (nothing written),
    and one expecting B sees B's content, read from the store, not A's remembered one."""
    assert isinstance(store, Modifying)
    other = await _writer_beside(store, open_store)
    created = await store.create(R, cm("a"))
    assert await store.modify(R, "default", "a", changed, expected_revision=rv(created))
    mine = await store.get(R, "default", "a")
    theirs = await other.update(R, {**mine, "data": {"k": "theirs"}})
    with pytest.raises(Conflict) as err:
        await store.modify(R, "default", "a", changed, expected_revision=rv(mine))
    assert err.value.current_revision == rv(theirs)
    assert await store.get(R, "default", "a") == theirs  # the refused change wrote nothing
    seen: list[dict[str, Any]] = []

    def look(obj: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(obj))
        obj["data"] = {**obj["data"], "renewed": "yes"}
        return obj

    done = await store.modify(R, "default", "a", look, expected_revision=rv(theirs))
    assert seen == [theirs]
    assert done is not None
    assert done["data"] == {"k": "theirs", "renewed": "yes"}
    deleted = await other.delete(R, "default", "a")
    with pytest.raises(NotFound):  # remembered revision, but deleted elsewhere since
        await store.modify(R, "default", "a", changed, expected_revision=rv(done))
    assert rv(deleted) > rv(done)


def count(obj: dict[str, Any]) -> dict[str, Any]:
    obj["data"] = {"n": str(int(obj["data"].get("n", "0")) + 1)}
    return obj


async def test_an_acknowledged_modify_is_never_lost(store: Store, open_store: OpenStore
                                                    ) -> None:
    """Writers on two stores (two API servers on etcd) each increment a counter with
    `modify` from the revision they last knew, retrying on Conflict: every increment
    that was acknowledged is in the final count, none twice, none lost."""
    assert isinstance(store, Modifying)
    other = await _writer_beside(store, open_store)
    assert isinstance(other, Modifying)
    created = await store.create(R, {**cm("n"), "data": {"n": "0"}})
    acked: list[int] = []

    async def writer(s: Modifying, rounds: int) -> None:
        known = rv(created)
        for _ in range(rounds):
            for _attempt in range(100):  # bounded: 4 writers, so few conflicts in a row
                try:
                    done = await s.modify(R, "default", "n", count, expected_revision=known)
                except Conflict as exc:  # read nothing: the refusal names the revision
                    known = exc.current_revision or known
                    continue
                assert done is not None
                acked.append(rv(done))
                known = rv(done)
                break
            else:
                raise AssertionError("a writer never got through")

    async with asyncio.timeout(60):
        await asyncio.gather(*(writer(s, 25) for s in (store, other, store, other)))
    final = await store.get(R, "default", "n")
    assert len(acked) == 100
    assert len(set(acked)) == 100  # each acknowledgement a revision of its own
    assert final["data"] == {"n": "100"}
    assert rv(final) == max(acked)


async def test_a_renewal_through_the_same_etcd_store_is_one_transaction(
        store: Store) -> None:
    """After the first renewal (which reads), each next one starting from the revision
    the last one returned goes out as one transaction, with no read before it."""
    if not isinstance(store, EtcdStore):
        pytest.skip("the remembered-value fast path is the etcd store's")
    other_key = await store.create(R, cm("b"))  # noise: another key remembered too
    created = await store.create(R, cm("a"))
    reads, hits = store.modify_reads, store.modify_hits
    done = await store.modify(R, "default", "a", changed, expected_revision=rv(created))
    assert done is not None
    for _ in range(5):
        done = await store.modify(R, "default", "a", count, expected_revision=rv(done))
        assert done is not None
    assert (store.modify_reads - reads, store.modify_hits - hits) == (0, 6)
    assert await store.get(R, "default", "a") == done
    assert done["data"] == {"n": "5"}
    assert await store.get(R, "default", "b") == other_key
