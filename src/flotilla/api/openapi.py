"""The OpenAPI v3 document, derived from the kind table and the pydantic models.

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

import logging
from functools import cache
from typing import Any

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
