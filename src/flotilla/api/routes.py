"""Handlers of the resource paths: one function per Kubernetes verb, all thin over
the `Registry`, which holds the semantics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from flotilla.api import writes
from flotilla.api.audit import AuditLog
from flotilla.api.auth import Authenticator
from flotilla.api.authz import Authorizer
from flotilla.api.body import decode_object, read_body
from flotilla.api.errors import BadRequestError, InternalError, MethodNotAllowedError
from flotilla.api.fairness import Fairness, WatchTicket
from flotilla.api.gate import still_valid
from flotilla.api.kube import table as tables
from flotilla.api.kube.fields import FieldSelector, parse_field_selector
from flotilla.api.metrics import ApiMetrics
from flotilla.api.paths import Target
from flotilla.api.registry import Registry
from flotilla.api.scale import scale
from flotilla.api.watch import bounded
from flotilla.client.base import ApiError, ConflictError, NotFoundError
from flotilla.resources import columns
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.labels import SelectorError, parse_selector

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiContext:
    """Everything a request handler needs; built once per server."""

    registry: Registry
    auth: Authenticator
    metrics: ApiMetrics
    max_body_bytes: int
    #: Seconds between BOOKMARK events on an idle watch.
    bookmark_interval: float = 5.0
    #: None: the audit trail is off (in-process tests without a data dir).
    audit: AuditLog | None = None
    #: Rate limits and watch caps per identity (`flotilla.api.fairness`).
    fairness: Fairness = field(default_factory=Fairness)
    authorizer: Authorizer = field(init=False)

    def __post_init__(self) -> None:
        self.authorizer = Authorizer(self._list_kind, self._fetch)

    async def _list_kind(self, kind: str) -> list[dict[str, Any]]:
        return (await self.registry.list(by_kind(kind), None)).items

    async def _fetch(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.registry.get(by_kind(kind), namespace, name)
        except NotFoundError:
            return None

    async def list_all(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """A `columns.Lister` over the registry, for the columns that count other
        objects (a Cluster's WORKLOADS)."""
        return (await self.registry.list(kind, namespace)).items


def verb_of(method: str, target: Target, watch: bool) -> str:
    """The Kubernetes verb, as metrics and (later) authorization name requests."""
    if target.name is None:
        if method in ("GET", "HEAD"):
            return "watch" if watch else "list"
        return "create" if method == "POST" else method.lower()
    if method in ("GET", "HEAD"):
        return "get"
    if method == "PUT":
        return "update" if target.subresource is None else "update_status"
    return "delete" if method == "DELETE" else method.lower()


def is_watch(request: Request) -> bool:
    return request.query_params.get("watch", "").lower() in ("1", "true")


async def handle(request: Request, target: Target, ctx: ApiContext) -> Response:
    method = request.method
    if target.name is None:
        if method in ("GET", "HEAD"):
            return await (_watch(request, target, ctx) if is_watch(request)
                          else _list(request, target, ctx))
        if method == "POST":
            return await _create(request, target, ctx)
        raise MethodNotAllowedError(
            f"{method} is not allowed on a collection; use GET (list, watch) or POST (create)"
        )
    if target.subresource == "scale":
        return await scale(request, target, ctx, stamp_author)
    if method in ("GET", "HEAD"):
        obj = await ctx.registry.get(target.kind, target.namespace or "", target.name)
        as_table = _as_table(request)
        if as_table is not None:
            return JSONResponse(await _table(ctx, target.kind, [obj], as_table, {
                "resourceVersion": obj["metadata"].get("resourceVersion", "")}))
        return JSONResponse(obj)
    if method == "PUT":
        return await _update(request, target, ctx)
    if method == "PATCH":
        return await writes.patch(request, target, ctx, stamp_author)
    if method == "DELETE":
        return await _delete(request, target, ctx)
    raise MethodNotAllowedError(
        f"{method} is not allowed on an object; use GET, PUT, PATCH or DELETE"
    )


def _int_param(request: Request, name: str) -> int:
    value = request.query_params.get(name, "0") or "0"
    if not value.isdigit():
        raise BadRequestError(f"query parameter {name} must be a non-negative integer")
    return int(value)


@dataclass(frozen=True, slots=True)
class TableRequest:
    """A request for Table output: its apiVersion and what each row carries."""

    api_version: str
    include: str


def _as_table(request: Request) -> TableRequest | None:
    version = tables.table_version(request.headers.get("accept"))
    if version is None:
        return None
    return TableRequest(version, tables.include_object(request.query_params.get("includeObject")))


async def _table(ctx: ApiContext, kind: Kind, objects: list[dict[str, Any]],
                 as_table: TableRequest, metadata: dict[str, Any]) -> dict[str, Any]:
    enriched = await columns.enrich(kind.kind, ctx.list_all, objects)
    return tables.table(kind, enriched, api_version=as_table.api_version,
                        include=as_table.include, metadata=metadata)


def _field_selector(request: Request, target: Target) -> FieldSelector:
    return parse_field_selector(request.query_params.get("fieldSelector"), target.kind)


async def _list(request: Request, target: Target, ctx: ApiContext) -> Response:
    q = request.query_params
    fields = _field_selector(request, target)
    as_table = _as_table(request)
    result = await ctx.registry.list(
        target.kind,
        target.namespace or None,
        selector=q.get("labelSelector"),
        limit=_int_param(request, "limit"),
        continue_token=q.get("continue") or None,
    )
    metadata: dict[str, Any] = {"resourceVersion": result.resource_version}
    if result.continue_token:
        metadata["continue"] = result.continue_token
    items = fields.filter(result.items) if fields else result.items
    if as_table is not None:
        return JSONResponse(await _table(ctx, target.kind, items, as_table, metadata))
    return JSONResponse({
        "apiVersion": target.api_version,
        "kind": f"{target.kind.kind}List",
        "metadata": metadata,
        "items": items,
    })


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """What a ``?watch=1`` asked for, checked before the stream opens (errors are 400s)."""

    resource_version: str | None
    selector: str | None
    fields: FieldSelector
    as_table: TableRequest | None
    #: Seconds between BOOKMARKs; None unless ``allowWatchBookmarks=true``.
    bookmark_interval: float | None
    #: ``timeoutSeconds``: the client's own bound (the server's watch timeout caps it).
    timeout: float | None


def _watch_request(request: Request, target: Target, ctx: ApiContext) -> WatchRequest:
    q = request.query_params
    selector = q.get("labelSelector")
    try:
        parse_selector(selector)
    except SelectorError as exc:
        raise BadRequestError(f"labelSelector: {exc}") from None
    rv = q.get("resourceVersion") or None
    if rv is not None and not rv.isdigit():
        raise BadRequestError(f"resourceVersion must be a non-negative integer, got {rv!r}")
    bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
    timeout = _int_param(request, "timeoutSeconds") if q.get("timeoutSeconds") else None
    return WatchRequest(rv, selector, _field_selector(request, target), _as_table(request),
                        ctx.bookmark_interval if bookmarks else None,
                        float(timeout) if timeout else None)


async def _watch(request: Request, target: Target, ctx: ApiContext) -> Response:
    """``?watch=1``: newline-delimited JSON events, Kubernetes style.

    Without a resourceVersion the stream starts with an ADDED event per existing object,
    like ``kubectl get -w``. Unlike Kubernetes, ``resourceVersion=0`` means "from
    revision 0" (replay the whole kept history), so a client that listed an empty store
    (list resourceVersion "0") and then watches from there misses nothing. Errors after
    the stream opened (410 when the revision is compacted) arrive as an ERROR event
    carrying a Status, then the stream ends.

    BOOKMARKs (`flotilla.api.watch`) only with ``allowWatchBookmarks=true``, as in
    Kubernetes: kubectl does not ask for them, and would print them as rows.
    ``fieldSelector`` and ``labelSelector`` filter the events; with a Table Accept
    header each event carries a one-row Table (`flotilla.api.kube.table`).

    Each watch takes a slot of its caller's cap (429 beyond it) and ends cleanly at a
    server-chosen time (`flotilla.api.fairness`), or sooner at ``timeoutSeconds``, or
    with a 401 ERROR event once its token is revoked or expired; clients resume from
    their last resourceVersion.
    """
    wanted = _watch_request(request, target, ctx)
    ticket = ctx.fairness.open_watch(request.state.principal)
    try:
        return _WatchResponse(_stream(request, target, ctx, wanted, ticket), ticket)
    except BaseException:
        ticket.release()
        raise


def _stream(request: Request, target: Target, ctx: ApiContext, wanted: WatchRequest,
            ticket: WatchTicket) -> AsyncIterator[bytes]:
    namespace = target.namespace or None
    registry = ctx.registry
    selector, fields, as_table = wanted.selector, wanted.fields, wanted.as_table
    deadline = ticket.deadline if wanted.timeout is None \
        else min(ticket.deadline, time.monotonic() + wanted.timeout)
    # Parse errors (a malformed resourceVersion) answer 400 before the stream opens.
    events = None if wanted.resource_version is None else registry.watch(
        target.kind, namespace, resource_version=wanted.resource_version,
        selector=selector, bookmark_interval=wanted.bookmark_interval,
    )

    async def line(event_type: str, obj: dict[str, Any]) -> bytes | None:
        if event_type == "BOOKMARK":
            if as_table is None:
                return _line(event_type, obj)
            rv = str(obj["metadata"]["resourceVersion"])
            return _line(event_type, tables.bookmark_table(as_table.api_version, rv))
        if fields and not fields.matches(obj):
            return None
        if as_table is not None:
            obj = await _table(ctx, target.kind, [obj], as_table, {
                "resourceVersion": str(obj["metadata"].get("resourceVersion", ""))})
        return _line(event_type, obj)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal events
        ctx.metrics.open_watches.inc()
        try:
            if events is None:
                listing = await registry.list(target.kind, namespace, selector=selector)
                for item in listing.items:
                    out = await line("ADDED", item)
                    if out is not None:
                        yield out
                events = registry.watch(
                    target.kind, namespace, resource_version=listing.resource_version,
                    selector=selector, bookmark_interval=wanted.bookmark_interval,
                )
            async for event in bounded(events, deadline=deadline,
                                       check=lambda: still_valid(request, ctx),
                                       every=ctx.fairness.config.watch_recheck):
                out = await line(event.type, event.object)
                if out is not None:
                    yield out
        except ApiError as exc:
            yield _line("ERROR", exc.to_status())
        except Exception:
            log.exception("watch of %s failed", target.resource)
            yield _line("ERROR", InternalError("watch failed").to_status())
        finally:
            ctx.metrics.open_watches.dec()
            ticket.release()

    return stream()


class _WatchResponse(StreamingResponse):
    """A watch stream that gives its slot back however the response ends: the stream's
    own ``finally`` does not run when the client leaves before it started."""

    def __init__(self, body: AsyncIterator[bytes], ticket: WatchTicket) -> None:
        super().__init__(body, media_type="application/json")
        self._on_close: Callable[[], None] = ticket.release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _body(request: Request, target: Target, ctx: ApiContext) -> dict[str, Any]:
    """The request object, checked against the path it was sent to."""
    obj = getattr(request.state, "body_obj", None)
    if obj is None:
        obj = decode_object(await read_body(request, ctx.max_body_bytes),
                            request.headers.get("content-type"))
    if "kind" not in obj and "apiVersion" not in obj:  # as Kubernetes: from the path
        obj = {"apiVersion": target.api_version, "kind": target.kind.kind, **obj}
    kind = Registry.kind_of(obj)
    if kind is not target.kind:
        raise BadRequestError(
            f"the object's kind {obj['kind']!r} does not match the path, which serves "
            f"{target.kind.kind}"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequestError("metadata must be a mapping")
    if target.kind.namespaced and target.namespace:
        ns = meta.get("namespace")
        if ns and ns != target.namespace:
            raise BadRequestError(
                f"metadata.namespace {ns!r} does not match the namespace of the path "
                f"{target.namespace!r}"
            )
        meta["namespace"] = target.namespace
    if target.name is not None:
        name = meta.get("name")
        if name and name != target.name:
            raise BadRequestError(
                f"metadata.name {name!r} does not match the name in the path {target.name!r}"
            )
        meta["name"] = target.name
    return obj


#: Who last wrote an object through the API: the authenticated token's name (each
#: component has its own: ``agent-east-1``, ``gateway``, an operator's token name), set
#: by the server (a client cannot choose it). Revision history shows it.
CHANGED_BY = "flotilla.io/changed-by"


def stamp_author(obj: dict[str, Any], request: Request) -> dict[str, Any]:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        meta = obj.setdefault("metadata", {})
        annotations = meta.get("annotations")
        meta["annotations"] = {**(annotations if isinstance(annotations, dict) else {}),
                               CHANGED_BY: str(principal.name)}
    return obj


async def _create(request: Request, target: Target, ctx: ApiContext) -> Response:
    if target.kind.namespaced and not target.namespace:
        raise MethodNotAllowedError(
            f"create {target.kind.kind} objects under namespaces/{{ns}}/{target.kind.plural}"
        )
    obj = stamp_author(await _body(request, target, ctx), request)
    warnings = writes.check_fields(obj, target.kind, writes.validation_mode(request))
    created = await ctx.registry.create(
        obj, dry_run=writes.dry_run(request),
        before_write=writes.recorder(writes.field_manager(request), target.api_version))
    return writes.with_warnings(JSONResponse(created, status_code=201), warnings)


async def _update(request: Request, target: Target, ctx: ApiContext) -> Response:
    obj = await _body(request, target, ctx)
    warnings = writes.check_fields(obj, target.kind, writes.validation_mode(request))
    if target.subresource == "status":
        return writes.with_warnings(JSONResponse(await ctx.registry.update_status(obj)),
                                    warnings)
    updated = await ctx.registry.update(
        stamp_author(obj, request), dry_run=writes.dry_run(request),
        before_write=writes.recorder(writes.field_manager(request), target.api_version))
    return writes.with_warnings(JSONResponse(updated), warnings)


async def _delete(request: Request, target: Target, ctx: ApiContext) -> Response:
    """DELETE; a precondition comes from ``?resourceVersion=`` or a DeleteOptions body."""
    rv = request.query_params.get("resourceVersion") or None
    uid: str | None = None
    raw = await read_body(request, ctx.max_body_bytes)
    dry = writes.dry_run(request)
    if raw.strip():
        options = decode_object(raw, request.headers.get("content-type"))
        pre_rv, uid = writes.delete_options(options)
        rv = pre_rv or rv
        dry = dry or bool(options.get("dryRun"))
    assert target.name is not None
    if uid is not None or dry:
        current = await ctx.registry.get(target.kind, target.namespace or "", target.name)
        if uid is not None and current["metadata"].get("uid") != uid:
            raise ConflictError(
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{current['metadata'].get('uid')}")
        if dry:
            return JSONResponse(current)
        rv = rv or str(current["metadata"]["resourceVersion"])
    obj = await ctx.registry.delete(
        target.kind, target.namespace or "", target.name, resource_version=rv
    )
    return JSONResponse(obj)
