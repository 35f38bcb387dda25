"""CRUD of every kind through the HTTP client against a real server process."""

from __future__ import annotations

import httpx
import pytest

from flotilla.client.base import NotFoundError
from flotilla.client.http import HttpClient, apply, verify_for
from flotilla.resources.kinds import KINDS, Kind, by_kind
from tests.api.samples import mutate, sample


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
async def test_crud_every_kind(client: HttpClient, kind: Kind) -> None:
    ns = "crud" if kind.namespaced else ""
    created = await client.create(sample(kind, "one", namespace="crud"))
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert meta.get("namespace", "") == ns

    assert await client.get(kind, ns, "one") == created
    listed = await client.list(kind, ns or None)
    assert [o["metadata"]["name"] for o in listed.items] == ["one"]
    assert int(listed.resource_version) >= int(meta["resourceVersion"])

    relabelled = dict(created, metadata={**meta, "labels": {"tier": "gold"}})
    updated = await client.update(relabelled)
    assert updated["metadata"]["labels"] == {"tier": "gold"}
    assert updated["metadata"]["generation"] == 1, "a label change is not a spec change"
    assert updated["metadata"]["uid"] == meta["uid"]

    changed = mutate(updated)
    if changed is not None:
        bumped = await client.update(changed)
        assert bumped["metadata"]["generation"] == 2

    gone = await client.delete(kind, ns, "one")
    assert gone is not None
    assert gone["metadata"]["name"] == "one"
    with pytest.raises(NotFoundError, match="one"):
        await client.get(kind, ns, "one")


async def test_namespace_defaults_and_all_namespace_list(client: HttpClient) -> None:
    cm = by_kind("ConfigMap")
    obj = sample(cm, "dflt")
    del obj["metadata"]["namespace"]
    created = await client.create(obj)
    assert created["metadata"]["namespace"] == "default"
    await client.create(sample(cm, "elsewhere", namespace="other"))
    names = {(o["metadata"]["namespace"], o["metadata"]["name"])
             for o in (await client.list(cm)).items}
    assert {("default", "dflt"), ("other", "elsewhere")} <= names
    assert [o["metadata"]["name"] for o in (await client.list(cm, "other")).items] == [
        "elsewhere"]


async def test_policy_is_served_under_both_groups(client: HttpClient,
                                                  http: httpx.AsyncClient) -> None:
    pp = by_kind("PropagationPolicy")
    created = await client.create(
        sample(pp, "karmada", namespace="pol", api_version="policy.karmada.io/v1alpha1"))
    assert created["apiVersion"] == "policy.karmada.io/v1alpha1"
    for group in ("policy.flotilla.io", "policy.karmada.io"):
        r = await http.get(f"/apis/{group}/v1alpha1/namespaces/pol/propagationpolicies/karmada")
        assert r.status_code == 200, r.text
        assert r.json()["apiVersion"] == "policy.karmada.io/v1alpha1", "as the user wrote it"
        r = await http.get(f"/apis/{group}/v1alpha1/namespaces/pol/propagationpolicies")
        assert [o["metadata"]["name"] for o in r.json()["items"]] == ["karmada"]


async def test_status_on_create_is_dropped(client: HttpClient) -> None:
    obj = sample("Deployment", "st", namespace="st")
    obj["status"] = {"replicas": 7}
    created = await client.create(obj)
    assert "status" not in created
    cm = sample("ConfigMap", "nostatus", namespace="st")
    assert (await client.create(cm))["data"] == cm["data"]


async def test_list_paging_and_label_selector(client: HttpClient) -> None:
    cm = by_kind("ConfigMap")
    for i in range(7):
        await client.create(sample(cm, f"p{i}", namespace="paging",
                                   labels={"parity": "even" if i % 2 == 0 else "odd"}))
    seen: list[str] = []
    token = None
    for _ in range(10):
        page = await client.list(cm, "paging", limit=3, continue_token=token)
        assert len(page.items) <= 3
        seen += [o["metadata"]["name"] for o in page.items]
        token = page.continue_token
        if token is None:
            break
    assert seen == [f"p{i}" for i in range(7)]
    odd = await client.list(cm, "paging", selector="parity=odd")
    assert [o["metadata"]["name"] for o in odd.items] == ["p1", "p3", "p5"]
    notin = await client.list(cm, "paging", selector="parity notin (odd)")
    assert len(notin.items) == 4


async def test_yaml_body_is_accepted(http: httpx.AsyncClient) -> None:
    body = (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\n"
            b"data:\n  when: 2024-01-01T00:00:00Z\n")
    r = await http.post("/api/v1/namespaces/yaml/configmaps", content=body,
                        headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["when"] == "2024-01-01T00:00:00Z", "timestamps stay strings"
    assert r.json()["metadata"]["namespace"] == "yaml"


async def test_apply_created_configured_unchanged(client: HttpClient) -> None:
    obj = sample("Deployment", "applied", namespace="apply")
    result, first = await apply(client, obj)
    assert result == "created"
    result, again = await apply(client, obj)
    assert result == "unchanged"
    assert again["metadata"]["resourceVersion"] == \
        first["metadata"]["resourceVersion"]
    obj["metadata"]["labels"] = {"team": "a"}
    result, third = await apply(client, obj)
    assert result == "configured"
    assert third["metadata"]["generation"] == 1
    changed = mutate(obj)
    assert changed is not None
    result, fourth = await apply(client, changed)
    assert result == "configured"
    assert fourth["metadata"]["generation"] == 2


async def test_health_metrics_openapi_without_token(client: HttpClient) -> None:
    url = client.server
    async with httpx.AsyncClient(base_url=url, timeout=10,
                                 verify=verify_for(url, client.ca)) as anon:
        assert (await anon.get("/healthz")).status_code == 200
        assert (await anon.get("/readyz")).status_code == 200
        metrics = (await anon.get("/metrics")).text
        assert 'flotilla_api_requests_total{code="201",resource="configmaps",verb="create"}' \
            in metrics
        assert "flotilla_api_request_duration_seconds_bucket" in metrics
        assert "flotilla_api_open_watches" in metrics
        revision = [line for line in metrics.splitlines()
                    if line.startswith("flotilla_store_revision ")]
        assert revision
        assert float(revision[0].split()[1]) > 0
        doc = (await anon.get("/openapi.json")).json()
        assert "/apis/policy.karmada.io/v1alpha1/namespaces/{namespace}/propagationpolicies" \
            in doc["paths"]
        assert "Cluster" in doc["components"]["schemas"]
