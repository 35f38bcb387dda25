"""Create/get/update/delete, compare-and-set, and bad input (on both stores)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flotilla.store.base import AlreadyExists, Conflict, NotFound, Store, StoreClosed
from flotilla.store.sqlite import SqliteStore
from tests.store.conftest import OpenStore, cm

R = "configmaps"


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_implements_the_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


async def test_crud_round_trip_sets_resource_version(store: Store) -> None:
    base = await store.current_revision()
    given = cm("a")
    created = await store.create(R, given)
    assert "resourceVersion" not in given["metadata"]  # type: ignore[operator]
    assert rv(created) == base + 1 == await store.current_revision()
    assert await store.get(R, "default", "a") == created

    created["data"]["k"] = "changed"
    updated = await store.update(R, created, expected_revision=base + 1)
    assert rv(updated) == base + 2
    assert (await store.get(R, "default", "a"))["data"] == {"k": "changed"}

    deleted = await store.delete(R, "default", "a")
    assert rv(deleted) == base + 3
    assert deleted["data"] == {"k": "changed"}
    with pytest.raises(NotFound, match="configmaps default/a not found"):
        await store.get(R, "default", "a")


async def test_returned_objects_are_private_copies(store: Store) -> None:
    created = await store.create(R, cm("a"))
    revision = created["metadata"]["resourceVersion"]
    created["metadata"]["labels"]["x"] = "y"
    first = await store.get(R, "default", "a")
    first["data"]["k"] = "mutated"
    assert await store.get(R, "default", "a") == {**cm("a"), "metadata": {
        **cm("a")["metadata"], "resourceVersion": revision}}  # type: ignore[dict-item]


async def test_cluster_scoped_objects_use_empty_namespace(store: Store) -> None:
    await store.create("clusters", {"metadata": {"name": "east"}, "spec": {}})
    assert (await store.get("clusters", "", "east"))["metadata"]["name"] == "east"
    assert [o["metadata"]["name"] for o in (await store.list("clusters")).items] == ["east"]


async def test_create_taken_name_and_missing_objects(store: Store) -> None:
    base = await store.current_revision()
    await store.create(R, cm("a"))
    with pytest.raises(AlreadyExists, match="already exists"):
        await store.create(R, cm("a"))
    # Same name in another namespace or resource is a different key.
    await store.create(R, cm("a", "other"))
    await store.create("secrets", cm("a"))
    with pytest.raises(NotFound):
        await store.update(R, cm("missing"))
    with pytest.raises(NotFound):
        await store.delete(R, "default", "missing")
    assert await store.current_revision() == base + 3  # refused writes take no revision


async def test_stale_revision_conflicts(store: Store) -> None:
    created = await store.create(R, cm("a"))
    first = rv(created)
    await store.update(R, created, expected_revision=first)
    with pytest.raises(Conflict) as err:
        await store.update(R, created, expected_revision=first)
    assert err.value.current_revision == first + 1
    with pytest.raises(Conflict):
        await store.delete(R, "default", "a", expected_revision=first)
    assert rv(await store.delete(R, "default", "a", expected_revision=first + 1)) == first + 2


async def test_concurrent_updates_with_same_revision_exactly_one_wins(
    store: Store,
) -> None:
    for round_ in range(20):
        name = f"cas{round_}"
        created = await store.create(R, cm(name))
        results = await asyncio.gather(
            *(store.update(R, {**created, "data": {"writer": str(i)}},
                           expected_revision=rv(created)) for i in range(8)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, dict)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert len(winners) == 1, results
        assert len(losers) == 7, results
        assert await store.get(R, "default", name) == winners[0]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {}}, "metadata.name"),
        ({"kind": "ConfigMap"}, "metadata: required"),
        ({"metadata": {"name": "a", "namespace": 3}}, "metadata.namespace"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_objects_are_refused_with_the_field_named(
    store: Store, obj: Any, message: str
) -> None:
    base = await store.current_revision()
    with pytest.raises(ValueError, match=message):
        await store.create(R, obj)
    assert await store.current_revision() == base


async def test_unserialisable_object_fails_alone(store: Store) -> None:
    base = await store.current_revision()
    bad = {"metadata": {"name": "bad"}, "data": {"x": object()}}
    results = await asyncio.gather(
        store.create(R, cm("ok1")), store.create(R, bad), store.create(R, cm("ok2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], TypeError)
    assert sorted(rv(r) for r in (results[0], results[2])) == [  # type: ignore[arg-type]
        base + 1, base + 2]
    with pytest.raises(NotFound):
        await store.get(R, "", "bad")


async def test_concurrent_writes_share_fsyncs(sqlite_store: SqliteStore) -> None:
    """Group commit (SQLite's own): 200 concurrent writes must not cost 200 fsyncs."""
    before = sqlite_store.stats()
    await asyncio.gather(*(sqlite_store.create(R, cm(f"o{i}")) for i in range(200)))
    after = sqlite_store.stats()
    assert after.writes - before.writes == 200
    assert after.batches - before.batches <= 50  # typically 2-3


async def test_calls_after_close_raise_store_closed(open_store: OpenStore) -> None:
    store = await open_store()
    await store.create(R, cm("a"))
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosed):
        await store.get(R, "default", "a")
    with pytest.raises(StoreClosed):
        await store.create(R, cm("b"))
    with pytest.raises(StoreClosed):
        await anext(store.watch(since=0))


async def test_create_with_unknown_lease_is_refused(store: Store) -> None:
    with pytest.raises(NotFound, match="lease 42"):
        await store.create(R, cm("a"), lease_id=42)
    with pytest.raises(NotFound):
        await store.get(R, "default", "a")
