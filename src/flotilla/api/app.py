"""The Starlette application: auth, error mapping and metrics around the handlers.

Every resource request passes through `_api`, which is the one place that turns any
failure into a JSON ``Status``: `ApiError` keeps its code, anything else is logged and
answered 500, so a handler bug costs one request, never the server.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from flotilla.api.access_review import PATH as REVIEW_PATH
from flotilla.api.access_review import self_subject_access_review
from flotilla.api.body import discard_body
from flotilla.api.discovery import ENDPOINTS_PATH, serviceimport_endpoints
from flotilla.api.errors import (
    InternalError,
    MethodNotAllowedError,
    status_response,
)
from flotilla.api.gate import admit, audit, authenticate
from flotilla.api.kube import discovery as kube_discovery
from flotilla.api.metrics import CONTENT_TYPE
from flotilla.api.openapi import group_version_document, openapi_document, openapi_v3_index
from flotilla.api.paths import parse_path
from flotilla.api.routes import ApiContext, handle, is_watch, verb_of
from flotilla.api.ui import routes as ui_routes
from flotilla.client.base import ApiError, NotFoundError

log = logging.getLogger(__name__)

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
#: How much of a rejected (413) body is read and dropped so the client sees the answer.
_DRAIN_FACTOR = 8


async def _api(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    started = time.monotonic()
    verb, resource = request.method.lower(), "unknown"
    message = ""
    try:
        authenticate(request, ctx)  # 401 before 404: paths are not probed anonymously
        doc = kube_discovery.document(request.url.path)
        if doc is not None and request.method in ("GET", "HEAD"):
            verb, resource = "get", "discovery"  # any authenticated caller may read it
            response: Response = JSONResponse(doc)
        else:
            target = parse_path(request.url.path)
            resource = target.resource
            verb = verb_of(request.method, target, is_watch(request))
            await admit(request, ctx, target, watch=is_watch(request))
            response = await handle(request, target, ctx)
    except ApiError as exc:
        message = exc.message
        response = status_response(
            exc, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        )
        if exc.status == 413:
            await discard_body(request, ctx.max_body_bytes * _DRAIN_FACTOR)
    except Exception:
        log.exception("%s %s failed", request.method, request.url.path)
        response = status_response(InternalError(
            f"internal error while handling {request.method} {request.url.path}; "
            "see the server log"
        ))
    ctx.metrics.observe(verb, resource, response.status_code, time.monotonic() - started)
    audit(request, ctx, response.status_code, message)
    return response


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _readyz(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    try:
        revision = await ctx.registry.ready()
    except Exception as exc:
        return PlainTextResponse(f"not ready: {exc}", status_code=503)
    return PlainTextResponse(f"ok (revision {revision})")


async def _metrics(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    try:
        ctx.metrics.store_revision.set(await ctx.registry.ready())
    except Exception:
        log.warning("store revision unavailable for /metrics", exc_info=True)
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


async def _version(request: Request) -> Response:
    """``/version`` answers anyone, as Kubernetes does: it names only API levels."""
    return JSONResponse(kube_discovery.version_info())


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def _openapi_v3_index(request: Request) -> Response:
    return JSONResponse(openapi_v3_index())


async def _openapi_v3_document(request: Request) -> Response:
    doc = group_version_document(request.path_params["gv"])
    if doc is None:
        return status_response(NotFoundError(
            f"no OpenAPI document for {request.path_params['gv']!r}; /openapi/v3 lists "
            "them"))
    return JSONResponse(doc, headers={"Cache-Control": "public, max-age=86400"}
                        if request.query_params.get("hash") else None)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (paths outside /api and /apis) as JSON Status too."""
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    err: ApiError
    if code == 404:
        err = NotFoundError(f"the server could not find the requested resource {request.url.path}")
    elif code == 405:
        err = MethodNotAllowedError(f"{request.method} is not allowed on {request.url.path}")
    else:
        err = ApiError(code, "InternalError" if code >= 500 else "BadRequest", str(exc))
    return status_response(err)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return status_response(InternalError("internal error; see the server log"))


def create_app(ctx: ApiContext) -> Starlette:
    routes = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/openapi/v3", _openapi_v3_index, methods=["GET"]),
        Route("/openapi/v3/{gv:path}", _openapi_v3_document, methods=["GET"]),
        Route(ENDPOINTS_PATH, serviceimport_endpoints, methods=["GET"]),
        Route(REVIEW_PATH, self_subject_access_review, methods=["POST"]),
        Route("/version", _version, methods=["GET"]),
        # Exact paths too: kubectl's discovery reads /api and /apis and follows no
        # redirect to /api/ (Starlette's default for a path-only route).
        Route("/api", _api, methods=_METHODS),
        Route("/apis", _api, methods=_METHODS),
        Route("/api/{rest:path}", _api, methods=_METHODS),
        Route("/apis/{rest:path}", _api, methods=_METHODS),
        Mount("/ui", routes=ui_routes()),  # the dashboard: flotilla.api.ui
    ]
    handlers: dict[Any, Any] = {
        HTTPException: _http_exception,
        Exception: _server_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.ctx = ctx
    return app
