"""The agent's own small HTTP endpoint: live views of the member cluster and chaos.

Pods, nodes and logs change every second and are only interesting when somebody looks,
so the agent serves them on demand instead of writing them into the control plane's
store (as a kubelet serves logs, not the API server). The endpoint's URL is published
as the Cluster's ``spec.apiEndpoint``. A caller is served when it holds the agent's own
token, or when the control plane, asked with the caller's token
(`flotilla.api.access_review`), says it may ``get`` (views) or ``create`` (chaos) the
``clusters/proxy`` of this cluster: the admin, edit and view roles may, an agent of
another cluster may not. Answers are kept for a few seconds per token and verb, so a
``flotilla get pods`` costs the control plane one review, not one per call.

``/metrics`` (`flotilla.agent.metrics`) is open, like the API server's: it holds counts
and latencies, never a name, a log line or a token, and Prometheus needs no credential
of the control plane to scrape every cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from flotilla.agent.metrics import CONTENT_TYPE, AgentMetrics
from flotilla.runtimes.base import Runtime


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status, media_type="application/json")


def _count(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValueError(f"{name}: expected a whole number of lines, got {value!r}")
    return int(value)


def _quiet_since(path: Path, since: str) -> bool:
    """Did the container write nothing in the last ``since`` seconds? Lines carry no
    time (the process writes straight to the file), so the file's mtime decides."""
    try:
        window = float(since)
    except ValueError:
        raise ValueError(f"sinceSeconds: expected seconds, got {since!r}") from None
    if window <= 0:
        raise ValueError(f"sinceSeconds: must be more than 0, got {since!r}")
    return path.stat().st_mtime < time.time() - window


#: How often a followed log file is checked for new bytes, and how much is sent at once.
FOLLOW_INTERVAL = 0.2
_CHUNK = 64 * 1024


async def follow_file(path: Path, tail: int | None, runtime: Runtime, namespace: str,
                      pod: str) -> AsyncIterator[bytes]:
    """The file (its last ``tail`` lines), then what the container appends, until the
    pod is gone or the client hangs up (the response is then cancelled). A container's
    output goes straight from its process to the file, so the file is the only place
    to follow it from; after the first read it is read only at its end, every
    `FOLLOW_INTERVAL`. Local files, read in small pieces: blocking reads are short."""
    with open(path, "rb") as f:  # noqa: ASYNC230 - a local file, read in pieces
        start = f.read()
        if tail is not None:
            lines = start.splitlines(keepends=True)
            start = b"".join(lines[-tail:]) if tail > 0 else b""
        if start:
            yield start
        while True:
            chunk = f.read(_CHUNK)
            if chunk:
                yield chunk
                continue
            if not any(p.namespace == namespace and p.name == pod for p in runtime.pods()):
                return
            await asyncio.sleep(FOLLOW_INTERVAL)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"kind": "Status", "code": status, "message": message}, status)


log = logging.getLogger(__name__)

#: (caller's Authorization header, verb) -> (allowed, reason); the control plane decides.
Review = Callable[[str, str], Awaitable[tuple[bool, str]]]
_REVIEW_TTL = 5.0
_REVIEW_CACHE_MAX = 1024


def admin_app(runtime: Runtime, token: str | None, review: Review | None = None,
              metrics: AgentMetrics | None = None) -> Starlette:
    """Routes: GET /healthz, /metrics, /pods, /nodes, /workloads, /endpoints,
    /logs/{ns}/{pod} (``?container=&tail=&follow=1``: streamed as the pod writes);
    POST /nodes/{name}/fail, /nodes/{name}/recover, /pods/{ns}/{pod}/kill."""
    decided: dict[tuple[str, str], tuple[float, bool, str]] = {}

    async def authorized(request: Request) -> tuple[bool, str]:
        if token is None:
            return True, ""
        header = request.headers.get("authorization", "")
        if not header:
            return False, "missing bearer token"
        if hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
            return True, ""
        if review is None:
            return False, "wrong bearer token"
        verb = "get" if request.method in ("GET", "HEAD") else "create"
        key = (hashlib.sha256(header.encode()).hexdigest(), verb)
        now = time.monotonic()
        hit = decided.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        try:
            allowed, reason = await review(header, verb)
        except Exception as exc:
            log.warning("cannot ask the control plane about a caller: %s", exc)
            return False, f"the control plane could not be asked: {exc}"
        if len(decided) >= _REVIEW_CACHE_MAX:
            decided.clear()
        decided[key] = (now + _REVIEW_TTL, allowed, reason)
        return allowed, reason

    def guarded(handler: Any) -> Any:
        async def wrapper(request: Request) -> Response:
            allowed, reason = await authorized(request)
            if not allowed:
                return _error(403 if request.headers.get("authorization") else 401,
                              reason or "not allowed")
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

    async def metrics_page(_request: Request) -> Response:
        # Open like the API server's /metrics: counts by phase and latencies, no names.
        if metrics is None:
            return _error(404, "this agent exports no metrics")
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def pods(_request: Request) -> Response:
        return _json([dataclasses.asdict(p) for p in runtime.pods()])

    async def nodes(_request: Request) -> Response:
        return _json([dataclasses.asdict(n) for n in runtime.nodes()])

    async def workloads(_request: Request) -> Response:
        return _json([dataclasses.asdict(w) for w in runtime.workloads()])

    async def endpoints(_request: Request) -> Response:
        return _json([dataclasses.asdict(e) for e in runtime.endpoints()])

    async def logs(request: Request) -> Response:
        ns, pod = request.path_params["ns"], request.path_params["pod"]
        container = request.query_params.get("container") or None
        tail = _count(request.query_params.get("tail"), "tail")
        since = request.query_params.get("sinceSeconds")
        path = runtime.log_path(ns, pod, container)  # KeyError: 404 now, not mid-stream
        if since is not None and _quiet_since(path, since):
            tail = 0  # nothing written in the window: only what comes next
        if request.query_params.get("follow") in ("1", "true"):
            return StreamingResponse(follow_file(path, tail, runtime, ns, pod),
                                     media_type="text/plain")
        return PlainTextResponse(runtime.logs(ns, pod, container, tail))

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
        Route("/metrics", metrics_page),
        Route("/pods", guarded(pods)),
        Route("/nodes", guarded(nodes)),
        Route("/workloads", guarded(workloads)),
        Route("/endpoints", guarded(endpoints)),
        Route("/logs/{ns}/{pod}", guarded(logs)),
        Route("/nodes/{name}/fail", guarded(fail_node), methods=["POST"]),
        Route("/nodes/{name}/recover", guarded(recover_node), methods=["POST"]),
        Route("/pods/{ns}/{pod}/kill", guarded(kill_pod), methods=["POST"]),
    ])
