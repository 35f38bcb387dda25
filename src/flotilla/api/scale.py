"""The ``scale`` sub-resource: ``spec.replicas`` of a kind with ``has_scale`` as an
``autoscaling/v1`` Scale, which is what ``kubectl scale`` (and any autoscaler written
against the scale client) reads and writes.

A write changes only the object's ``spec.replicas``, through the same compare-and-set
update as any other write, so the scheduler sees an ordinary change of the Deployment
and re-divides its replicas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flotilla.api import writes
from flotilla.api.body import decode_object, read_body
from flotilla.api.errors import BadRequestError, MethodNotAllowedError
from flotilla.api.patch import PatchError, apply_patch
from flotilla.api.paths import Target
from flotilla.client.base import ConflictError
from flotilla.resources.labels import selector_from_dict

if TYPE_CHECKING:
    from flotilla.api.routes import ApiContext

Object = dict[str, Any]
SCALE_API_VERSION = "autoscaling/v1"
_MAX_ATTEMPTS = 8


def _selector(obj: Object) -> str:
    raw = (obj.get("spec") or {}).get("selector") or {}
    if not isinstance(raw, dict):
        return ""
    labels = raw.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items())] if isinstance(labels, dict) \
        else []
    try:
        if raw.get("matchExpressions"):
            return str(selector_from_dict(raw))
    except Exception:  # the selector is the Deployment's; shown, never used here
        pass
    return ",".join(parts)


def scale_of(obj: Object) -> Object:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "apiVersion": SCALE_API_VERSION,
        "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": int(spec.get("replicas", 1))},
        "status": {"replicas": int(status.get("replicas", 0) or 0),
                   "selector": _selector(obj)},
    }


def _replicas(scale: Any) -> int:
    spec = scale.get("spec") if isinstance(scale, dict) else None
    value = spec.get("replicas") if isinstance(spec, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequestError(f"spec.replicas of a Scale must be a non-negative integer, "
                              f"got {value!r}")
    return value


async def scale(request: Request, target: Target, ctx: ApiContext,
                stamp: writes.Stamp) -> Response:
    assert target.name is not None
    registry = ctx.registry
    if request.method in ("GET", "HEAD"):
        obj = await registry.get(target.kind, target.namespace or "", target.name)
        return JSONResponse(scale_of(obj))
    if request.method not in ("PUT", "PATCH"):
        raise MethodNotAllowedError(f"{request.method} is not allowed on a scale "
                                    "sub-resource; use GET, PUT or PATCH")
    body = getattr(request.state, "body_obj", None)
    if body is None:
        body = decode_object(await read_body(request, ctx.max_body_bytes),
                             request.headers.get("content-type"))
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    manager = writes.field_manager(request)
    dry = writes.dry_run(request)
    for _ in range(_MAX_ATTEMPTS):
        obj = await registry.get(target.kind, target.namespace or "", target.name)
        current = scale_of(obj)
        if request.method == "PUT":
            wanted, rv = body, (body.get("metadata") or {}).get("resourceVersion")
        else:
            try:
                wanted = apply_patch("Scale", current, body, media)
            except PatchError as exc:
                raise BadRequestError(f"the patch does not apply to the Scale: "
                                      f"{exc.message}") from None
            rv = (wanted.get("metadata") or {}).get("resourceVersion") \
                if isinstance(wanted, dict) else None
            rv = None if rv == current["metadata"].get("resourceVersion") else rv
        replicas = _replicas(wanted)
        obj.setdefault("spec", {})["replicas"] = replicas
        obj["metadata"]["resourceVersion"] = rv or current["metadata"]["resourceVersion"]
        try:
            written = await registry.update(
                stamp(obj, request), dry_run=dry,
                before_write=writes.recorder(manager, target.api_version))
        except ConflictError:
            if rv:
                raise
            continue
        return JSONResponse(scale_of(written))
    raise ConflictError(f"scale of {target.kind.kind} {target.name!r} failed: too many "
                        "concurrent writers; retry")
