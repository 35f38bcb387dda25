"""The per group/version OpenAPI v3 documents kubectl reads: valid OpenAPI 3.0, a schema
and operations tagged with each kind's group/version/kind, field docs, merge keys, and
the fieldValidation parameter on PATCH (what makes kubectl validate server-side)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis

from flotilla.api.openapi import group_version_document, gv_path, openapi_v3_index
from flotilla.resources.kinds import KINDS


def _schema_of(doc: dict[str, Any], group: str, version: str, kind: str) -> dict[str, Any]:
    for schema in doc["components"]["schemas"].values():
        if {"group": group, "version": version, "kind": kind} in \
                schema.get("x-kubernetes-group-version-kind", []):
            return dict(schema)
    raise AssertionError(f"no schema for {group}/{version} {kind}")


def test_the_index_lists_every_served_group_version() -> None:
    index = openapi_v3_index()["paths"]
    wanted = {gv_path(v) for k in KINDS for v in k.api_versions}
    assert set(index) == wanted
    assert "apis/policy.karmada.io/v1alpha1" in index
    assert index["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")


@pytest.mark.parametrize("path", sorted({gv_path(v) for k in KINDS for v in k.api_versions}))
def test_each_document_is_valid_openapi_3_0(path: str) -> None:
    doc = group_version_document(path)
    assert doc is not None
    assert doc["openapi"] == "3.0.0"
    schemathesis.openapi.from_dict(json.loads(json.dumps(doc))).validate()
    text = json.dumps(doc)
    assert '"type": "null"' not in text  # 2020-12 only; client-go cannot read it


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_every_kind_has_a_tagged_schema_and_a_patch_with_field_validation(kind: Any
                                                                          ) -> None:
    for api_version in kind.api_versions:
        doc = group_version_document(gv_path(api_version))
        assert doc is not None
        group, _, version = api_version.rpartition("/")
        _schema_of(doc, group, version, kind.kind)
        gvk = {"group": group, "version": version, "kind": kind.kind}
        patches = [item["patch"] for item in doc["paths"].values()
                   if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]
        assert patches
        assert any(p["name"] == "fieldValidation" and p["in"] == "query"
                   for p in patches[0]["parameters"])


def test_placement_has_field_docs_for_kubectl_explain() -> None:
    doc = group_version_document("apis/policy.karmada.io/v1alpha1")
    assert doc is not None
    schemas = doc["components"]["schemas"]
    spec_ref = _schema_of(doc, "policy.karmada.io", "v1alpha1",
                          "PropagationPolicy")["properties"]["spec"]
    spec = schemas[spec_ref["$ref"].rsplit("/", 1)[-1]]
    assert "Where the selected resources run" in spec["properties"]["placement"]["description"]
    placement = schemas["Placement"]
    assert "Which member clusters" in placement["description"]
    assert "clusterNames" not in placement["properties"]  # its own level: clusterAffinity
    assert "ordered fallback" in placement["properties"]["clusterAffinities"][
        "description"].lower()


def test_kubernetes_kinds_carry_their_merge_keys_and_accept_strategic_patches() -> None:
    doc = group_version_document("apis/apps/v1")
    assert doc is not None
    pod = doc["components"]["schemas"]["PodSpec"]["properties"]["containers"]
    assert pod["x-kubernetes-patch-merge-key"] == "name"
    assert pod["x-kubernetes-patch-strategy"] == "merge"
    container = doc["components"]["schemas"]["Container"]["properties"]
    assert container["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    deploy_patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"][
        "patch"]
    assert "application/strategic-merge-patch+json" in deploy_patch["requestBody"]["content"]
    own = group_version_document("apis/policy.flotilla.io/v1alpha1")
    assert own is not None
    own_patch = own["paths"][
        "/apis/policy.flotilla.io/v1alpha1/namespaces/{namespace}/propagationpolicies/{name}"
    ]["patch"]
    # Like a custom resource: kubectl then computes a merge patch for client-side apply.
    assert "application/strategic-merge-patch+json" not in own_patch["requestBody"]["content"]


def test_unknown_group_versions_have_no_document() -> None:
    assert group_version_document("apis/example.com/v1") is None
