"""The one write step of a reconcile: the object as read, the object as desired.

A reconciler decides everything it wants of an object first (new spec fields, labels,
annotations, conditions), on a plain copy of what it read, and then writes once: at most
one spec write (``update``: spec and metadata) and at most one status write (the
``/status`` sub-resource), each skipped when it would change nothing. Written as a
series of small read-modify-writes instead, one reconcile of the failover controller
wrote the same binding up to five times, each write waking every controller watching
bindings, and a reader between two of them saw a half-made decision.

`write_desired` is the step itself (compare-and-set on the resourceVersion read; a
conflict is raised for the caller to read again); `converge` is the usual loop around
it: read the current object, let the caller edit a copy, write the difference, and start
again from a fresh read on a conflict, so another writer's fields are never lost.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flotilla.client.base import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    Object,
    ResourceClient,
)
from flotilla.client.frozen import thaw
from flotilla.resources.kinds import Kind, UnknownKind, by_kind

#: Edits a plain copy of the current object in place into the desired one (whatever it
#: returns is ignored: whether anything changed is found by comparing).
Edit = Callable[[Object], object]


def _spec_part(obj: Object, split: bool) -> dict[str, Any]:
    """What a spec write changes, for comparison: everything but the status (when the
    kind keeps it apart, ``split``), with an empty ``labels`` or ``annotations`` read as
    absent (an edit that looked for an annotation with ``setdefault`` and set none must
    not cost a write)."""
    out = {k: v for k, v in obj.items() if k != "status" or not split}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items()
                           if not (k in ("labels", "annotations") and not v)}
    return out


def has_status(obj: Object) -> bool:
    """Whether ``obj``'s kind keeps its status apart (a ``/status`` sub-resource)."""
    try:
        return by_kind(str(obj.get("kind"))).has_status
    except UnknownKind:
        return False


async def write_desired(client: ResourceClient, read: Object, desired: Object) -> Object:
    """Write what differs from ``read`` to ``desired``: one ``update`` if anything but
    the status differs, then one ``update_status`` if the status differs. Returns the
    stored object (``read`` itself when nothing needed writing).

    ``desired`` must be a copy of ``read`` (same identity and resourceVersion); the
    spec write is compare-and-set on it, and the status write on what the spec write
    stored, so a stale ``read`` raises `ConflictError` before anything is written.
    """
    stored = read
    split = has_status(desired)  # else a "status" field is part of the object itself
    if _spec_part(desired, split) != _spec_part(read, split):
        stored = await client.update(thaw(desired))
    if split and desired.get("status") != read.get("status"):
        body = thaw(stored)
        if desired.get("status") is None:
            body.pop("status", None)
        else:
            body["status"] = thaw(desired["status"])
        stored = await client.update_status(body)
    return stored


async def converge(
    client: ResourceClient,
    kind: Kind,
    namespace: str,
    name: str,
    edit: Edit,
    *,
    read: Object | None = None,
    create: Callable[[], Object] | None = None,
    attempts: int = 10,
) -> Object | None:
    """Read the object, ``edit`` a copy into the desired object, `write_desired` it;
    on a conflict read again and re-apply ``edit``. Returns the stored object.

    ``read`` is the object as the caller already holds it (an informer's cached copy):
    the edit is tried on it first, so a reconcile that changes nothing sends no request
    at all, and one that does writes with the cached resourceVersion (a cache that lags
    behind costs one conflict and a fresh read, never a lost write).

    When the object does not exist, ``create()`` (if given) builds it: it is created,
    and its ``status`` (for a kind with a status sub-resource, where a create drops it)
    written once after; without ``create`` None is returned and nothing written.
    """
    if read is not None:
        desired = thaw(read)
        edit(desired)
        try:
            return await write_desired(client, read, desired)
        except (ConflictError, NotFoundError):
            pass  # the cache is behind: read the object as it is now
    for _ in range(attempts):
        try:
            current = await client.get(kind, namespace, name)
        except NotFoundError:
            if create is None:
                return None
            fresh = create()
            try:
                stored = await client.create(copy.deepcopy(fresh))
            except AlreadyExistsError:
                continue  # created concurrently: converge that one
            if has_status(fresh) and fresh.get("status") not in (None, stored.get("status")):
                body = thaw(stored)
                body["status"] = copy.deepcopy(fresh["status"])
                stored = await client.update_status(body)
            return stored
        desired = thaw(current)
        edit(desired)
        try:
            return await write_desired(client, current, desired)
        except ConflictError:
            continue
    raise ConflictError(f"{kind.kind} {name!r}: gave up after {attempts} conflicting writes")
