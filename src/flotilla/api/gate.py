"""The one door of the API: who is calling (authentication), whether they are within
their share of the server (`flotilla.api.fairness`), what they ask (the RBAC attributes
of the request) and whether they may (`flotilla.api.authz`).

Every resource request and every view derived from resources passes `admit` before any
handler runs; `audit` records the outcome afterwards. Keeping both here means a new
route cannot forget either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from flotilla.api.audit import AuditEntry, now_iso, should_record
from flotilla.api.auth import Principal
from flotilla.api.authz import Attributes
from flotilla.api.body import decode_object, decode_patch, read_body
from flotilla.api.errors import UnauthorizedError
from flotilla.api.paths import Target, parse_path
from flotilla.client.base import ApiError

if TYPE_CHECKING:
    from flotilla.api.routes import ApiContext

Object = dict[str, Any]
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def authenticate(request: Request, ctx: ApiContext) -> Principal:
    """The caller, charged one request against its buckets: 401 or 429 otherwise.

    The rate check comes right after the token and before the body is read or RBAC
    runs, so a refused request costs the server as little as it can."""
    principal, why = ctx.auth.check(request.headers.get("authorization"))
    if principal is None:
        raise UnauthorizedError(f"Unauthorized: {why}; send Authorization: Bearer <token>")
    request.state.principal = principal
    ctx.fairness.admit(principal)
    return principal


def still_valid(request: Request, ctx: ApiContext) -> None:
    """Raise the 401 that ends a long-lived request (a watch) whose token was revoked,
    replaced or expired since it was admitted: the same check as at the door."""
    admitted: Principal | None = getattr(request.state, "principal", None)
    principal, why = ctx.auth.check(request.headers.get("authorization"))
    if principal is None or principal != admitted:
        raise UnauthorizedError(f"Unauthorized: {why or 'the token changed'}; the watch "
                                "ended: get a valid token and watch again")


def rbac_verb(method: str, target: Target, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if target.name is None:
            return "watch" if watch else "list"
        return "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())


def attributes_of(request: Request, target: Target, watch: bool,
                  body: Object | None = None, *, subresource: str | None = None) -> Attributes:
    group = target.api_version.rpartition("/")[0]
    sub = subresource or target.subresource
    name = target.name or ""
    if not name and body is not None:  # create: the name is in the object
        meta = body.get("metadata")
        name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
    return Attributes(
        verb=rbac_verb(request.method, target, watch),
        api_group=group,
        resource=target.kind.plural + (f"/{sub}" if sub else ""),
        namespace=target.namespace or "",
        name=name,
        kind=target.kind,
        all_namespaces=target.namespace is None,
        selector=request.query_params.get("labelSelector", ""),
    )


async def admit(request: Request, ctx: ApiContext, target: Target, *, watch: bool = False,
                verb: str | None = None, subresource: str | None = None) -> Attributes:
    """Authenticate and authorize one request, or raise the 401/403 to answer.

    A write's body is read (under the size limit) and decoded here, once: the agent
    restriction looks inside the object, and the handler reuses what was read.
    """
    request.state.attrs = attributes_of(request, target, watch, subresource=subresource)
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = authenticate(request, ctx)
    body: Object | None = None
    if request.method in ("POST", "PUT"):
        body = decode_object(await read_body(request, ctx.max_body_bytes),
                             request.headers.get("content-type"))
        request.state.body_obj = body
    elif request.method == "PATCH":  # a patch, not an object: the authorizer sees None
        request.state.body_obj = decode_patch(await read_body(request, ctx.max_body_bytes),
                                              request.headers.get("content-type"))
    attrs = attributes_of(request, target, watch, body, subresource=subresource)
    if verb is not None:
        attrs = Attributes(verb, attrs.api_group, attrs.resource, attrs.namespace, attrs.name,
                           attrs.kind, attrs.all_namespaces, attrs.selector)
    request.state.attrs = attrs
    await ctx.authorizer.authorize(principal, attrs, body)
    return attrs


def audit(request: Request, ctx: ApiContext, code: int, message: str = "") -> None:
    """Record the request if it is a write or was refused (`should_record`)."""
    if ctx.audit is None:
        return
    attrs: Attributes | None = getattr(request.state, "attrs", None)
    if attrs is None:  # refused before the path was read (401): read it for the record
        try:
            attrs = attributes_of(request, parse_path(request.url.path),
                                  request.query_params.get("watch", "") in ("1", "true"))
        except ApiError:
            attrs = None
    if attrs is not None:
        verb = attrs.verb
    else:
        verb = "write" if request.method in _WRITE_METHODS else "get"
    if not should_record(verb, code):
        return
    principal: Principal | None = getattr(request.state, "principal", None)
    client = request.client
    ctx.audit.record(AuditEntry(
        time=now_iso(),
        user=principal.name if principal is not None else "system:anonymous",
        verb=verb,
        resource=attrs.resource if attrs is not None else request.url.path,
        namespace=attrs.namespace if attrs is not None else "",
        name=attrs.name if attrs is not None else "",
        code=code,
        source=f"{client.host}:{client.port}" if client is not None else "",
        message=message[:500],
    ))
