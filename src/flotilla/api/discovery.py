"""The discovery endpoint: a ServiceImport's endpoints as plain JSON.

    GET /apis/multicluster.x-k8s.io/v1alpha1/namespaces/{ns}/serviceimports/{name}/endpoints

A client that wants addresses (a sidecar, a script, a service outside DNS's reach) asks
here instead of reading the ServiceImport and knowing where Flotilla keeps its extension
fields. The answer is built from the stored ServiceImport only, so it says exactly what
`flotilla get serviceimports -o wide` and the import itself say; nothing is recomputed.

Authenticated, authorized (as a get of the ServiceImport), error-mapped and measured
like every other API call; it lives outside the generic resource router because it is a
read-only view, not a sub-resource one can write.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flotilla.api.errors import InternalError, status_response
from flotilla.api.gate import admit
from flotilla.api.paths import Target
from flotilla.api.routes import ApiContext
from flotilla.client.base import ApiError
from flotilla.resources.kinds import by_kind

log = logging.getLogger(__name__)

SERVICE_IMPORT = by_kind("ServiceImport")
ENDPOINTS_PATH = (f"/apis/{SERVICE_IMPORT.api_version}/namespaces/{{namespace}}/"
                  f"{SERVICE_IMPORT.plural}/{{name}}/endpoints")
#: The resource label this view gets in the API's request metrics.
METRICS_RESOURCE = f"{SERVICE_IMPORT.resource}/endpoints"


def endpoints_document(service_import: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer: the import's identity, ports, clusters and endpoints."""
    meta = service_import.get("metadata") or {}
    spec = service_import.get("spec") or {}
    status = service_import.get("status") or {}
    endpoints = list(status.get("endpoints") or [])
    return {
        "apiVersion": SERVICE_IMPORT.api_version,
        "kind": "ServiceImportEndpoints",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                     "resourceVersion": meta.get("resourceVersion")},
        "type": spec.get("type", "ClusterSetIP"),
        "ports": list(spec.get("ports") or []),
        "clusters": [c.get("cluster") for c in status.get("clusters") or []],
        "endpoints": endpoints,
        "ready": sum(1 for e in endpoints if e.get("ready")),
    }


async def serviceimport_endpoints(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    started = time.monotonic()
    try:
        target = Target(SERVICE_IMPORT, SERVICE_IMPORT.api_version,
                        request.path_params["namespace"], request.path_params["name"])
        await admit(request, ctx, target)  # a read of the ServiceImport it derives from
        obj = await ctx.registry.get(SERVICE_IMPORT, request.path_params["namespace"],
                                     request.path_params["name"])
        response: Response = JSONResponse(endpoints_document(obj))
    except ApiError as exc:
        response = status_response(
            exc, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
    except Exception:
        log.exception("GET %s failed", request.url.path)
        response = status_response(InternalError(
            f"internal error while handling GET {request.url.path}; see the server log"))
    ctx.metrics.observe("get", METRICS_RESOURCE, response.status_code,
                        time.monotonic() - started)
    return response
