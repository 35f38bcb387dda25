"""The Store seam: a revisioned key/value store of resource objects with watch and leases.

The interface is shaped after etcd v3 on purpose, so that an etcd implementation can
slot in under the API server with nothing above this module changing:

* one global, monotonically increasing *revision*; every write gets the next one and
  the object's ``metadata.resourceVersion`` is that revision as a decimal string;
* compare-and-set on the object's modification revision (``expected_revision``);
* ``watch(since=R)`` replays every change with revision > R, then follows live;
  a revision older than the compaction point raises `Expired` so the caller re-lists;
* leases with a TTL; objects created with a lease are deleted when it expires.

Objects are plain JSON-able dicts (``apiVersion``/``kind``/``metadata``/...). The store
does not interpret them beyond ``metadata.namespace``, ``metadata.name``,
``metadata.labels`` and ``metadata.resourceVersion``; defaulting, uids, generations and
validation belong to the API layer (`flotilla.api.registry`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from flotilla.resources.labels import Selector

Object = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """Base class of every error a Store raises on purpose."""


class NotFound(StoreError):
    """The object (or lease) does not exist."""


class AlreadyExists(StoreError):
    """``create`` of a name that is already taken."""


class Conflict(StoreError):
    """Compare-and-set failed: the object changed since the caller read it."""

    def __init__(self, message: str, current_revision: int | None = None) -> None:
        super().__init__(message)
        self.current_revision = current_revision


class Expired(StoreError):
    """The requested revision has been compacted away; re-list and watch from there."""

    def __init__(self, message: str, compacted_revision: int) -> None:
        super().__init__(message)
        self.compacted_revision = compacted_revision


class Fenced(StoreError):
    """A fenced write was refused: the Lease named by its `Fence` moved on (another
    replica took the leadership, or this one renewed since). Nothing was written; the
    writer is no longer the leader it thought it was and must step down."""


class StoreClosed(StoreError):
    """The store is shutting down; the operation did not happen."""


class StoreUnavailable(StoreError):
    """The store's backend (e.g. an etcd cluster) cannot be reached or has no leader now;
    the operation may or may not have happened. Retry later."""


class InsufficientStorage(StoreError):
    """The disk under the store is (nearly) full. The write was refused whole before
    anything of it was stored; writes that free space (deletes, compaction) and updates
    that do not grow an object still go through."""


class CorruptStore(StoreError):
    """The store's file failed its integrity check; the message says how to restore."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETED, ``object`` is the last state with the deletion revision."""

    type: EventType
    resource: str
    object: Object
    revision: int


@dataclass(slots=True)
class ListResult:
    items: list[Object]
    #: The store revision this list is consistent with: watch from here to follow it.
    revision: int
    #: Opaque token for the next page, or None when this was the last page.
    continue_token: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl: float
    #: Seconds left before expiry at the time of the answer.
    remaining: float = field(default=0.0)


@dataclass(frozen=True, slots=True)
class Fence:
    """A write precondition on another key: the Lease object (resource, namespace, name)
    must still be at mod revision ``revision`` when the write applies, checked in the
    same transaction. Controllers of the elected leader write with the revision of the
    leader Lease they last wrote, so a deposed leader can never write (`Fenced`)."""

    resource: str
    namespace: str
    name: str
    revision: int


@runtime_checkable
class Store(Protocol):
    """A revisioned object store. All methods are safe to call concurrently."""

    async def get(self, resource: str, namespace: str, name: str) -> Object:
        """Return the object or raise `NotFound`. ``namespace`` is "" for cluster scope."""
        ...

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        selector: Selector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ListResult:
        """Objects of ``resource`` ordered by (namespace, name).

        ``namespace=None`` lists every namespace. ``limit=0`` means no paging. A stale or
        malformed ``continue_token`` raises `Expired` / `ValueError`.
        """
        ...

    async def create(self, resource: str, obj: Object, *, lease_id: int | None = None,
                     fence: Fence | None = None) -> Object:
        """Store a new object; raise `AlreadyExists` if the name is taken.

        Returns the stored object with ``metadata.resourceVersion`` set. With
        ``lease_id`` the object is deleted when that lease expires or is revoked.
        With ``fence`` the write applies only while the fence holds, else `Fenced`
        (checked before anything else, in the write's own transaction; same for
        `update` and `delete`).
        """
        ...

    async def update(
        self, resource: str, obj: Object, *, expected_revision: int | None = None,
        fence: Fence | None = None,
    ) -> Object:
        """Replace an existing object (found by its metadata namespace/name).

        With ``expected_revision`` the write happens only if the stored object's
        revision is exactly that, else `Conflict`. Raises `NotFound` if absent.
        """
        ...

    async def delete(
        self, resource: str, namespace: str, name: str, *, expected_revision: int | None = None,
        fence: Fence | None = None,
    ) -> Object:
        """Delete and return the last state (with the deletion revision)."""
        ...

    def watch(
        self,
        resource: str | None = None,
        namespace: str | None = None,
        *,
        since: int,
    ) -> AsyncIterator[WatchEvent]:
        """Every change with revision > ``since``, in revision order, then live changes.

        ``resource=None`` watches every resource. Raises `Expired` (on first iteration)
        when ``since`` is older than the compaction point. A consumer that falls too far
        behind gets `Expired` too and must resume from its last seen revision.
        """
        ...

    async def current_revision(self) -> int: ...

    async def compact(self, revision: int) -> None:
        """Forget the change history up to ``revision`` (objects themselves stay)."""
        ...

    async def grant_lease(self, ttl: float) -> Lease: ...

    async def keepalive(self, lease_id: int) -> Lease:
        """Renew a lease to its full TTL; raise `NotFound` if it already expired."""
        ...

    async def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting the objects attached to it."""
        ...

    async def lease_info(self, lease_id: int) -> Lease: ...

    async def close(self) -> None: ...


#: `Modifying.modify`'s change: the stored object (the caller's own copy) to the object
#: to store, or None to decline (the store then writes nothing and returns None).
Change = Callable[[Object], "Object | None"]


@runtime_checkable
class Modifying(Protocol):
    """An optional Store capability: read-check-write of one object as one store step.

    `Store.update` needs the caller to read first (one more trip to the store, and for
    SQLite one more hop to a reader thread); a heartbeat that only moves a timestamp
    pays that on every renewal. ``modify`` runs ``change`` against the object as stored
    at the moment of the write (SQLite: inside the writer's transaction; etcd: a read
    then a compare-and-set transaction on the revision read), so the caller's checks
    and the write see the same state. Stores without it are used through get + update.
    """

    async def modify(self, resource: str, namespace: str, name: str, change: Change, *,
                     expected_revision: int) -> Object | None:
        """Store ``change(current)`` if the object's revision is ``expected_revision``.

        Raises `NotFound` when absent and `Conflict` when the revision moved; returns
        None, having written nothing, when ``change`` declined; else the stored object.
        ``change`` must be quick and pure: SQLite runs it in its writer thread.
        """
        ...
