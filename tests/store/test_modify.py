"""`Modifying.modify`: read, check and write one object as one store step (both stores)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from flotilla.store.base import Conflict, Modifying, NotFound, Store
from tests.store.conftest import cm

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
