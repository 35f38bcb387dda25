"""The write operations, each run inside the writer thread against a `Txn`.

Each checks everything first and writes last, so a refused write (`NotFound`,
`AlreadyExists`, `Conflict`) leaves nothing behind in the shared batch transaction.
Every change takes its own revision, including each object a lease revocation deletes,
so a watch position is always a single, unambiguous point in the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flotilla.store.base import (
    AlreadyExists,
    Conflict,
    Fence,
    Fenced,
    InsufficientStorage,
    NotFound,
    Object,
)
from flotilla.store.sqlite.writer import Txn, compact_log

#: Bytes an update may grow by below the disk reserve.
_GROWTH_SLACK = 256


def encode(obj: Object, revision: int) -> str:
    """The stored JSON text of ``obj`` with ``metadata.resourceVersion`` = ``revision``.

    Builds a new top level and metadata dict, so the caller's object is never touched.
    """
    metadata = dict(obj.get("metadata") or {})
    metadata["resourceVersion"] = str(revision)
    return json.dumps({**obj, "metadata": metadata}, separators=(",", ":"))


def _describe(resource: str, namespace: str, name: str) -> str:
    return f"{resource} {namespace}/{name}" if namespace else f"{resource} {name}"


def _current(txn: Txn, resource: str, namespace: str, name: str) -> Any:
    return txn.conn.execute(
        "SELECT mod_revision, create_revision, lease_id, object FROM objects"
        " WHERE resource = ? AND namespace = ? AND name = ?",
        (resource, namespace, name),
    ).fetchone()


def _check_revision(
    what: str, mod_revision: int, expected_revision: int | None
) -> None:
    if expected_revision is not None and mod_revision != expected_revision:
        raise Conflict(
            f"{what} was modified (resourceVersion {mod_revision}, expected "
            f"{expected_revision}); read it again and retry",
            current_revision=mod_revision,
        )


def check_fence(txn: Txn, fence: Fence | None) -> None:
    """Refuse the write (`Fenced`) unless the fence's Lease is still at its revision:
    read in the writer's own transaction, so nothing can move it in between."""
    if fence is None:
        return
    row = _current(txn, fence.resource, fence.namespace, fence.name)
    if row is None or row[0] != fence.revision:
        now = "gone" if row is None else f"at revision {row[0]}"
        raise Fenced(f"fenced write refused: "
                     f"{_describe(fence.resource, fence.namespace, fence.name)} is {now}, "
                     f"not {fence.revision}")


def create(
    txn: Txn, resource: str, namespace: str, name: str, obj: Object, lease_id: int | None,
    fence: Fence | None = None,
) -> str:
    check_fence(txn, fence)
    if _current(txn, resource, namespace, name) is not None:
        raise AlreadyExists(f"{_describe(resource, namespace, name)} already exists")
    if lease_id is not None and txn.conn.execute(
        "SELECT 1 FROM leases WHERE id = ?", (lease_id,)
    ).fetchone() is None:
        raise NotFound(f"lease {lease_id} not found (expired or revoked)")
    if txn.low_space is not None:
        raise InsufficientStorage(txn.low_space)
    revision = txn.revision + 1
    text = encode(obj, revision)  # may raise TypeError before anything is written
    txn.bump()
    txn.conn.execute(
        "INSERT INTO objects(resource, namespace, name, mod_revision, create_revision,"
        " lease_id, object) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (resource, namespace, name, revision, revision, lease_id, text),
    )
    txn.record(revision, "ADDED", resource, namespace, name, text, None)
    return text


def update(
    txn: Txn, resource: str, namespace: str, name: str, obj: Object,
    expected_revision: int | None, fence: Fence | None = None,
) -> str:
    check_fence(txn, fence)
    row = _current(txn, resource, namespace, name)
    what = _describe(resource, namespace, name)
    if row is None:
        raise NotFound(f"{what} not found")
    _check_revision(what, row[0], expected_revision)
    return _update_row(txn, resource, namespace, name, obj, row)


def _update_row(txn: Txn, resource: str, namespace: str, name: str, obj: Object,
                row: Any) -> str:
    """Write ``obj`` over the checked current ``row`` (`_current`'s shape)."""
    revision = txn.revision + 1
    text = encode(obj, revision)
    # Below the reserve, an update that keeps its size (a heartbeat, a condition flip;
    # the slack covers a resourceVersion or timestamp gaining digits) still goes
    # through: refusing it would fail clusters over for a full disk.
    if txn.low_space is not None and len(text) > len(row[3]) + _GROWTH_SLACK:
        raise InsufficientStorage(txn.low_space)
    txn.bump()
    txn.conn.execute(
        "UPDATE objects SET mod_revision = ?, object = ?"
        " WHERE resource = ? AND namespace = ? AND name = ?",
        (revision, text, resource, namespace, name),
    )
    txn.record(revision, "MODIFIED", resource, namespace, name, text, row[3])
    return text


def delete(
    txn: Txn, resource: str, namespace: str, name: str, expected_revision: int | None,
    fence: Fence | None = None,
) -> str:
    check_fence(txn, fence)
    row = _current(txn, resource, namespace, name)
    what = _describe(resource, namespace, name)
    if row is None:
        raise NotFound(f"{what} not found")
    _check_revision(what, row[0], expected_revision)
    return _delete_row(txn, resource, namespace, name, row[3])


def _delete_row(txn: Txn, resource: str, namespace: str, name: str, stored: str) -> str:
    revision = txn.bump()
    text = encode(json.loads(stored), revision)
    txn.conn.execute(
        "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
        (resource, namespace, name),
    )
    txn.record(revision, "DELETED", resource, namespace, name, text, stored)
    return text


def grant_lease(txn: Txn, ttl: float) -> int:
    lease_id = txn.next_lease
    txn.next_lease += 1
    txn.conn.execute("INSERT INTO leases(id, ttl) VALUES (?, ?)", (lease_id, ttl))
    return lease_id


def revoke_lease(txn: Txn, lease_id: int) -> int:
    """Delete the lease and every object attached to it; return how many objects."""
    if txn.conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,)).rowcount == 0:
        raise NotFound(f"lease {lease_id} not found (expired or revoked)")
    rows = txn.conn.execute(
        "SELECT resource, namespace, name, object FROM objects WHERE lease_id = ?"
        " ORDER BY resource, namespace, name",
        (lease_id,),
    ).fetchall()
    for resource, namespace, name, stored in rows:
        _delete_row(txn, resource, namespace, name, stored)
    return len(rows)


def compact(txn: Txn, revision: int) -> None:
    if revision > txn.revision:
        raise ValueError(
            f"cannot compact to revision {revision}: the current revision is {txn.revision}"
        )
    # Compacting to an already compacted revision is a no-op, so that several
    # compactors (or a retry) never fail on each other.
    compact_log(txn, revision)


def modify(
    txn: Txn, resource: str, namespace: str, name: str, change: Callable[[Object], Any],
    expected_revision: int,
) -> str | None:
    """`Modifying.modify` inside the writer: the current row, the caller's check and
    the write in one step, with no reader-thread hop before it."""
    row = _current(txn, resource, namespace, name)
    what = _describe(resource, namespace, name)
    if row is None:
        raise NotFound(f"{what} not found")
    _check_revision(what, row[0], expected_revision)
    new = change(json.loads(row[3]))
    if new is None:
        return None
    return _update_row(txn, resource, namespace, name, new, row)  # row checked above
