"""The live dashboard's door in the API server: its static page under ``/ui/`` and the
three views the browser cannot compute or reach by itself.

The page (`flotilla.dashboard`) is public, like any login page: it holds no data and no
secret. Everything it shows comes from authenticated calls: the resource paths and their
``?watch=true`` streams (the same as ``kubectl`` uses), plus, under ``/ui/api/``:

* ``whatif?fail=C``: `flotilla.scheduler.whatif` run here over the caller's readable
  objects (the CLI runs the same function client-side; a browser has no scheduler);
* ``members/{cluster}/pods|nodes|logs/{ns}/{pod}``: the member agent's live views, asked
  with the caller's own bearer token (the agent checks it, as for ``flotilla logs``). The
  browser cannot ask the agent itself: the agent's TLS is signed by the platform CA the
  browser does not trust, and the page's CSP allows only its own origin;
* ``traffic``: the gateway's request and error counters per (service, cluster), scraped
  from ``$FLOTILLA_GATEWAY_METRICS`` (what `flotilla up` gives the server for the rollout
  gates); ``{"available": false}`` when it is unset or unreachable, shown as "n/a".

The CSP is strict (``script-src 'self'``, nothing inline, ``connect-src 'self'``), the
page is never framed, and the token never reaches the server in a URL: the page reads it
from the fragment, keeps it in ``sessionStorage`` and sends it as a bearer header.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from flotilla import dashboard
from flotilla.api.errors import BadRequestError, UnavailableError, status_response
from flotilla.api.gate import admit, audit, authenticate
from flotilla.api.paths import parse_path
from flotilla.client.base import ApiError, NotFoundError
from flotilla.client.http import verify_for
from flotilla.controllers.rollout.controller import METRICS_ENV
from flotilla.controllers.rollout.gates import scrape
from flotilla.pki import PkiLayout
from flotilla.resources.kinds import by_kind
from flotilla.scheduler.whatif import Report, what_if

if TYPE_CHECKING:  # an import cycle at run time: routes imports gate, gate imports us
    from flotilla.api.routes import ApiContext

#: Sent with every /ui/ response. No inline script or style, no other origin, no frames.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".svg": "image/svg+xml"}
#: The agent's answer for a log tail or a listing: a paused cluster must not stall a page.
_AGENT_TIMEOUT = 3.0
#: Longest log tail a page may ask for.
MAX_TAIL = 5000


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def _static(request: Request) -> Response:
    name = request.path_params.get("name") or "index.html"
    files = dashboard.files()
    if name not in files:
        return PlainTextResponse(f"no such dashboard file: {name}", 404, headers=HEADERS)
    path = files[name]
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                        headers=HEADERS)


async def _guarded(request: Request, reads: tuple[str | tuple[str, str], ...],
                   work: Any) -> Response:
    """Authenticate, check the caller may ``get``/``list`` every path in ``reads`` (a
    ``(path, subresource)`` pair names a subresource), run ``work``; errors as a JSON
    Status, like every API path."""
    ctx = _ctx(request)
    code, message = 200, ""
    try:
        authenticate(request, ctx)
        for read in reads:
            path, sub = (read, None) if isinstance(read, str) else read
            await admit(request, ctx, parse_path(path), subresource=sub)
        response: Response = await work(ctx)
    except ApiError as exc:
        code, message = exc.status, exc.message
        response = status_response(
            exc, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
    code = response.status_code if code == 200 else code
    audit(request, ctx, code, message)
    return response


_CLUSTERS = "/apis/cluster.flotilla.io/v1alpha1/clusters"


def _report_json(report: Report) -> dict[str, Any]:
    return {
        "failed": list(report.failed),
        "workloads": [{"binding": w.binding, "resource": w.resource, "desired": w.desired,
                       "before": dict(w.before), "after": dict(w.after),
                       "unplaced": w.unplaced, "problem": w.problem,
                       "reasons": dict(w.reasons)} for w in report.workloads],
        "traffic": [{"policy": t.policy, "service": t.service,
                     "endpointsBefore": t.endpoints_before, "endpointsLeft": t.endpoints_left,
                     "rebuiltOn": list(t.rebuilt_on), "losesAll": t.loses_all}
                    for t in report.traffic],
    }


async def _whatif(request: Request) -> Response:
    failed = [f for f in request.query_params.getlist("fail") if f]
    reads = (_CLUSTERS, "/apis/work.flotilla.io/v1alpha1/resourcebindings",
             "/apis/traffic.flotilla.io/v1alpha1/trafficpolicies",
             "/apis/discovery.flotilla.io/v1alpha1/endpointslices")

    async def work(ctx: ApiContext) -> Response:
        if not failed:
            raise BadRequestError("name at least one cluster to fail: ?fail=NAME (repeatable)")
        listed = {k: (await ctx.registry.list(by_kind(k), None)).items
                  for k in ("Cluster", "ResourceBinding", "TrafficPolicy", "EndpointSlice")}
        names = {c["metadata"]["name"] for c in listed["Cluster"]}
        unknown = sorted(set(failed) - names)
        if unknown:
            raise BadRequestError(f"no such cluster: {', '.join(unknown)} "
                                  f"(clusters: {', '.join(sorted(names)) or 'none'})")
        report = what_if(failed, listed["Cluster"], listed["ResourceBinding"],
                         listed["TrafficPolicy"], listed["EndpointSlice"])
        return JSONResponse(_report_json(report))

    return await _guarded(request, reads, work)


def _ca(ctx: ApiContext) -> Path | None:
    """The platform CA the agents' endpoints are signed by: the one in this server's data
    dir (found through its audit log), else ``$FLOTILLA_CA_FILE``/the system's roots."""
    if ctx.audit is None:
        return None
    ca = PkiLayout(ctx.audit.path.parent).ca_cert
    return ca if ca.exists() else None


async def _member(request: Request) -> Response:
    cluster = request.path_params["cluster"]
    view = request.path_params["view"]
    # The agents' live views are the ``clusters/proxy`` subresource in RBAC (the roles
    # that may use them: flotilla.api.authz.builtin); the agent checks the token again.
    reads = ((f"{_CLUSTERS}/{cluster}", "proxy"),)
    if view in ("pods", "nodes"):
        agent_path, params = f"/{view}", {}
    elif view.startswith("logs/") and view.count("/") == 2:
        _, namespace, pod = view.split("/")
        agent_path = f"/logs/{namespace}/{pod}"
        params = {k: v for k in ("container", "tail")
                  if (v := request.query_params.get(k, ""))}
    else:
        return status_response(NotFoundError(
            f"no dashboard view {view!r}; use pods, nodes or logs/NAMESPACE/POD"))

    async def work(ctx: ApiContext) -> Response:
        tail = params.get("tail", "")
        if tail and (not tail.isdigit() or int(tail) > MAX_TAIL):
            raise BadRequestError(f"tail must be an integer from 0 to {MAX_TAIL}, got {tail!r}")
        obj = await ctx.registry.get(by_kind("Cluster"), "", cluster)
        endpoint = str((obj.get("spec") or {}).get("apiEndpoint") or "")
        if not endpoint:
            raise UnavailableError(f"cluster {cluster} publishes no agent endpoint "
                                   "(spec.apiEndpoint); is its agent running?")
        headers = {"Authorization": request.headers.get("authorization", "")}
        try:
            async with httpx.AsyncClient(timeout=_AGENT_TIMEOUT,
                                         verify=verify_for(endpoint, _ca(ctx))) as client:
                r = await client.get(endpoint.rstrip("/") + agent_path, params=params,
                                     headers=headers)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"the agent of cluster {cluster} at {endpoint} did not "
                                   f"answer: {exc or type(exc).__name__}") from None
        media = r.headers.get("content-type", "text/plain")
        return Response(r.content, status_code=r.status_code, media_type=media)

    return await _guarded(request, reads, work)


async def _traffic(request: Request) -> Response:
    async def work(ctx: ApiContext) -> Response:
        urls = [u for u in os.environ.get(METRICS_ENV, "").split(",") if u.strip()]
        if not urls:
            return JSONResponse({"available": False,
                                 "reason": f"this server has no {METRICS_ENV}"})
        try:
            snapshot = await scrape(urls)
        except (httpx.HTTPError, ValueError) as exc:
            return JSONResponse({"available": False,
                                 "reason": f"gateway metrics unreachable: {exc}"})
        rows = []
        for key, row in sorted(snapshot.items()):
            service, _, cluster = key.partition("|")
            rows.append({"service": service, "cluster": cluster,
                         "requests": row.get("requests", 0.0),
                         "errors": row.get("errors", 0.0)})
        return JSONResponse({"available": True, "rows": rows})

    return await _guarded(request, (_CLUSTERS,), work)


def routes() -> list[BaseRoute]:
    """What `flotilla.api.app` mounts at ``/ui``."""
    return [
        Route("/", _static, methods=["GET"]),
        Route("/api/whatif", _whatif, methods=["GET"]),
        Route("/api/traffic", _traffic, methods=["GET"]),
        Route("/api/members/{cluster}/{view:path}", _member, methods=["GET"]),
        Route("/{name}", _static, methods=["GET"]),
    ]
