"""The OpenAPI documents, derived from the kind table and the pydantic models.

Two forms of one source. ``/openapi.json``: the whole API as one OpenAPI 3.1 document
(what the fuzzer and generic tools read). ``/openapi/v3``: Kubernetes' index of one
document per group/version (``/openapi/v3/apis/G/V``), the form kubectl and client-go
read: OpenAPI 3.0 schemas (``nullable``, boolean ``exclusiveMinimum``), each kind's
schema tagged ``x-kubernetes-group-version-kind``, each operation too, list merge keys
from `flotilla.api.patch.schema` (``x-kubernetes-patch-merge-key``, so
``kubectl apply`` builds the patch the server merges), and the ``fieldValidation``
parameter on PATCH, which tells kubectl the server validates fields itself
(``kubectl apply --validate=strict``). ``/openapi/v2`` stays unserved: kubectl 1.32
falls back to it only when v3 is missing.

Built once per process from `flotilla.resources.kinds.KINDS` (paths) and the models'
``model_json_schema()`` (bodies), so it cannot drift from what the server validates.
A kind whose model cannot render a schema gets an open object schema rather than
breaking the whole document. Served without authentication: it describes the API,
holds no data, and lets tools discover the server before a token is configured.

The document is OpenAPI 3.1, not 3.0: its Schema Objects are pydantic's JSON Schema
(draft 2020-12: ``{"type": "null"}`` in ``anyOf`` for optional fields, a numeric
``exclusiveMinimum``, ``$ref`` beside ``default``), which 3.1 takes as it is and 3.0's
draft-4 dialect rejects; tools reading it as 3.0 could not generate a valid body for
some kinds (``tests/api/test_fuzz.py`` checks it against the OpenAPI meta-schema).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from functools import cache
from typing import Any

from flotilla.api.patch.schema import MergeList, Schema, schema_for
from flotilla.resources.kinds import KINDS, Kind
from flotilla.resources.models import MODELS

log = logging.getLogger(__name__)

_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kind": {"type": "string", "enum": ["Status"]},
        "apiVersion": {"type": "string"},
        "status": {"type": "string"},
        "code": {"type": "integer"},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "details": {
            "type": "object",
            "properties": {
                "causes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"},
                                       "message": {"type": "string"}},
                    },
                }
            },
        },
    },
}


def _model_schema(kind: Kind) -> dict[str, Any] | None:
    """The JSON schema of ``kind``'s pydantic model, or None when it has none."""
    model = MODELS.get(kind.kind)
    if model is None:
        return None
    try:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    except Exception:  # a schema we cannot render must not take the document down
        log.exception("no OpenAPI schema for %s", kind.kind)
        return None
    return schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(ok: dict[str, Any], code: str = "200") -> dict[str, Any]:
    error = {"description": "error", "content": {"application/json": {"schema": _ref("Status")}}}
    return {code: {"description": "OK", "content": {"application/json": {"schema": ok}}},
            "default": error}


def _paths_for(kind: Kind, api_version: str) -> dict[str, Any]:
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    obj, lst = _ref(kind.kind), _ref(f"{kind.kind}List")
    body = {"required": True, "content": {
        "application/json": {"schema": obj}, "application/yaml": {"schema": obj}}}
    params = [
        {"name": "labelSelector", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
        {"name": "continue", "in": "query", "schema": {"type": "string"}},
        {"name": "watch", "in": "query", "schema": {"type": "boolean"}},
        {"name": "resourceVersion", "in": "query", "schema": {"type": "string"}},
    ]
    tag = [kind.kind]
    scoped = f"{root}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else \
        f"{root}/{kind.plural}"
    paths: dict[str, Any] = {
        scoped: {
            "get": {"tags": tag, "summary": f"list or watch {kind.plural}",
                    "parameters": params, "responses": _responses(lst)},
            "post": {"tags": tag, "summary": f"create a {kind.kind}", "requestBody": body,
                     "responses": _responses(obj, "201")},
        },
        f"{scoped}/{{name}}": {
            "get": {"tags": tag, "summary": f"read a {kind.kind}", "responses": _responses(obj)},
            "put": {"tags": tag, "summary": f"replace a {kind.kind}", "requestBody": body,
                    "responses": _responses(obj)},
            "delete": {"tags": tag, "summary": f"delete a {kind.kind}",
                       "responses": _responses(obj)},
        },
    }
    if kind.has_status:
        paths[f"{scoped}/{{name}}/status"] = {
            "get": {"tags": tag, "summary": f"read a {kind.kind}'s status",
                    "responses": _responses(obj)},
            "put": {"tags": tag, "summary": f"replace a {kind.kind}'s status",
                    "requestBody": body, "responses": _responses(obj)},
        }
    if kind.namespaced:
        paths[f"{root}/{kind.plural}"] = {
            "get": {"tags": tag, "summary": f"list or watch {kind.plural} in all namespaces",
                    "parameters": params, "responses": _responses(lst)},
        }
    for path, item in paths.items():  # path parameters, declared as OpenAPI requires
        item["parameters"] = [{"name": n, "in": "path", "required": True,
                               "schema": {"type": "string"}}
                              for n in ("namespace", "name") if f"{{{n}}}" in path]
    return paths


@cache
def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Status": _STATUS_SCHEMA}
    paths: dict[str, Any] = {}
    for kind in KINDS:
        schema = _model_schema(kind)
        if schema is None:
            schema = {"type": "object", "additionalProperties": True,
                      "required": ["apiVersion", "kind", "metadata"]}
        schemas.update(schema.pop("$defs", {}))
        schemas[kind.kind] = schema
        schemas[f"{kind.kind}List"] = {
            "type": "object",
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object"},
                           "items": {"type": "array", "items": _ref(kind.kind)}},
        }
        for api_version in kind.api_versions:
            paths.update(_paths_for(kind, api_version))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Flotilla API", "version": "v1alpha1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


# -- Kubernetes' per group/version documents ---------------------------------------------

def gv_path(api_version: str) -> str:
    """``api/v1`` for the core group, ``apis/G/V`` for the others (the index's keys)."""
    return f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"


def _served_gvs() -> dict[str, list[Kind]]:
    out: dict[str, list[Kind]] = {}
    for kind in KINDS:
        for api_version in kind.api_versions:
            out.setdefault(gv_path(api_version), []).append(kind)
    return out


def _kube_schema(node: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema as the OpenAPI 3.0 that client-go parses."""
    if isinstance(node, list):
        return [_kube_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "prefixItems", "discriminator"):
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "description" and isinstance(value, str):
            # Docstrings wrap at 90 columns; kubectl explain re-wraps, keeping newlines.
            out[key] = re.sub(r"(?<!\n)\n(?!\n)", " ", value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else "object"
            if "null" in value:
                out["nullable"] = True
        elif key == "anyOf":
            options = [o for o in value if o != {"type": "null"}]
            nullable = len(options) != len(value)
            if len(options) == 1:
                only = _kube_schema(options[0])
                if "$ref" in only:
                    out["allOf"] = [only]
                else:
                    out.update(only)
            else:
                out["anyOf"] = _kube_schema(options)
            if nullable:
                out["nullable"] = True
        elif key in ("properties", "$defs", "patternProperties"):
            out[key] = {k: _kube_schema(v) for k, v in value.items()}
        else:
            out[key] = _kube_schema(value)
    if out.get("additionalProperties") is True:  # an open object (a Kubernetes kind's)
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if not ({"type", "$ref", "allOf", "anyOf", "oneOf", "enum", "properties", "items"}
            & set(out)):  # any value: kubectl explain needs a non-empty schema to name it
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "$ref" in out and len(out) > 1:  # 3.0 ignores siblings of $ref: wrap it
        out = {**{k: v for k, v in out.items() if k != "$ref"}, "allOf": [{"$ref": out["$ref"]}]}
    return out


def _resolve(node: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    for _ in range(8):
        ref = node.get("$ref") or next((a.get("$ref") for a in node.get("allOf", [])
                                        if isinstance(a, dict) and "$ref" in a), None)
        if ref is None:
            return node
        node = schemas.get(str(ref).rsplit("/", 1)[-1], {})
    return node


def _mark_merge_keys(node: dict[str, Any], patch: Schema, schemas: dict[str, Any]) -> None:
    """Tag the lists ``patch`` names with their merge key, walking through $refs."""
    props = _resolve(node, schemas).get("properties") or {}
    for name, sub in patch.items():
        prop = props.get(name)
        if not isinstance(prop, dict):
            continue
        if isinstance(sub, MergeList):
            target = _resolve(prop, schemas)
            strategy = "merge,retainKeys" if sub.retain_keys else "merge"
            prop["x-kubernetes-patch-strategy"] = strategy
            if sub.key is not None:
                prop["x-kubernetes-patch-merge-key"] = sub.key
                prop["x-kubernetes-list-type"] = "map"
                prop["x-kubernetes-list-map-keys"] = [sub.key]
            else:
                prop["x-kubernetes-list-type"] = "set"
            items = target.get("items")
            if isinstance(items, dict) and sub.items:
                _mark_merge_keys(items, sub.items, schemas)
        else:
            _mark_merge_keys(prop, sub, schemas)


def _gvk(kind: Kind, api_version: str) -> dict[str, str]:
    group, _, version = api_version.rpartition("/")
    return {"group": group, "version": version, "kind": kind.kind}


_QUERY = {name: {"name": name, "in": "query", "schema": {"type": t}, "description": d}
          for name, t, d in (
    ("fieldValidation", "string",
     "Strict: refuse unknown fields (400, each named); Warn: drop them with a Warning "
     "header; Ignore: drop them silently."),
    ("fieldManager", "string", "The name of the actor making the change."),
    ("dryRun", "string", "All: validate and answer without writing."),
    ("force", "boolean", "Server-side apply: take over fields other managers own."),
    ("labelSelector", "string", "Only objects whose labels match."),
    ("fieldSelector", "string",
     "Only objects whose fields match: metadata.name, metadata.namespace; for Events "
     "also involvedObject.kind|name|namespace|uid|apiVersion, reason, type."),
    ("timeoutSeconds", "integer", "End the watch after this many seconds."),
    ("allowWatchBookmarks", "boolean", "Send BOOKMARK events while the watch is idle."),
    ("limit", "integer", "At most this many items; continue with the returned token."),
    ("continue", "string", "The token of the previous page."),
    ("watch", "boolean", "Stream changes instead of listing."),
    ("resourceVersion", "string", "Where a list or watch starts."),
)}


def _op(kind: Kind, api_version: str, action: str, summary: str, ok: dict[str, Any],
        params: tuple[str, ...] = (), body: dict[str, Any] | None = None,
        code: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": summary,
        "operationId": f"{action}{kind.kind}",
        "parameters": [_QUERY[p] for p in params],
        "responses": {code: {"description": "OK",
                             "content": {"application/json": {"schema": ok}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(kind, api_version),
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _kube_paths(kind: Kind, api_version: str, name: str) -> dict[str, Any]:
    root = "/" + gv_path(api_version)
    obj, lst = _ref(name), _ref(f"{name}List")
    json_body = {"required": True, "content": {"*/*": {"schema": obj}}}
    patch_types = ["application/json-patch+json", "application/merge-patch+json",
                   "application/apply-patch+yaml"]
    if schema_for(kind.kind) is not None:
        patch_types.append("application/strategic-merge-patch+json")
    patch_body = {"required": True,
                  "content": {t: {"schema": {"type": "object"}} for t in patch_types}}
    write = ("dryRun", "fieldManager", "fieldValidation")
    scoped = f"{root}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else \
        f"{root}/{kind.plural}"
    paths: dict[str, Any] = {
        scoped: {
            "get": _op(kind, api_version, "list", f"list or watch {kind.plural}", lst,
                       ("labelSelector", "fieldSelector", "limit", "continue", "watch",
                        "resourceVersion", "timeoutSeconds", "allowWatchBookmarks")),
            "post": _op(kind, api_version, "post", f"create a {kind.kind}", obj, write,
                        json_body, "201"),
        },
        f"{scoped}/{{name}}": {
            "get": _op(kind, api_version, "get", f"read a {kind.kind}", obj),
            "put": _op(kind, api_version, "put", f"replace a {kind.kind}", obj, write,
                       json_body),
            "patch": _op(kind, api_version, "patch", f"patch a {kind.kind}", obj,
                         (*write, "force"), patch_body),
            "delete": _op(kind, api_version, "delete", f"delete a {kind.kind}",
                          _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
                          ("dryRun",)),
        },
    }
    if kind.has_status:
        paths[f"{scoped}/{{name}}/status"] = {
            "get": _op(kind, api_version, "get", f"read a {kind.kind}'s status", obj),
            "put": _op(kind, api_version, "put", f"replace a {kind.kind}'s status", obj,
                       write, json_body),
            "patch": _op(kind, api_version, "patch", f"patch a {kind.kind}'s status", obj,
                         (*write, "force"), patch_body),
        }
    for path, item in paths.items():
        item["parameters"] = [{"name": n, "in": "path", "required": True,
                               "schema": {"type": "string"}}
                              for n in ("namespace", "name") if f"{{{n}}}" in path]
    return paths


def _status_schema() -> dict[str, Any]:
    return {"description": "Status is the answer of a failed call (and of some deletes).",
            "type": "object",
            "properties": {k: v for k, v in _STATUS_SCHEMA["properties"].items()},
            "x-kubernetes-group-version-kind": [
                {"group": "", "version": "v1", "kind": "Status"}]}


@cache
def _group_version_documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path, kinds in _served_gvs().items():
        api_version = path.split("/", 1)[1]
        schemas: dict[str, Any] = {
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status": _status_schema()}
        paths: dict[str, Any] = {}
        for kind in kinds:
            raw = _model_schema(kind) or {"type": "object", "additionalProperties": True}
            raw = copy.deepcopy(raw)
            for def_name, definition in raw.pop("$defs", {}).items():
                schemas.setdefault(def_name, _kube_schema(definition))
            schema = _kube_schema(raw)
            schema["x-kubernetes-group-version-kind"] = [_gvk(kind, api_version)]
            schema.setdefault("description", f"{kind.kind} ({api_version}).")
            schemas[kind.kind] = schema
            patch_schema = schema_for(kind.kind)
            if patch_schema is not None:
                _mark_merge_keys(schema, patch_schema, schemas)
            schemas[f"{kind.kind}List"] = {
                "description": f"A list of {kind.kind} objects.",
                "type": "object",
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "metadata": {"type": "object"},
                               "items": {"type": "array", "items": _ref(kind.kind)}},
                "x-kubernetes-group-version-kind": [
                    {**_gvk(kind, api_version), "kind": f"{kind.kind}List"}],
            }
            paths.update(_kube_paths(kind, api_version, kind.kind))
        docs[path] = {
            "openapi": "3.0.0",
            "info": {"title": "Flotilla", "version": api_version},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}}},
            "security": [{"BearerToken": []}],
        }
    return docs


def group_version_document(path: str) -> dict[str, Any] | None:
    """The document of ``api/v1`` or ``apis/G/V``, None when no kind is served there."""
    return _group_version_documents().get(path.strip("/"))


@cache
def openapi_v3_index() -> dict[str, Any]:
    """``/openapi/v3``: each document's URL carries a hash of its content, so clients
    may cache it for as long as the URL stays the same."""
    paths = {}
    for path, doc in _group_version_documents().items():
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64]
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}
