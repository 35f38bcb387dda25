"""One etcd watch stream per `Store.watch`, read into `WatchEvent`s.

etcd does the hard parts the SQLite store does itself: the replay from a revision, the
hand-over to live events without gap or duplicate, and slow consumers (gRPC flow control
backs the stream up; etcd moves a watcher that cannot keep up to its "unsynced" set and
catches it up from its own history, never stalling writers).

Revisions: etcd's watch ``start_revision`` is inclusive and the Store's ``since`` is
exclusive. The watch starts *at* ``since`` and drops events at it, so that a ``since``
below etcd's compaction point is refused exactly as the SQLite store refuses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc
from aetcd import rpc

from flotilla.store.base import EventType, Expired, StoreClosed, StoreUnavailable, WatchEvent
from flotilla.store.etcd import keys
from flotilla.store.etcd.errors import details


def _event(root: str, event: Any) -> tuple[WatchEvent, str] | None:
    """The event and the namespace of its key, or None for a key not of this store."""
    kv = event.kv
    parts = keys.split_key(root, kv.key)
    if parts is None:
        return None  # not an object of ours (another tool writing under the prefix)
    resource, namespace, name = parts
    kind: EventType
    if event.type == rpc.Event.EventType.DELETE:
        kind = "DELETED"
        if event.prev_kv.key:
            obj = keys.decode(event.prev_kv.value, kv.mod_revision)
        else:  # the previous value is compacted away: say what was deleted at least
            meta = {"name": name, "namespace": namespace,
                    "resourceVersion": str(kv.mod_revision)}
            obj = {"metadata": meta}
    else:
        kind = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
        obj = keys.decode(kv.value, kv.mod_revision)
    return WatchEvent(kind, resource, obj, kv.mod_revision), namespace


async def follow(
    stub: Any,
    root: str,
    resource: str | None,
    namespace: str | None,
    since: int,
    *,
    where: str,
    register: Callable[[Any], Callable[[], bool]],
) -> AsyncGenerator[WatchEvent, None]:
    """Every change under (resource, namespace) with revision > ``since``, then live.

    ``register`` records the stream with the store (so `close` can end it) and returns a
    function telling whether the store is closing."""
    prefix = keys.prefix_of(root, resource, namespace)
    # a namespace filter across every resource cannot be one key range: filter here
    local_ns = namespace if resource is None else None
    call = stub.Watch()
    closing = register(call)
    try:
        await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=prefix, range_end=keys.range_end(prefix), start_revision=max(since, 1),
            prev_kv=True)))
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                raise StoreUnavailable(f"etcd at {where} ended the watch stream")
            if response.compact_revision:
                raise Expired(
                    f"revision {since} is compacted (history kept from "
                    f"{response.compact_revision}); list again and watch from the list's "
                    "revision", response.compact_revision)
            if response.canceled:
                raise StoreUnavailable(f"etcd at {where} cancelled the watch: "
                                       f"{response.cancel_reason or 'no reason given'}")
            for raw in response.events:
                decoded = _event(root, raw)
                if decoded is None or decoded[0].revision <= since:
                    continue
                if local_ns is not None and decoded[1] != local_ns:
                    continue
                yield decoded[0]
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if closing() and task is not None and not task.cancelling():
            raise StoreClosed("store closed while watching") from None
        raise
    except grpc.aio.AioRpcError as exc:
        if closing():
            raise StoreClosed("store closed while watching") from None
        raise StoreUnavailable(f"etcd at {where}: watch failed: {details(exc)}") from None
    finally:
        call.cancel()
