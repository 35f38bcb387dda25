"""`SqliteStore`: the embedded implementation of the `Store` seam.

One process owns the data directory (flock). Writes go to the single group-commit
writer thread; reads to a small pool of read-only connections; both off the event
loop. After each commit the writer hands the batch to the loop, which publishes the
events to watchers *before* resolving the writers' futures, so by the time a write is
acknowledged its event is already on its way to every live watcher.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from flotilla.resources.labels import Selector
from flotilla.store.base import (
    Change,
    CorruptStore,
    Fence,
    Lease,
    ListResult,
    NotFound,
    Object,
    StoreClosed,
    WatchEvent,
)
from flotilla.store.metrics import StoreTelemetry
from flotilla.store.paging import ContinueToken
from flotilla.store.sqlite import ops, reads
from flotilla.store.sqlite.backup import check_integrity, restore_hint
from flotilla.store.sqlite.checkpoint import Checkpointer
from flotilla.store.sqlite.disk import DEFAULT_DISK_RESERVE, DiskReserve
from flotilla.store.sqlite.leases import LeaseKeeper
from flotilla.store.sqlite.lock import DataDirLock
from flotilla.store.sqlite.schema import DB_FILE, connect, read_meta
from flotilla.store.sqlite.watch import WatchHub, follow
from flotilla.store.sqlite.writer import (
    Committed,
    GroupCommitWriter,
    RawEvent,
    Txn,
    WriterStats,
)

T = TypeVar("T")
#: Spelled out here because the class's own ``list`` method shadows the builtin.
_EventPage = list[RawEvent]

#: Default history kept for watch resumption, in revisions.
DEFAULT_KEEP_REVISIONS = 100_000
#: Default per-watcher live buffer before it falls back to reading the log.
DEFAULT_WATCH_BUFFER = 1024


@dataclass(frozen=True, slots=True)
class StoreStats:
    #: Transactions committed (one fsync each) and the writes they carried.
    batches: int
    writes: int
    #: Live watch subscriptions, and how often one overflowed and fell back to the log.
    watchers: int
    watch_overflows: int
    leases: int


def _key(obj: Object, what: str) -> tuple[str, str]:
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


def _load(data_dir: Path) -> tuple[sqlite3.Connection, dict[str, int], dict[int, float]]:
    """Open the writer connection (creating the schema) and read what survives a
    restart: the revision counters and the granted leases. Blocking: run off the loop.

    A damaged file is refused here, before the server answers anything from it."""
    try:
        conn = connect(data_dir, writer=True)
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(f"the store file {data_dir / DB_FILE} is damaged: {exc}; "
                           f"{restore_hint(data_dir)}") from None
    try:
        try:
            check_integrity(conn, data_dir / DB_FILE)
        except CorruptStore as exc:
            raise CorruptStore(f"{exc}; {restore_hint(data_dir)}") from None
        meta = read_meta(conn)
        conn.execute("PRAGMA wal_autocheckpoint=0")  # `Checkpointer` does it, off the path
        leases = {int(i): float(t) for i, t in conn.execute("SELECT id, ttl FROM leases")}
    except BaseException:
        conn.close()
        raise
    return conn, meta, leases


class SqliteStore:
    """Use `open_sqlite_store`; the constructor does no I/O."""

    def __init__(
        self,
        data_dir: Path,
        *,
        keep_revisions: int = DEFAULT_KEEP_REVISIONS,
        watch_buffer: int = DEFAULT_WATCH_BUFFER,
        readers: int = 2,
        disk_reserve: int = DEFAULT_DISK_RESERVE,
    ) -> None:
        if watch_buffer < 1:
            raise ValueError(f"watch_buffer: must be >= 1, got {watch_buffer}")
        if readers < 1:
            raise ValueError(f"readers: must be >= 1, got {readers}")
        self.data_dir = data_dir
        self._keep = keep_revisions
        self._readers = readers
        self._lock = DataDirLock(data_dir)
        self._disk = DiskReserve(data_dir, disk_reserve)
        self._hub = WatchHub(watch_buffer)
        self._leases = LeaseKeeper(self.revoke_lease)
        self._revision = 0
        self._writer: GroupCommitWriter | None = None
        self._checkpoints = Checkpointer(data_dir)
        self._reads: reads.ReadPool | None = None
        self._closed = False
        self._closing = False

    async def _open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            conn, meta, leases = await asyncio.to_thread(_load, self.data_dir)
            try:
                self._reads = reads.ReadPool(self.data_dir, self._readers)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._lock.release()
            raise
        self._revision = meta["revision"]
        self._writer = GroupCommitWriter(
            conn, asyncio.get_running_loop(), self._on_commit,
            revision=meta["revision"], compacted=meta["compacted"],
            next_lease=meta["next_lease"], keep_revisions=self._keep,
            space_check=self._disk.check,
        )
        self._writer.start()
        self._checkpoints.start()
        self._leases.start(leases)

    # -- plumbing --------------------------------------------------------------------

    def _on_commit(self, committed: Committed) -> None:
        """On the loop, in commit order: publish first, then acknowledge."""
        self._revision = committed.revision
        if committed.events:
            self._hub.publish(committed.events)
        for future, result, error in committed.outcomes:
            if future.done():  # the caller was cancelled; the write still happened
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    async def _write(self, op: Callable[[Txn], T]) -> T:
        if self._closed or self._writer is None:
            raise StoreClosed("store is closed")
        return await self._writer.submit(op)

    def _pool(self) -> reads.ReadPool:
        if self._closed or self._reads is None:
            raise StoreClosed("store is closed")
        return self._reads

    # -- objects -----------------------------------------------------------------------

    async def get(self, resource: str, namespace: str, name: str) -> Object:
        text = await self._pool().run(
            partial(reads.get_object, resource=resource, namespace=namespace, name=name)
        )
        if text is None:
            where = f"{namespace}/{name}" if namespace else name
            raise NotFound(f"{resource} {where} not found")
        result: Object = json.loads(text)
        return result

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
        token = (
            ContinueToken.decode(continue_token, resource, namespace)
            if continue_token else None
        )
        if selector is not None and selector.empty:
            selector = None
        page = await self._pool().run(
            partial(reads.list_page, resource=resource, namespace=namespace,
                    selector=selector, limit=limit, token=token)
        )
        next_token = page.next_token.encode() if page.next_token else None
        return ListResult(page.items, page.revision, next_token)

    async def create(
        self, resource: str, obj: Object, *, lease_id: int | None = None,
        fence: Fence | None = None,
    ) -> Object:
        namespace, name = _key(obj, f"create {resource}")
        if lease_id is not None:
            self._leases.info(lease_id)  # fail fast on an expired lease
        text: str = await self._write(
            partial(ops.create, resource=resource, namespace=namespace, name=name, obj=obj,
                    lease_id=lease_id, fence=fence)
        )
        result: Object = json.loads(text)
        return result

    async def update(
        self, resource: str, obj: Object, *, expected_revision: int | None = None,
        fence: Fence | None = None,
    ) -> Object:
        namespace, name = _key(obj, f"update {resource}")
        text: str = await self._write(
            partial(ops.update, resource=resource, namespace=namespace, name=name, obj=obj,
                    expected_revision=expected_revision, fence=fence)
        )
        result: Object = json.loads(text)
        return result

    async def modify(self, resource: str, namespace: str, name: str, change: Change, *,
                     expected_revision: int) -> Object | None:
        """See `Modifying.modify`: one writer-thread step, no read before it."""
        text: str | None = await self._write(
            partial(ops.modify, resource=resource, namespace=namespace, name=name,
                    change=change, expected_revision=expected_revision)
        )
        if text is None:
            return None
        result: Object = json.loads(text)
        return result

    async def delete(
        self, resource: str, namespace: str, name: str, *, expected_revision: int | None = None,
        fence: Fence | None = None,
    ) -> Object:
        text: str = await self._write(
            partial(ops.delete, resource=resource, namespace=namespace, name=name,
                    expected_revision=expected_revision, fence=fence)
        )
        result: Object = json.loads(text)
        return result

    # -- watch and revisions -----------------------------------------------------------

    async def _read_log(
        self, after: int, resource: str | None, namespace: str | None, limit: int
    ) -> _EventPage:
        return await self._pool().run(
            partial(reads.read_events, after=after, resource=resource, namespace=namespace,
                    limit=limit)
        )

    def watch(
        self,
        resource: str | None = None,
        namespace: str | None = None,
        *,
        since: int,
    ) -> AsyncGenerator[WatchEvent, None]:
        """See `Store.watch`. A generator, so a consumer that stops early can
        ``aclose()`` it (or use `contextlib.aclosing`) to unsubscribe at once."""
        if since < 0:
            raise ValueError(f"since: must be >= 0, got {since}")
        return follow(self._hub, self._read_log, resource, namespace, since)

    def stats(self) -> StoreStats:
        """A snapshot of counters, for metrics and the benchmark."""
        writer = self._writer.stats if self._writer is not None else WriterStats()
        return StoreStats(writer.batches, writer.writes, len(self._hub),
                          self._hub.overflows, self._leases.count)

    def telemetry(self) -> StoreTelemetry:
        """Commit times, batch sizes and watch lag for /metrics (`flotilla.store.metrics`)."""
        writer = self._writer.stats if self._writer is not None else WriterStats()
        lag, backlog = self._hub.lag()
        return StoreTelemetry(writer.commit_seconds, writer.batch_size, self._hub.overflows,
                              lag, backlog)

    async def current_revision(self) -> int:
        return self._revision

    async def compact(self, revision: int) -> None:
        await self._write(partial(ops.compact, revision=revision))

    # -- leases --------------------------------------------------------------------------

    async def grant_lease(self, ttl: float) -> Lease:
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl: must be a positive number of seconds, got {ttl!r}")
        lease_id: int = await self._write(partial(ops.grant_lease, ttl=float(ttl)))
        return self._leases.add(lease_id, float(ttl))

    async def keepalive(self, lease_id: int) -> Lease:
        return self._leases.renew(lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        self._leases.forget(lease_id)
        await self._write(partial(ops.revoke_lease, lease_id=lease_id))

    async def lease_info(self, lease_id: int) -> Lease:
        return self._leases.info(lease_id)

    # -- life cycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop expiring leases, finish queued writes, end watches, release the dir."""
        if self._closing:
            return
        self._closing = True
        await self._leases.stop()
        if self._writer is not None:
            await self._writer.stop()
        await asyncio.to_thread(self._checkpoints.stop)
        self._closed = True
        self._hub.close()
        if self._reads is not None:
            await self._reads.close()
        self._lock.release()


async def open_sqlite_store(
    path: Path,
    *,
    keep_revisions: int = DEFAULT_KEEP_REVISIONS,
    watch_buffer: int = DEFAULT_WATCH_BUFFER,
    disk_reserve: int = DEFAULT_DISK_RESERVE,
) -> SqliteStore:
    """Open (creating if needed) the store in data directory ``path``.

    ``keep_revisions`` is the change history kept for watch resumption (0 turns
    automatic compaction off); ``watch_buffer`` the live events a watcher may have
    pending before it falls back to reading the log; ``disk_reserve`` the free bytes kept
    on its disk (below it, writes that grow the store get `InsufficientStorage`; 0 turns
    the check off). Raises `DataDirLocked` when another store holds the directory and
    `CorruptStore` when its file fails the integrity check.
    """
    store = SqliteStore(path, keep_revisions=keep_revisions, watch_buffer=watch_buffer,
                        disk_reserve=disk_reserve)
    await store._open()
    return store
