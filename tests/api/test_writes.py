"""PATCH (three patch types and server-side apply), field managers, fieldValidation,
dryRun, DeleteOptions and the scale sub-resource, over HTTP against a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from flotilla.resources.kinds import by_kind
from tests.api.samples import sample

DEPLOY = by_kind("Deployment")
PP = by_kind("PropagationPolicy")
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
DEPLOYS = "/apis/apps/v1/namespaces/wr/deployments"
PPS = "/apis/policy.karmada.io/v1alpha1/namespaces/wr/propagationpolicies"


async def _deploy(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post(DEPLOYS, json=sample(DEPLOY, name, namespace="wr"))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _managers(obj: dict[str, Any]) -> dict[str, str]:
    return {m["manager"]: m["operation"] for m in obj["metadata"].get("managedFields", [])}


async def test_the_three_patch_types(http: httpx.AsyncClient) -> None:
    await _deploy(http, "p3")
    path = f"{DEPLOYS}/p3"
    r = await http.patch(path, content=json.dumps({"spec": {"replicas": 4}}), headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["replicas"] == 4
    assert r.json()["metadata"]["generation"] == 2
    ops = [{"op": "test", "path": "/spec/replicas", "value": 4},
           {"op": "replace", "path": "/spec/replicas", "value": 5}]
    r = await http.patch(path, content=json.dumps(ops), headers=JSONP)
    assert r.json()["spec"]["replicas"] == 5
    sidecar = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "envoy:1"}]}}}}
    r = await http.patch(path, content=json.dumps(sidecar), headers=SMP)
    names = [c["name"] for c in r.json()["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["sidecar", "web"]  # merged by name, not replaced
    failed = [{"op": "test", "path": "/spec/replicas", "value": 99},
              {"op": "replace", "path": "/spec/replicas", "value": 1}]
    r = await http.patch(path, content=json.dumps(failed), headers=JSONP)
    assert r.status_code == 422
    assert "test failed" in r.json()["message"]
    assert (await http.get(path)).json()["spec"]["replicas"] == 5  # nothing half-applied


async def test_a_patch_is_revalidated_and_bad_patches_are_4xx(http: httpx.AsyncClient
                                                              ) -> None:
    await _deploy(http, "pbad")
    path = f"{DEPLOYS}/pbad"
    r = await http.patch(path, content=json.dumps({"spec": {"replicas": "many"}}),
                         headers=MERGE)
    assert r.status_code == 422
    assert any(c["field"] == "spec.replicas" for c in r.json()["details"]["causes"])
    r = await http.patch(path, content=b'{"spec": {"replicas": 2}}',
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert "merge-patch+json" in r.json()["message"]
    r = await http.patch(path, content=b"[1, 2]", headers=MERGE)
    assert r.status_code == 400
    r = await http.patch(path, content=json.dumps({"metadata": {"name": "other"}}),
                         headers=MERGE)
    assert r.status_code == 400
    assert "metadata.name" in r.json()["message"]
    r = await http.patch(f"{DEPLOYS}/missing", content=b"{}", headers=MERGE)
    assert r.status_code == 404


async def test_a_patch_with_a_stale_resource_version_is_a_conflict(
    http: httpx.AsyncClient,
) -> None:
    created = await _deploy(http, "pcas")
    await http.patch(f"{DEPLOYS}/pcas", content=b'{"spec":{"replicas":3}}', headers=MERGE)
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
             "spec": {"replicas": 9}}
    r = await http.patch(f"{DEPLOYS}/pcas", content=json.dumps(stale), headers=MERGE)
    assert r.status_code == 409


async def test_concurrent_patches_all_land(http: httpx.AsyncClient) -> None:
    await _deploy(http, "pconc")
    patches = [json.dumps({"metadata": {"labels": {f"l{i}": "x"}}}) for i in range(6)]
    answers = await asyncio.gather(*(http.patch(f"{DEPLOYS}/pconc", content=p,
                                                headers=MERGE) for p in patches))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    labels = (await http.get(f"{DEPLOYS}/pconc")).json()["metadata"]["labels"]
    assert {f"l{i}" for i in range(6)} <= set(labels)


async def test_server_side_apply_conflicts_force_and_removal(http: httpx.AsyncClient
                                                             ) -> None:
    body = sample(DEPLOY, "ssa", namespace="wr")
    body["metadata"]["labels"] = {"app": "web", "tier": "front"}
    path = f"{DEPLOYS}/ssa"
    r = await http.patch(path, params={"fieldManager": "alice"},
                         content=json.dumps(body), headers=APPLY)
    assert r.status_code == 201, r.text
    assert _managers(r.json()) == {"alice": "Apply"}
    r = await http.patch(path, content=json.dumps(body), headers=APPLY)
    assert r.status_code == 400
    assert "fieldManager is required" in r.json()["message"]
    bob = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa"},
           "spec": {"replicas": 7}}  # bob applies only what he cares about
    r = await http.patch(path, params={"fieldManager": "bob"}, content=json.dumps(bob),
                         headers=APPLY)
    assert r.status_code == 409, r.text
    status = r.json()
    assert status["reason"] == "Conflict"
    assert 'conflict with "alice"' in status["message"]
    assert status["details"]["causes"] == [{
        "reason": "FieldManagerConflict", "field": ".spec.replicas",
        "message": 'conflict with "alice" using apps/v1'}]
    r = await http.patch(path, params={"fieldManager": "bob", "force": "true"},
                         content=json.dumps(bob), headers=APPLY)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["replicas"] == 7
    assert _managers(r.json()) == {"alice": "Apply", "bob": "Apply"}
    # alice stops applying a label she alone owns: it goes; replicas is bob's now.
    del body["metadata"]["labels"]["tier"]
    del body["spec"]["replicas"]
    r = await http.patch(path, params={"fieldManager": "alice"}, content=json.dumps(body),
                         headers=APPLY)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"app": "web"}
    assert r.json()["spec"]["replicas"] == 7
    again = await http.patch(path, params={"fieldManager": "alice"},
                             content=json.dumps(body), headers=APPLY)
    assert again.json()["metadata"]["resourceVersion"] == \
        r.json()["metadata"]["resourceVersion"]  # an unchanged apply writes nothing


async def test_ordinary_writes_record_update_managers(http: httpx.AsyncClient) -> None:
    r = await http.post(DEPLOYS, params={"fieldManager": "ci"},
                        json=sample(DEPLOY, "upd", namespace="wr"))
    assert _managers(r.json()) == {"ci": "Update"}
    r = await http.patch(f"{DEPLOYS}/upd", content=b'{"spec":{"replicas":6}}',
                         headers={**MERGE, "User-Agent": "kubectl/v1.32.0 (linux/amd64)"})
    managed = r.json()["metadata"]["managedFields"]
    kubectl = next(m for m in managed if m["manager"] == "kubectl")
    assert kubectl["operation"] == "Update"
    assert kubectl["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


async def test_field_validation_strict_warn_ignore(http: httpx.AsyncClient) -> None:
    body = sample(PP, "fv", namespace="wr")
    body["spec"]["bogus"] = 1
    body["spec"]["resourceSelectors"][0]["nope"] = 2
    r = await http.post(PPS, params={"fieldValidation": "Strict"}, json=body)
    assert r.status_code == 400
    message = r.json()["message"]
    assert 'unknown field "spec.bogus"' in message
    assert 'unknown field "spec.resourceSelectors[0].nope"' in message
    r = await http.post(PPS, params={"fieldValidation": "Warn"}, json=body)
    assert r.status_code == 201, r.text
    warnings = r.headers.get_list("warning")
    assert '299 - "unknown field \\"spec.bogus\\""' in warnings
    assert "bogus" not in r.json()["spec"]
    body["metadata"]["name"] = "fv2"
    r = await http.post(PPS, params={"fieldValidation": "Ignore"}, json=body)
    assert r.status_code == 201
    assert "warning" not in r.headers
    r = await http.post(PPS, json={**body, "metadata": {"name": "fv3"}})
    assert r.status_code == 422  # unset: Flotilla's own kinds refuse the unknown field
    r = await http.post(PPS, params={"fieldValidation": "Sloppy"}, json=body)
    assert r.status_code == 400


async def test_dry_run_validates_and_writes_nothing(http: httpx.AsyncClient) -> None:
    r = await http.post(DEPLOYS, params={"dryRun": "All"},
                        json=sample(DEPLOY, "dry", namespace="wr"))
    assert r.status_code == 201
    assert r.json()["metadata"]["uid"]
    assert (await http.get(f"{DEPLOYS}/dry")).status_code == 404
    bad = sample(DEPLOY, "dry", namespace="wr")
    bad["spec"]["replicas"] = -1
    r = await http.post(DEPLOYS, params={"dryRun": "All"}, json=bad)
    assert r.status_code == 422
    await _deploy(http, "dry2")
    r = await http.patch(f"{DEPLOYS}/dry2", params={"dryRun": "All"},
                         content=b'{"spec":{"replicas":8}}', headers=MERGE)
    assert r.json()["spec"]["replicas"] == 8
    assert (await http.get(f"{DEPLOYS}/dry2")).json()["spec"]["replicas"] == 2
    r = await http.post(DEPLOYS, params={"dryRun": "Some"},
                        json=sample(DEPLOY, "dry3", namespace="wr"))
    assert r.status_code == 400


async def test_delete_options(http: httpx.AsyncClient) -> None:
    created = await _deploy(http, "del")
    path = f"{DEPLOYS}/del"
    r = await http.request("DELETE", path, json={
        "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"})
    assert r.status_code == 400
    r = await http.request("DELETE", path, json={"preconditions": {"uid": "not-it"}})
    assert r.status_code == 409
    r = await http.request("DELETE", path, json={"dryRun": ["All"]})
    assert r.status_code == 200
    assert (await http.get(path)).status_code == 200
    r = await http.request("DELETE", path, json={
        "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0, "preconditions": {"uid": created["metadata"]["uid"]}})
    assert r.status_code == 200, r.text
    assert (await http.get(path)).status_code == 404


async def test_the_scale_subresource(http: httpx.AsyncClient) -> None:
    await _deploy(http, "sc")
    path = f"{DEPLOYS}/sc/scale"
    scale = (await http.get(path)).json()
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"]["selector"] == "app=web"
    r = await http.patch(path, content=b'{"spec":{"replicas":9}}', headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["replicas"] == 9
    assert (await http.get(f"{DEPLOYS}/sc")).json()["spec"]["replicas"] == 9
    scale = r.json()
    scale["spec"]["replicas"] = 3
    r = await http.put(path, json=scale)
    assert r.json()["spec"]["replicas"] == 3
    r = await http.put(path, json={**scale, "spec": {"replicas": -2}})
    assert r.status_code == 400
    r = await http.get("/api/v1/namespaces/wr/configmaps/x/scale")
    assert r.status_code == 404


async def test_openapi_v3_is_served_without_a_token_and_v2_is_not(
    server: Any, http: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10,
                                 verify=server.verify) as anon:
        index = (await anon.get("/openapi/v3")).json()
        url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        doc = (await anon.get(url)).json()
        assert doc["openapi"] == "3.0.0"
        assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}" in doc["paths"]
        assert (await anon.get("/openapi/v3/apis/example.com/v1")).status_code == 404
        v2 = await anon.get("/openapi/v2")
        assert v2.status_code == 404
        assert v2.json()["kind"] == "Status"


async def test_protobuf_bodies_get_a_415_saying_what_to_do(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/namespaces/wr/configmaps", content=b"k8s\x00\n\x0f",
                        headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 415
    assert r.json()["reason"] == "UnsupportedMediaType"
    assert "--dry-run=client -o yaml | kubectl apply -f -" in r.json()["message"]
