"""Compare-and-set, spec/status separation, generations and finalizers, over HTTP."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest

from flotilla.client.base import ConflictError, NotFoundError
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from tests.api.samples import sample

DEPLOY = by_kind("Deployment")
CLUSTER = by_kind("Cluster")


async def test_concurrent_updates_with_same_version_one_wins(
    client: HttpClient, http: httpx.AsyncClient,
) -> None:
    created = await client.create(sample(DEPLOY, "race", namespace="sem"))
    path = "/apis/apps/v1/namespaces/sem/deployments/race"
    for round_ in range(5):
        current = (await http.get(path)).json()
        bodies = []
        for who in ("a", "b"):
            body = copy.deepcopy(current)
            body["metadata"]["labels"] = {"writer": f"{who}{round_}"}
            bodies.append(body)
        answers = await asyncio.gather(*(http.put(path, json=b) for b in bodies))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409).json()
        assert loser["kind"] == "Status"
        assert loser["reason"] == "Conflict"
        assert "modified" in loser["message"]
    stale = dict(created)
    with pytest.raises(ConflictError):
        await client.update(stale)


async def test_status_and_spec_updates_do_not_overwrite_each_other(client: HttpClient) -> None:
    base = await client.create(sample(CLUSTER, "east"))
    # Writers that never pass a resourceVersion: each carries a stale copy of the other half.
    for i in range(10):
        spec_obj = copy.deepcopy(base)
        spec_obj["metadata"].pop("resourceVersion")
        spec_obj["spec"]["zone"] = f"zone-{i}"
        spec_obj["status"] = {"conditions": []}  # ignored by update
        status_obj = copy.deepcopy(base)
        status_obj["metadata"].pop("resourceVersion")
        status_obj["spec"]["zone"] = "stale-zone"  # ignored by update_status
        status_obj["status"] = {"allocatable": {"cpu": f"{i + 1}"}}
        await asyncio.gather(client.update(spec_obj), client.update_status(status_obj))
        final = await client.get(CLUSTER, "", "east")
        assert final["spec"]["zone"] == f"zone-{i}"
        assert final["status"]["allocatable"]["cpu"] == f"{i + 1}"


async def test_generation_moves_only_on_spec_change(client: HttpClient) -> None:
    obj = await client.create(sample(CLUSTER, "gen"))
    assert obj["metadata"]["generation"] == 1
    obj["metadata"]["labels"] = {"a": "b"}
    obj = await client.update(obj)
    obj["status"] = {"allocatable": {"cpu": "2"}}
    obj = await client.update_status(obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["zone"] = "other"
    obj = await client.update(obj)
    assert obj["metadata"]["generation"] == 2
    obj = await client.update(obj)  # the same spec again
    assert obj["metadata"]["generation"] == 2


async def test_server_fields_cannot_be_forged(client: HttpClient) -> None:
    created = await client.create(sample(DEPLOY, "forge", namespace="sem"))
    forged = copy.deepcopy(created)
    forged["metadata"].update(uid="forged", generation=99, creationTimestamp="2000-01-01T00:00:00Z")
    after = await client.update(forged)
    for field in ("uid", "generation", "creationTimestamp"):
        assert after["metadata"][field] == created["metadata"][field]


async def test_finalizers_hold_deletion_until_removed(client: HttpClient) -> None:
    obj = sample(DEPLOY, "held", namespace="sem")
    obj["metadata"]["finalizers"] = ["flotilla.io/cleanup"]
    created = await client.create(obj)
    marked = await client.delete(DEPLOY, "sem", "held")
    assert marked is not None
    assert marked["metadata"]["deletionTimestamp"]
    still = await client.get(DEPLOY, "sem", "held")
    assert still["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    again = await client.delete(DEPLOY, "sem", "held")
    assert again is not None
    assert again["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"], \
        "a second delete changes nothing"
    assert still["metadata"]["uid"] == created["metadata"]["uid"]
    still["metadata"]["finalizers"] = []
    await client.update(still)
    with pytest.raises(NotFoundError):
        await client.get(DEPLOY, "sem", "held")


async def test_delete_with_stale_version_conflicts(client: HttpClient) -> None:
    created = await client.create(sample(DEPLOY, "cas-delete", namespace="sem"))
    created["metadata"]["labels"] = {"x": "y"}
    await client.update(created)
    with pytest.raises(ConflictError):
        await client.delete(DEPLOY, "sem", "cas-delete",
                            resource_version=created["metadata"]["resourceVersion"])
    assert await client.get(DEPLOY, "sem", "cas-delete")
