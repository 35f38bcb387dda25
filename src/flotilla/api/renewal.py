"""The heartbeat fast path: a Lease update that only moves ``spec.renewTime``.

Every agent renews its cluster's Lease once a second with a full PUT (the Kubernetes
node-lease shape, so ``flotilla get leases`` shows who holds a cluster and when it last
renewed). Through the general update path each renewal costs a store read (for SQLite a
hop to a reader thread), a deep merge, a schema validation and then the write. None of
that is needed when the object as stored differs from the one sent only in
``spec.renewTime``: the stored object was valid, the new time is checked here, and the
result is exactly what the general path would store (server metadata kept,
``generation`` bumped because the spec changed, the author annotation set).

So the registry hands the store a `renewal` change (`flotilla.store.base.Modifying`):
the store runs it against the object as stored at the moment of the write, inside the
same compare-and-set on the revision the agent sent. A takeover by another agent moved
the revision (and the holder), so the renewal fails with 409 as before and the agent
stops (`flotilla.agent.heartbeat.LeaseLost`). Anything else the body changes (holder,
duration, labels, a deletion) makes the change decline, and the registry takes the
general path, so behaviour never differs; only the cost does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flotilla.resources.rollout_state import CHANGED_BY

Object = dict[str, Any]

#: Metadata the server owns or moves on every write: not compared.
_VOLATILE_METADATA = frozenset({"resourceVersion", "uid", "creationTimestamp", "generation"})


def _rest_of_metadata(meta: object) -> Object | None:
    if not isinstance(meta, dict):
        return None
    rest = {k: v for k, v in meta.items() if k not in _VOLATILE_METADATA}
    annotations = rest.get("annotations")
    if isinstance(annotations, dict):
        kept = {k: v for k, v in annotations.items() if k != CHANGED_BY}
        rest["annotations"] = kept or None
    if not rest.get("annotations"):
        rest.pop("annotations", None)
    return rest


def _valid_time(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return False
    return True


def renewal(incoming: Object) -> Callable[[Object], Object | None]:
    """The change that applies ``incoming`` (a Lease PUT, already defaulted and keyed
    by the registry) if it is a pure renewal of the stored object, or declines."""
    spec_in = incoming.get("spec")
    meta_in = incoming.get("metadata")

    def change(current: Object) -> Object | None:
        spec_now = current.get("spec")
        meta_now = current.get("metadata")
        if not isinstance(spec_in, dict) or not isinstance(spec_now, dict) \
                or not isinstance(meta_now, dict) or not isinstance(meta_in, dict):
            return None
        renew = spec_in.get("renewTime")
        holder = spec_now.get("holderIdentity")
        if not holder or spec_in.get("holderIdentity") != holder or not _valid_time(renew):
            return None
        if {k: v for k, v in spec_in.items() if k != "renewTime"} != \
                {k: v for k, v in spec_now.items() if k != "renewTime"}:
            return None
        if meta_now.get("deletionTimestamp") or \
                _rest_of_metadata(meta_in) != _rest_of_metadata(meta_now):
            return None
        if {k: v for k, v in incoming.items() if k not in ("metadata", "spec")} != \
                {k: v for k, v in current.items() if k not in ("metadata", "spec")}:
            return None
        new = current  # the store's own copy for this call (`Change`): no deep copy
        meta = new["metadata"]
        meta.pop("resourceVersion", None)
        if renew != spec_now.get("renewTime"):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        # The author annotation as the general path leaves it: the body's, or none.
        author = (meta_in.get("annotations") or {}).get(CHANGED_BY)
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != CHANGED_BY}
        if author is not None:
            annotations[CHANGED_BY] = author
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        new["spec"]["renewTime"] = renew
        return new

    return change
