"""What Kubernetes clients ask of a write beyond the object itself: PATCH (three patch
types and server-side apply), field managers, ``fieldValidation``, ``dryRun`` and
``DeleteOptions``.

Every write here is read, changed, re-validated and written with compare-and-set
against the revision read (retried a bounded number of times when the client gave no
``resourceVersion``), so a patch is applied whole or not at all, never over a change it
did not see. The engines are pure (`flotilla.api.patch`, `flotilla.api.apply`); this
module is their HTTP side.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flotilla.api.apply.managed import ApplyConflicts, server_side_apply, track_update
from flotilla.api.body import decode_patch, patch_media_type, read_body
from flotilla.api.errors import BadRequestError, invalid
from flotilla.api.patch import PatchError, apply_patch
from flotilla.api.paths import Target
from flotilla.api.registry import BeforeWrite, Registry
from flotilla.client.base import ConflictError, NotFoundError
from flotilla.resources.kinds import Kind, UnknownKind, for_api_version
from flotilla.resources.models.meta import SERVER_SET_FIELDS
from flotilla.resources.validation import FieldError, model_for

if TYPE_CHECKING:
    from flotilla.api.routes import ApiContext

Object = dict[str, Any]
Stamp = Callable[[Object, Request], Object]

APPLY_PATCH = "application/apply-patch+yaml"
#: Attempts of a patch's read-patch-write before it answers 409.
_MAX_ATTEMPTS = 8
_VALIDATION = ("Strict", "Warn", "Ignore")
_PROPAGATION = ("Orphan", "Background", "Foreground")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- query parameters -------------------------------------------------------------------

def field_manager(request: Request) -> str:
    """``?fieldManager=``, else the User-Agent's product name (``kubectl`` of
    ``kubectl/v1.32.0 (linux/amd64) ...``), as Kubernetes defaults it."""
    given = request.query_params.get("fieldManager")
    if given is not None:
        if not given or len(given) > 128 or not given.isprintable():
            raise BadRequestError("fieldManager must be 1 to 128 printable characters")
        return given
    agent = request.headers.get("user-agent", "").split("/", 1)[0].strip()
    return agent[:128] or "unknown"


def dry_run(request: Request) -> bool:
    values = request.query_params.getlist("dryRun")
    for value in values:
        if value != "All":
            raise BadRequestError(f'dryRun: unsupported value {value!r}; the only '
                                  'supported value is "All"')
    return bool(values)


def validation_mode(request: Request) -> str:
    """``Strict``, ``Warn``, ``Ignore`` or "" (not given: Flotilla's own kinds refuse
    an unknown field as invalid, naming it)."""
    value = request.query_params.get("fieldValidation", "")
    if value and value not in _VALIDATION:
        raise BadRequestError(f"fieldValidation: invalid value {value!r}; use "
                              + ", ".join(_VALIDATION))
    return value


# -- unknown fields ---------------------------------------------------------------------

def _unknown(obj: Object, kind: Kind) -> list[tuple[int | str, ...]]:
    if not kind.strict:  # stored as given: every field is known to someone
        return []
    data = dict(obj)
    meta = data.get("metadata")
    if isinstance(meta, dict):
        data["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_SET_FIELDS}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    try:
        model_for(kind).model_validate(data, context={"group": group, "kind": kind.kind})
    except ValidationError as exc:
        return [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    except Exception:  # other problems are the validator's to report, with their paths
        return []
    return []


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _drop(obj: Any, loc: tuple[int | str, ...]) -> None:
    node = obj
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def check_fields(obj: Object, kind: Kind, mode: str) -> list[str]:
    """Apply ``fieldValidation``: Strict refuses unknown fields (400, every one named by
    path), Warn and Ignore drop them (Warn returns one warning each)."""
    if not mode:
        return []
    unknown = _unknown(obj, kind)
    if not unknown:
        return []
    names = [_dotted(loc) for loc in unknown]
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{n}"' for n in names)
        raise BadRequestError(
            f"{kind.kind} in version "
            f"{json.dumps(str(obj.get('apiVersion', '')).rpartition('/')[2])} cannot be "
            f"handled as a "
            f"{kind.kind}: strict decoding error: {listed}",
            {"kind": kind.kind, "causes": [
                {"reason": "FieldValueInvalid", "field": n, "message": "unknown field"}
                for n in names]})
    for loc in sorted(unknown, key=len, reverse=True):
        _drop(obj, loc)
    return [f'unknown field "{n}"' for n in names] if mode == "Warn" else []


def with_warnings(response: Response, warnings: list[str]) -> Response:
    for text in warnings:
        response.headers.append("Warning", f'299 - {json.dumps(text)}')
    return response


def recorder(manager: str, api_version: str) -> BeforeWrite:
    """The `Registry` hook recording an ordinary write's Update entry."""
    def record(current: Object | None, new: Object) -> None:
        track_update(current, new, manager, api_version, now())
    return record


# -- PATCH -------------------------------------------------------------------------------

async def _patch_body(request: Request, ctx: ApiContext) -> Any:
    if hasattr(request.state, "body_obj"):
        return request.state.body_obj
    return decode_patch(await read_body(request, ctx.max_body_bytes),
                        request.headers.get("content-type"))


def _patch_failed(exc: PatchError, target: Target) -> Exception:
    if exc.malformed:
        return BadRequestError(f"the patch is malformed: {exc.message}")
    return invalid(f"the patch does not apply to {target.kind.kind} {target.name!r}: "
                   f"{exc.message}", [FieldError("", exc.message)], kind=target.kind.kind,
                   name=target.name or "")


def _identity_kept(new: Object, target: Target) -> None:
    """A patch may not move an object: same kind (in any served version), same name and
    namespace as the path."""
    try:
        kind = for_api_version(str(new.get("apiVersion", "")), str(new.get("kind", "")))
    except UnknownKind as exc:
        raise BadRequestError(str(exc).strip("'\"")) from None
    if kind is not target.kind:
        raise BadRequestError(f"a patch may not change the kind of {target.kind.kind} "
                              f"{target.name!r}")
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        raise BadRequestError("the patched object's metadata must be a mapping")
    if meta.get("name") != target.name:
        raise BadRequestError(f"a patch may not change metadata.name ({target.name!r})")
    if target.kind.namespaced and meta.get("namespace", target.namespace) != target.namespace:
        raise BadRequestError(
            f"a patch may not change metadata.namespace ({target.namespace!r})")


async def patch(request: Request, target: Target, ctx: ApiContext, stamp: Stamp) -> Response:
    media = patch_media_type(request.headers.get("content-type"))
    body = await _patch_body(request, ctx)
    force = request.query_params.get("force", "").lower() in ("1", "true")
    if media == APPLY_PATCH:
        return await _apply(request, target, ctx, body, force, stamp)
    if force:
        raise BadRequestError("force is only allowed with server-side apply "
                              f"(Content-Type {APPLY_PATCH})")
    manager = field_manager(request)
    mode = validation_mode(request)
    dry = dry_run(request)
    registry = ctx.registry
    assert target.name is not None
    for _ in range(_MAX_ATTEMPTS):
        live = await registry.get(target.kind, target.namespace or "", target.name)
        try:
            new = apply_patch(target.kind.kind, live, body, media)
        except PatchError as exc:
            raise _patch_failed(exc, target) from None
        if not isinstance(new, dict):
            raise BadRequestError("the patched object is not an object (a mapping)")
        _identity_kept(new, target)
        new["metadata"].setdefault("namespace", live["metadata"].get("namespace"))
        live_rv = live["metadata"].get("resourceVersion")
        precondition = new["metadata"].get("resourceVersion") != live_rv
        if not precondition:
            new["metadata"]["resourceVersion"] = live_rv
        warnings = check_fields(new, target.kind, mode)
        try:
            if target.subresource == "status":
                written = await registry.update_status(new)
            else:
                written = await registry.update(
                    stamp(new, request), dry_run=dry,
                    before_write=recorder(manager, target.api_version))
        except ConflictError:
            if precondition:
                raise
            continue
        return with_warnings(JSONResponse(written), warnings)
    raise ConflictError(f"patch of {target.kind.kind} {target.name!r} failed: too many "
                        "concurrent writers; retry")


def _apply_conflict(exc: ApplyConflicts, api_version: str) -> ConflictError:
    by_manager: dict[str, list[str]] = {}
    for c in exc.conflicts:
        by_manager.setdefault(c.manager, []).append(c.field)
    n = len(exc.conflicts)
    parts = []
    for manager, fields in by_manager.items():
        if len(fields) == 1:
            parts.append(f'conflict with "{manager}" using {api_version}: {fields[0]}')
        else:
            parts.append(f'conflicts with "{manager}" using {api_version}:\n'
                         + "\n".join(f"- {f}" for f in fields))
    message = f"Apply failed with {n} conflict{'s' if n != 1 else ''}: " + "\n".join(parts)
    causes = [{"reason": "FieldManagerConflict", "field": c.field,
               "message": f'conflict with "{c.manager}" using {api_version}'}
              for c in exc.conflicts]
    return ConflictError(message, {"causes": causes})


async def _apply(request: Request, target: Target, ctx: ApiContext, config: Any,
                 force: bool, stamp: Stamp) -> Response:
    manager = request.query_params.get("fieldManager")
    if not manager:
        raise BadRequestError("fieldManager is required for server-side apply "
                              "(PATCH with Content-Type application/apply-patch+yaml)")
    manager = field_manager(request)
    if target.subresource is not None:
        raise BadRequestError(f"server-side apply of the {target.subresource} "
                              "sub-resource is not supported; apply the object")
    if not isinstance(config, dict):
        raise BadRequestError("the applied configuration must be one object (a mapping)")
    config = copy.deepcopy(config)
    kind = Registry.kind_of(config)
    if kind is not target.kind:
        raise BadRequestError(f"the applied object's kind {config.get('kind')!r} does not "
                              f"match the path, which serves {target.kind.kind}")
    meta = config.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequestError("metadata must be a mapping")
    if meta.get("name") not in (None, target.name):
        raise BadRequestError(f"metadata.name {meta.get('name')!r} does not match the name "
                              f"in the path {target.name!r}")
    meta["name"] = target.name
    if target.kind.namespaced:
        if meta.get("namespace") not in (None, "", target.namespace):
            raise BadRequestError(f"metadata.namespace {meta.get('namespace')!r} does not "
                                  f"match the namespace of the path {target.namespace!r}")
        meta["namespace"] = target.namespace
    for server_field in SERVER_SET_FIELDS:
        if server_field not in ("resourceVersion",):
            meta.pop(server_field, None)
    mode = validation_mode(request)
    warnings = check_fields(config, kind, mode or "Strict")
    dry = dry_run(request)
    registry = ctx.registry
    assert target.name is not None
    for _ in range(_MAX_ATTEMPTS):
        try:
            live: Object | None = await registry.get(kind, target.namespace or "",
                                                     target.name)
        except NotFoundError:
            live = None
        try:
            new = server_side_apply(live, config, manager, force=force, now=now())
        except ApplyConflicts as exc:
            raise _apply_conflict(exc, target.api_version) from None
        try:
            if live is None:
                new["metadata"].pop("resourceVersion", None)
                created = await registry.create(stamp(new, request), dry_run=dry)
                return with_warnings(JSONResponse(created, status_code=201), warnings)
            if _unchanged(live, new):
                return with_warnings(JSONResponse(live), warnings)
            rv = meta.get("resourceVersion")
            precondition = rv not in (None, "")
            new["metadata"]["resourceVersion"] = rv if precondition else \
                live["metadata"].get("resourceVersion")
            written = await registry.update(stamp(new, request), dry_run=dry)
        except ConflictError as exc:
            if exc.reason != "Conflict" or meta.get("resourceVersion"):
                raise
            continue
        except Exception as exc:
            if live is None and getattr(exc, "reason", "") == "AlreadyExists":
                continue
            raise
        return with_warnings(JSONResponse(written), warnings)
    raise ConflictError(f"apply of {kind.kind} {target.name!r} failed: too many "
                        "concurrent writers; retry")


def _unchanged(live: Object, new: Object) -> bool:
    """An apply that changes nothing is not written (its managedFields time included)."""
    return bool(live == {**new, "metadata": {**new["metadata"],
                                             "resourceVersion": live["metadata"].get(
                                                 "resourceVersion")}})


# -- DELETE ------------------------------------------------------------------------------

def delete_options(options: Object) -> tuple[str | None, str | None]:
    """(resourceVersion, uid) preconditions of a DeleteOptions body, after checking the
    fields Kubernetes defines (propagationPolicy, gracePeriodSeconds, dryRun)."""
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in _PROPAGATION:
        raise BadRequestError(f"propagationPolicy: unsupported value {policy!r}; use "
                              + ", ".join(_PROPAGATION))
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)
                              or grace < 0):
        raise BadRequestError("gracePeriodSeconds must be a non-negative integer")
    pre = options.get("preconditions") or {}
    if not isinstance(pre, dict):
        raise BadRequestError("preconditions must be a mapping")
    for value in options.get("dryRun") or []:
        if value != "All":
            raise BadRequestError(f'dryRun: unsupported value {value!r}; the only '
                                  'supported value is "All"')
    rv, uid = pre.get("resourceVersion"), pre.get("uid")
    return (str(rv) if rv else None), (str(uid) if uid else None)
