"""`EtcdStore`: the `Store` seam on an etcd v3 cluster, for a highly available plane.

Every write is one etcd transaction that checks and writes together, so several API
servers on one etcd never race each other: create compares the key's create_revision
with 0, update and delete compare its mod_revision with the caller's resourceVersion.
A refused transaction reads the key in the same round trip, to tell `NotFound` from
`Conflict` (and to name the current revision).

A renewal (`modify`) is one transaction, not a read and then one: the store remembers
the value it last wrote or read for each key at that key's mod revision (`Recent`), and
a value at a given (key, mod revision) never changes in etcd, so when the caller's
expected revision is the one remembered, the remembered value *is* the stored object
and the transaction's compare on that revision makes the write safe. Anything else (a
write by another server, a first renewal after a failover) misses and reads first.

Leases are etcd's: an API server that dies leaves its leases to expire in etcd, and a
lease is visible to every server, which is what leader election needs later.

Differences from the SQLite store, all etcd's own: revisions are global to the etcd
cluster (other writers under other prefixes take revisions too); objects a lease deletes
go in one revision together; lease TTLs are whole seconds; `lease_info` reports whole
seconds remaining, truncated, as etcd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc
from aetcd import rpc

from flotilla.resources.labels import Selector
from flotilla.store.base import (
    AlreadyExists,
    Change,
    Conflict,
    Expired,
    Fence,
    Fenced,
    Lease,
    ListResult,
    NotFound,
    Object,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WatchEvent,
)
from flotilla.store.etcd import keys
from flotilla.store.etcd.config import EtcdConfig
from flotilla.store.etcd.errors import COMPACTED, FUTURE, translate
from flotilla.store.etcd.watch import follow
from flotilla.store.paging import ContinueToken

log = logging.getLogger(__name__)

#: Default history kept for watch resumption, in revisions (as the SQLite store).
DEFAULT_KEEP_REVISIONS = 100_000
#: Seconds one unary call may take before it is `StoreUnavailable`.
CALL_TIMEOUT = 10.0
#: Keys read per range while filtering a list by label selector.
SCAN_BATCH = 500
#: Keys whose last known value `Recent` keeps (each one object's JSON, ~0.5 kB for a
#: Lease): enough for every cluster renewing through one server, bounded anyway.
RECENT_KEYS = 20_000

Compare = rpc.Compare


def _object_key(obj: Object, what: str) -> tuple[str, str]:
    """(namespace, name) of an object the caller passes in, or a clear ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: object must be a JSON object, got {type(obj).__name__}")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"{what}: metadata: required object is missing")
    name, namespace = metadata.get("name"), metadata.get("namespace") or ""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: metadata.name: required non-empty string")
    if not isinstance(namespace, str):
        raise ValueError(f"{what}: metadata.namespace: expected a string")
    return namespace, name


def _describe(resource: str, namespace: str, name: str) -> str:
    return f"{resource} {namespace}/{name}" if namespace else f"{resource} {name}"


def _mod_equals(key: bytes, revision: int) -> Any:
    return Compare(key=key, target=Compare.CompareTarget.MOD,
                   result=Compare.CompareResult.EQUAL, mod_revision=revision)


def _exists(key: bytes) -> Any:
    return Compare(key=key, target=Compare.CompareTarget.CREATE,
                   result=Compare.CompareResult.GREATER, create_revision=0)


def _absent(key: bytes) -> Any:
    return Compare(key=key, target=Compare.CompareTarget.CREATE,
                   result=Compare.CompareResult.EQUAL, create_revision=0)


def _read(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


class Recent:
    """The last value this store saw for each key, with its mod revision, newest last.

    Exact, never stale in the way a cache can be: etcd never changes the value of a key
    at a given mod revision, so ``get(key, revision)`` returns a value only when it is
    the one etcd holds (or held) at that revision. Whether that revision is still the
    key's current one is the transaction's compare to decide, not this class's."""

    def __init__(self, limit: int = RECENT_KEYS) -> None:
        self._limit = limit
        self._values: dict[bytes, tuple[int, bytes]] = {}

    def put(self, key: bytes, revision: int, value: bytes) -> None:
        self._values.pop(key, None)  # newest last, so the oldest is evicted first
        self._values[key] = (revision, value)
        if len(self._values) > self._limit:
            del self._values[next(iter(self._values))]

    def get(self, key: bytes, revision: int) -> bytes | None:
        known = self._values.get(key)
        return known[1] if known is not None and known[0] == revision else None

    def forget(self, key: bytes) -> None:
        self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)


class EtcdStore:
    """Use `open_etcd_store`; the constructor does no I/O."""

    def __init__(self, config: EtcdConfig, *,
                 keep_revisions: int = DEFAULT_KEEP_REVISIONS) -> None:
        if keep_revisions < 0:
            raise ValueError(f"keep_revisions: must be >= 0, got {keep_revisions}")
        self.config = config
        self._root = config.prefix
        self._where = config.describe()
        self._keep = keep_revisions
        #: compact again once this many revisions more than `keep` have passed
        self._step = max(1, keep_revisions // 10)
        self._compacted_hint = 0
        self._compacting = False
        self._channel: Any = None
        self._kv: Any = None
        self._lease: Any = None
        self._watch: Any = None
        self._keepalive: Any = None
        self._keepalive_lock = asyncio.Lock()
        self._watches: set[Any] = set()
        self._closed = False
        self.recent = Recent()
        #: renewals (`modify`) that needed a read first / that did not
        self.modify_reads = 0
        self.modify_hits = 0

    async def _open(self) -> None:
        self._channel = self.config.channel()
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        try:
            await self.current_revision()  # fail now, with the endpoints named
        except BaseException:
            await self._channel.close()
            raise

    # -- plumbing --------------------------------------------------------------------

    async def _call(self, method: Any, request: Any, lease_id: int | None = None) -> Any:
        if self._closed:
            raise StoreClosed("store is closed")
        try:
            return await method(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if self._closed:
                raise StoreClosed("store is closed") from None
            raise translate(exc, self._where, lease_id) from None
        except asyncio.CancelledError:
            raise
        except grpc.aio.UsageError:
            raise StoreClosed("store is closed") from None

    async def _txn(self, compare: list[Any], success: list[Any], failure: list[Any],
                   lease_id: int | None = None) -> Any:
        response = await self._call(
            self._kv.Txn, rpc.TxnRequest(compare=compare, success=success, failure=failure),
            lease_id)
        if response.succeeded:
            await self._maybe_compact(response.header.revision)
        return response

    def _key(self, resource: str, namespace: str, name: str) -> bytes:
        return keys.key_of(self._root, resource, namespace, name)

    def _fenced(self, fence: Fence | None, compare: list[Any], failure: list[Any]
                ) -> list[Any]:
        """Add the fence's compare (the Lease key at its mod revision) to a write's
        transaction, and a read of it to the failure branch, so a refusal is told apart
        from the write's own precondition in the same round trip."""
        if fence is None:
            return compare
        key = self._key(fence.resource, fence.namespace, fence.name)
        failure.append(_read(key))
        return [_mod_equals(key, fence.revision), *compare]

    def _check_fence(self, fence: Fence | None, response: Any) -> None:
        if fence is None or response.succeeded:
            return
        found = response.responses[-1].response_range.kvs
        current = int(found[0].mod_revision) if found else None
        if current != fence.revision:
            now = "gone" if current is None else f"at revision {current}"
            raise Fenced(f"fenced write refused: "
                         f"{_describe(fence.resource, fence.namespace, fence.name)} is "
                         f"{now}, not {fence.revision}")

    # -- objects -----------------------------------------------------------------------

    async def get(self, resource: str, namespace: str, name: str) -> Object:
        response = await self._call(
            self._kv.Range, rpc.RangeRequest(key=self._key(resource, namespace, name)))
        if not response.kvs:
            raise NotFound(f"{_describe(resource, namespace, name)} not found")
        kv = response.kvs[0]
        self.recent.put(kv.key, int(kv.mod_revision), kv.value)
        return keys.decode(kv.value, kv.mod_revision)

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        selector: Selector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ListResult:
        if limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")
        token = (ContinueToken.decode(continue_token, resource, namespace)
                 if continue_token else None)
        if selector is not None and selector.empty:
            selector = None
        prefix = keys.prefix_of(self._root, resource, namespace)
        end = keys.range_end(prefix)
        start = prefix
        revision = 0  # the first range reads the current revision; every later one, it
        if token is not None:
            start = self._key(resource, *token.after) + b"\0"
            revision = token.revision
        batch = 0 if not limit else limit + 1 if selector is None else max(limit + 1,
                                                                            SCAN_BATCH)
        items: list[Object] = []
        last: tuple[str, str] | None = None
        while True:
            response = await self._range(start, end, revision, batch)
            revision = response.header.revision if revision == 0 else revision
            for kv in response.kvs:
                parts = keys.split_key(self._root, kv.key)
                if parts is None:
                    continue
                obj = keys.decode(kv.value, kv.mod_revision)
                if selector is not None and not selector.matches(
                        obj.get("metadata", {}).get("labels")):
                    continue
                if limit and len(items) == limit:
                    assert last is not None
                    return ListResult(items, revision, ContinueToken(
                        revision, resource, namespace, last).encode())
                items.append(obj)
                last = (parts[1], parts[2])
            if not response.more or not response.kvs:
                return ListResult(items, revision, None)
            start = response.kvs[-1].key + b"\0"

    async def _range(self, start: bytes, end: bytes, revision: int, limit: int) -> Any:
        try:
            return await self._call(self._kv.Range, rpc.RangeRequest(
                key=start, range_end=end, revision=revision, limit=limit))
        except StoreError as exc:
            if COMPACTED not in str(exc):
                raise
            compacted = await self._compacted_revision()
            raise Expired(f"continue token is for revision {revision}, compacted up to "
                          f"{compacted}; list again from the start", compacted) from None

    async def _compacted_revision(self) -> int:
        """etcd's compaction point. Not in any response but a watch's: a watch from
        revision 1 over every key answers with it at once, or with the first event
        when nothing is compacted."""
        call = self._watch.Watch()
        try:
            await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=b"\0", range_end=b"\0", start_revision=1)))
            async with asyncio.timeout(CALL_TIMEOUT):
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        return 0
                    if response.compact_revision:
                        return int(response.compact_revision)
                    if response.events:
                        return 0
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            raise StoreUnavailable(f"etcd at {self._where}: {exc}") from None
        finally:
            call.cancel()

    async def create(self, resource: str, obj: Object, *, lease_id: int | None = None,
                     fence: Fence | None = None) -> Object:
        namespace, name = _object_key(obj, f"create {resource}")
        key = self._key(resource, namespace, name)
        value = keys.encode(obj)
        failure: list[Any] = []
        response = await self._txn(
            self._fenced(fence, [_absent(key)], failure),
            [rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value,
                                                      lease=lease_id or 0))],
            failure, lease_id)
        self._check_fence(fence, response)
        if not response.succeeded:
            raise AlreadyExists(f"{_describe(resource, namespace, name)} already exists")
        self.recent.put(key, int(response.header.revision), value)
        return keys.decode(value, response.header.revision)

    async def update(self, resource: str, obj: Object, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        namespace, name = _object_key(obj, f"update {resource}")
        key = self._key(resource, namespace, name)
        value = keys.encode(obj)
        check = _exists(key) if expected_revision is None else _mod_equals(
            key, expected_revision)
        # ignore_lease: an update keeps the object's lease, as in the SQLite store
        failure = [_read(key)]
        response = await self._txn(
            self._fenced(fence, [check], failure),
            [rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value,
                                                      ignore_lease=True))],
            failure)
        self._check_fence(fence, response)
        if not response.succeeded:
            self._refused(response, resource, namespace, name, expected_revision)
        self.recent.put(key, int(response.header.revision), value)
        return keys.decode(value, response.header.revision)

    async def modify(self, resource: str, namespace: str, name: str, change: Change, *,
                     expected_revision: int) -> Object | None:
        """`Modifying.modify` as one transaction comparing the key's mod revision with
        ``expected_revision``, ``change`` applied to the value at that revision: the
        one `Recent` remembers when this store wrote or read it last (a renewal through
        the server that took the previous one), else read first. A refused compare is
        the `Conflict` (or `NotFound`) the read would have found: the transaction's
        failure branch reads the key in the same round trip."""
        key = self._key(resource, namespace, name)
        known = self.recent.get(key, expected_revision)
        if known is not None:
            self.modify_hits += 1
            current = keys.decode(known, expected_revision)
        else:
            self.modify_reads += 1
            current = await self.get(resource, namespace, name)
            revision = int(current["metadata"]["resourceVersion"])
            if revision != expected_revision:
                raise Conflict(f"{_describe(resource, namespace, name)} was modified "
                               f"(resourceVersion {revision}, expected "
                               f"{expected_revision}); read it again and retry",
                               current_revision=revision)
        new = change(current)
        if new is None:
            return None
        try:
            return await self.update(resource, new, expected_revision=expected_revision)
        except (Conflict, NotFound):
            self.recent.forget(key)
            raise

    async def delete(self, resource: str, namespace: str, name: str, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        key = self._key(resource, namespace, name)
        check = _exists(key) if expected_revision is None else _mod_equals(
            key, expected_revision)
        failure = [_read(key)]
        response = await self._txn(
            self._fenced(fence, [check], failure),
            [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key,
                                                                       prev_kv=True))],
            failure)
        self._check_fence(fence, response)
        self.recent.forget(key)
        if not response.succeeded:
            self._refused(response, resource, namespace, name, expected_revision)
        # the compare and the delete are one transaction: the key was there to delete
        deleted = response.responses[0].response_delete_range
        return keys.decode(deleted.prev_kvs[0].value, response.header.revision)

    @staticmethod
    def _refused(response: Any, resource: str, namespace: str, name: str,
                 expected_revision: int | None) -> None:
        what = _describe(resource, namespace, name)
        found = response.responses[0].response_range.kvs
        if not found:
            raise NotFound(f"{what} not found")
        current = int(found[0].mod_revision)
        raise Conflict(f"{what} was modified (resourceVersion {current}, expected "
                       f"{expected_revision}); read it again and retry",
                       current_revision=current)

    # -- watch and revisions -----------------------------------------------------------

    def watch(self, resource: str | None = None, namespace: str | None = None, *,
              since: int) -> AsyncGenerator[WatchEvent, None]:
        """See `Store.watch`. A generator, so a consumer that stops early can
        ``aclose()`` it to end its etcd watch at once."""
        if since < 0:
            raise ValueError(f"since: must be >= 0, got {since}")
        if resource is not None:
            keys.prefix_of(self._root, resource, namespace)  # bad names fail here
        return self._follow(resource, namespace, since)

    async def _follow(self, resource: str | None, namespace: str | None, since: int
                      ) -> AsyncGenerator[WatchEvent, None]:
        if self._closed or self._watch is None:
            raise StoreClosed("store is closed")
        async for event in follow(self._watch, self._root, resource, namespace, since,
                                  where=self._where, register=self._register):
            yield event

    def _register(self, call: Any) -> Callable[[], bool]:
        self._watches.add(call)
        call.add_done_callback(lambda _: self._watches.discard(call))
        return lambda: self._closed

    async def current_revision(self) -> int:
        response = await self._call(self._kv.Range, rpc.RangeRequest(
            key=self._root.encode(), limit=1, count_only=True))
        return int(response.header.revision)

    async def compact(self, revision: int) -> None:
        try:
            await self._call(self._kv.Compact, rpc.CompactionRequest(revision=revision))
        except StoreError as exc:
            if COMPACTED in str(exc):
                return  # already compacted further: a no-op, as in the SQLite store
            if FUTURE in str(exc):
                raise ValueError(f"cannot compact to revision {revision}: the current "
                                 f"revision is {await self.current_revision()}") from None
            raise
        self._compacted_hint = max(self._compacted_hint, revision)

    async def _maybe_compact(self, revision: int) -> None:
        """Keep ``keep_revisions`` of history: compact every ``keep/10`` writes, as the
        SQLite store does. Several servers may each do it; compacting to a revision
        already compacted is a no-op."""
        if not self._keep or self._compacting:
            return
        if revision - self._compacted_hint < self._keep + self._step:
            return
        self._compacting = True
        try:
            await self.compact(revision - self._keep)
            self._compacted_hint = max(self._compacted_hint, revision - self._keep)
        except StoreError as exc:
            log.warning("automatic compaction to %d failed: %s", revision - self._keep, exc)
        finally:
            self._compacting = False

    # -- leases --------------------------------------------------------------------------

    async def grant_lease(self, ttl: float) -> Lease:
        """A lease of ``ttl`` seconds, rounded up to whole seconds (etcd's unit)."""
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl: must be a positive number of seconds, got {ttl!r}")
        response = await self._call(self._lease.LeaseGrant,
                                    rpc.LeaseGrantRequest(TTL=math.ceil(ttl)))
        if response.error:
            raise StoreError(f"etcd at {self._where} refused the lease: {response.error}")
        return Lease(int(response.ID), float(response.TTL), float(response.TTL))

    async def keepalive(self, lease_id: int) -> Lease:
        """Renew over one long-lived keepalive stream (not one stream per renewal)."""
        if self._closed:
            raise StoreClosed("store is closed")
        async with self._keepalive_lock:
            for attempt in range(2):
                if self._keepalive is None:
                    self._keepalive = self._lease.LeaseKeepAlive()
                try:
                    await self._keepalive.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                    response = await asyncio.wait_for(self._keepalive.read(), CALL_TIMEOUT)
                    if response is grpc.aio.EOF:
                        raise StoreUnavailable(f"etcd at {self._where} ended the keepalive")
                    break
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, StoreUnavailable,
                        TimeoutError) as exc:
                    self._keepalive.cancel()
                    self._keepalive = None
                    if self._closed:
                        raise StoreClosed("store is closed") from None
                    if attempt:  # a fresh stream failed too
                        raise StoreUnavailable(f"etcd at {self._where}: keepalive of lease "
                                               f"{lease_id} failed: {exc}") from None
        if response.TTL <= 0:
            raise NotFound(f"lease {lease_id} not found (expired or revoked)")
        return Lease(lease_id, float(response.TTL), float(response.TTL))

    async def revoke_lease(self, lease_id: int) -> None:
        response = await self._call(self._lease.LeaseRevoke,
                                    rpc.LeaseRevokeRequest(ID=lease_id), lease_id)
        await self._maybe_compact(response.header.revision)

    async def lease_info(self, lease_id: int) -> Lease:
        response = await self._call(self._lease.LeaseTimeToLive,
                                    rpc.LeaseTimeToLiveRequest(ID=lease_id), lease_id)
        if response.TTL < 0:
            raise NotFound(f"lease {lease_id} not found (expired or revoked)")
        return Lease(lease_id, float(response.grantedTTL), float(response.TTL))

    # -- life cycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """End watches and the keepalive stream, then the channel. Leases stay in etcd
        (and expire there unless another server renews them)."""
        if self._closed:
            return
        self._closed = True
        for call in list(self._watches):
            call.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close(grace=1.0)


async def open_etcd_store(config: EtcdConfig, *,
                          keep_revisions: int = DEFAULT_KEEP_REVISIONS) -> EtcdStore:
    """Connect to the etcd cluster of ``config``; `StoreUnavailable` naming it if no
    member answers within `CALL_TIMEOUT`. ``keep_revisions`` is the history kept for
    watch resumption (0: leave compaction to etcd's own --auto-compaction)."""
    store = EtcdStore(config, keep_revisions=keep_revisions)
    await store._open()
    return store
