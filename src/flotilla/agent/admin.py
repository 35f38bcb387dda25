"""The agent's own small HTTP endpoint: live views of the member cluster and chaos.

Pods, nodes and logs change every second and are only interesting when somebody looks,
so the agent serves them on demand instead of writing them into the control plane's
store (as a kubelet serves logs, not the API server). The endpoint's URL is published
as the Cluster's ``spec.apiEndpoint``; calls need the agent's own bearer token, which is
the one the operator's CLI holds too in the embedded setup.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flotilla.runtimes.base import Runtime


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"kind": "Status", "code": status, "message": message}, status)


def admin_app(runtime: Runtime, token: str | None) -> Starlette:
    """Routes: GET /healthz, /pods, /nodes, /workloads, /endpoints, /logs/{ns}/{pod};
    POST /nodes/{name}/fail, /nodes/{name}/recover, /pods/{ns}/{pod}/kill."""

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())

    def guarded(handler: Any) -> Any:
        async def wrapper(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "missing or wrong bearer token")
            try:
                result: Response = await handler(request)
                return result
            except KeyError as exc:
                return _error(404, f"not found: {exc}")
            except ValueError as exc:
                return _error(400, str(exc))
        return wrapper

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def pods(_request: Request) -> Response:
        return _json([dataclasses.asdict(p) for p in runtime.pods()])

    async def nodes(_request: Request) -> Response:
        return _json([dataclasses.asdict(n) for n in runtime.nodes()])

    async def workloads(_request: Request) -> Response:
        return _json([dataclasses.asdict(w) for w in runtime.workloads()])

    async def endpoints(_request: Request) -> Response:
        return _json([dataclasses.asdict(e) for e in runtime.endpoints()])

    async def logs(request: Request) -> Response:
        tail = request.query_params.get("tail")
        text = runtime.logs(request.path_params["ns"], request.path_params["pod"],
                            request.query_params.get("container") or None,
                            int(tail) if tail else None)
        return PlainTextResponse(text)

    async def fail_node(request: Request) -> Response:
        await runtime.fail_node(request.path_params["name"])
        return _json({"node": request.path_params["name"], "ready": False})

    async def recover_node(request: Request) -> Response:
        await runtime.recover_node(request.path_params["name"])
        return _json({"node": request.path_params["name"], "ready": True})

    async def kill_pod(request: Request) -> Response:
        await runtime.kill_pod(request.path_params["ns"], request.path_params["pod"])
        return _json({"pod": request.path_params["pod"], "killed": True})

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/pods", guarded(pods)),
        Route("/nodes", guarded(nodes)),
        Route("/workloads", guarded(workloads)),
        Route("/endpoints", guarded(endpoints)),
        Route("/logs/{ns}/{pod}", guarded(logs)),
        Route("/nodes/{name}/fail", guarded(fail_node), methods=["POST"]),
        Route("/nodes/{name}/recover", guarded(recover_node), methods=["POST"]),
        Route("/pods/{ns}/{pod}/kill", guarded(kill_pod), methods=["POST"]),
    ])
