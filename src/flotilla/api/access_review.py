"""``SelfSubjectAccessReview``: "may I do this?", asked with the caller's own token.

An agent's endpoint (pods, logs, chaos) has no user database of its own: it forwards
the caller's bearer token here, as a kubelet asks the API server with a
SubjectAccessReview, and serves the caller only if the answer is yes. Same shape as
``authorization.k8s.io/v1``; answered by the same `flotilla.api.authz.Authorizer` as
every other request, never stored and not audited (it changes nothing).

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
    {"spec": {"resourceAttributes": {"verb": "get", "group": "cluster.flotilla.io",
              "resource": "clusters", "subresource": "proxy", "name": "east-1"}}}
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flotilla.api.authz import Attributes
from flotilla.api.body import decode_object, read_body
from flotilla.api.errors import BadRequestError, ForbiddenError, status_response
from flotilla.api.gate import authenticate
from flotilla.api.routes import ApiContext
from flotilla.client.base import ApiError

PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def _attributes(body: dict[str, Any]) -> Attributes:
    spec = body.get("spec")
    ra = spec.get("resourceAttributes") if isinstance(spec, dict) else None
    if not isinstance(ra, dict) or not ra.get("verb") or not ra.get("resource"):
        raise BadRequestError("spec.resourceAttributes needs at least verb and resource")
    resource = str(ra["resource"]) + (f"/{ra['subresource']}" if ra.get("subresource") else "")
    return Attributes(verb=str(ra["verb"]), api_group=str(ra.get("group") or ""),
                      resource=resource, namespace=str(ra.get("namespace") or ""),
                      name=str(ra.get("name") or ""))


async def self_subject_access_review(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    try:
        principal = authenticate(request, ctx)
        body = decode_object(await read_body(request, ctx.max_body_bytes),
                             request.headers.get("content-type"))
        attrs = _attributes(body)
        try:
            await ctx.authorizer.authorize(principal, attrs)
            allowed, reason = True, ""
        except ForbiddenError as exc:
            allowed, reason = False, exc.message
        return JSONResponse({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": body.get("spec"),
            "status": {"allowed": allowed, "reason": reason, "user": principal.name},
        }, status_code=201)
    except ApiError as exc:
        return status_response(exc, {"WWW-Authenticate": "Bearer"} if exc.status == 401
                               else None)
