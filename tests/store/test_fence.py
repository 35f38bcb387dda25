"""Fenced writes (on both stores): a write carrying a `Fence` applies only while the
named Lease is still at the fence's revision, checked in the write's own transaction.
This is what keeps a deposed controller leader from writing."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.store.base import Conflict, Fence, Fenced, Modifying, NotFound, Store
from flotilla.store.fence import FENCE_SOURCE, FencingStore
from tests.store.conftest import cm

R = "configmaps"


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def lease(holder: str) -> dict[str, Any]:
    return {"apiVersion": "coordination.flotilla.io/v1alpha1", "kind": "Lease",
            "metadata": {"name": "flotilla-controllers", "namespace": "flotilla-system"},
            "spec": {"holderIdentity": holder}}


def fence_at(obj: dict[str, Any]) -> Fence:
    return Fence("leases", "flotilla-system", "flotilla-controllers", rv(obj))


async def test_writes_under_a_current_fence_apply(store: Store) -> None:
    fence = fence_at(await store.create("leases", lease("a")))
    created = await store.create(R, cm("x"), fence=fence)
    updated = await store.update(R, {**cm("x"), "data": {"k": "2"}}, fence=fence,
                                 expected_revision=rv(created))
    assert (await store.get(R, "default", "x"))["data"] == {"k": "2"}
    await store.delete(R, "default", "x", fence=fence, expected_revision=rv(updated))
    with pytest.raises(NotFound):
        await store.get(R, "default", "x")


async def test_a_stale_fence_refuses_every_write_and_writes_nothing(store: Store) -> None:
    held = await store.create("leases", lease("a"))
    stale = fence_at(held)
    await store.create(R, cm("kept"))
    # another replica takes the Lease: its revision moves on
    taken = await store.update("leases", lease("b"), expected_revision=rv(held))
    before = await store.current_revision()
    with pytest.raises(Fenced, match="flotilla-controllers"):
        await store.create(R, cm("new"), fence=stale)
    with pytest.raises(Fenced):
        await store.update(R, {**cm("kept"), "data": {"k": "stale"}}, fence=stale)
    with pytest.raises(Fenced):
        await store.delete(R, "default", "kept", fence=stale)
    assert await store.current_revision() == before  # nothing written at all
    with pytest.raises(NotFound):
        await store.get(R, "default", "new")
    assert (await store.get(R, "default", "kept"))["data"] == {"k": "kept"}
    # the new holder's fence works
    await store.create(R, cm("new"), fence=fence_at(taken))


async def test_a_fence_on_a_missing_lease_refuses(store: Store) -> None:
    with pytest.raises(Fenced, match="gone"):
        await store.create(R, cm("x"), fence=Fence("leases", "flotilla-system", "nope", 1))


async def test_the_fence_is_checked_apart_from_the_objects_own_revision(store: Store
                                                                        ) -> None:
    fence = fence_at(await store.create("leases", lease("a")))
    created = await store.create(R, cm("x"), fence=fence)
    # fence holds, object CAS fails: a Conflict, not Fenced
    with pytest.raises(Conflict):
        await store.update(R, cm("x"), fence=fence, expected_revision=rv(created) + 100)
    with pytest.raises(Conflict):
        await store.delete(R, "default", "x", fence=fence, expected_revision=rv(created) + 100)


class _NeverHeld:
    """A fence source for a context that must not write unfenced."""

    def hold(self) -> Any:
        raise AssertionError("modify must decline, not fence")

    def refused(self, exc: Fenced) -> None:
        raise AssertionError("not reached")


async def test_the_fencing_layer_keeps_one_step_modify_for_unfenced_writers(
        store: Store) -> None:
    """The API server's registry sees the store through `FencingStore`: an agent's
    renewal (no fence source) keeps the one-step `modify`; a controller's (a fence
    source in its context) declines it, so its write goes the fenced get + update way."""
    layered = FencingStore(store)
    assert isinstance(layered, Modifying)
    held = await store.create(R, cm("m"))

    def change(current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "data": {"k": "changed"}}

    token = FENCE_SOURCE.set(_NeverHeld())
    try:
        assert await layered.modify(R, "default", "m", change,
                                    expected_revision=rv(held)) is None
    finally:
        FENCE_SOURCE.reset(token)
    assert (await store.get(R, "default", "m"))["data"] != {"k": "changed"}
    written = await layered.modify(R, "default", "m", change, expected_revision=rv(held))
    assert written is not None
    assert written["data"] == {"k": "changed"}
    with pytest.raises(Conflict):
        await layered.modify(R, "default", "m", change, expected_revision=rv(held))
