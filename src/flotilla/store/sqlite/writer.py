"""The single writer thread and its group commit.

Every write is a small function run against a `Txn` inside the writer thread. The
thread takes whatever is queued (up to `MAX_BATCH`), runs it all in ONE transaction,
commits once (one fsync), and only then hands results back to the event loop. Under
load the queue fills while the previous fsync runs, so batches grow by themselves and
durability costs one fsync per batch rather than per write; with a single writer there
is no "database is locked" and revisions are assigned in commit order for free.

Each write runs under its own savepoint: one that raises (`Conflict`, a bad object, an
SQLite error) is undone alone and fails alone. If the COMMIT itself fails, nothing of
the batch was stored and every waiter gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flotilla.store.base import EventType, InsufficientStorage, StoreClosed, StoreError
from flotilla.store.metrics import BATCH_BUCKETS, COMMIT_BUCKETS, Buckets

T = TypeVar("T")

#: Upper bound on writes per transaction, so one batch cannot hold waiters for long.
MAX_BATCH = 2048


@dataclass(frozen=True, slots=True)
class RawEvent:
    """A committed change as the watch hub sees it: the object stays JSON text until a
    consumer takes it, so each consumer decodes its own private copy."""

    revision: int
    type: EventType
    resource: str
    namespace: str
    name: str
    object: str


@dataclass(slots=True)
class Txn:
    """What a write function may touch: the connection, inside an open transaction."""

    conn: sqlite3.Connection
    revision: int
    compacted: int
    next_lease: int
    events: list[RawEvent] = field(default_factory=list)
    #: Set when the disk is below the store's reserve, to the reason: writes that would
    #: grow the objects table are then refused (`flotilla.store.sqlite.ops`).
    low_space: str | None = None

    def bump(self) -> int:
        self.revision += 1
        return self.revision

    def record(
        self, revision: int, type_: EventType, resource: str, namespace: str, name: str,
        text: str, prev: str | None,
    ) -> None:
        """Log a change. ``prev`` (the stored text it replaced, None for ADDED) lets a
        paged list rebuild the state at an earlier revision without MVCC tables."""
        self.conn.execute(
            "INSERT INTO events(revision, type, resource, namespace, name, object, prev)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (revision, type_, resource, namespace, name, text, prev),
        )
        self.events.append(RawEvent(revision, type_, resource, namespace, name, text))


@dataclass(slots=True)
class _Job(Generic[T]):
    op: Callable[[Txn], T]
    future: asyncio.Future[T]


@dataclass(slots=True)
class Committed:
    """Handed to the loop after each commit, in commit order."""

    events: list[RawEvent]
    revision: int
    compacted: int
    outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics and the benchmark: ``writes / batches`` is the mean batch
    size, i.e. how many writes share each fsync."""

    batches: int = 0
    writes: int = 0
    #: commit times and batch sizes for /metrics (`flotilla.store.metrics`)
    commit_seconds: Buckets = field(default_factory=lambda: Buckets(COMMIT_BUCKETS))
    batch_size: Buckets = field(default_factory=lambda: Buckets(BATCH_BUCKETS))


_STOP = object()


class GroupCommitWriter:
    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        on_commit: Callable[[Committed], None],
        *,
        revision: int,
        compacted: int,
        next_lease: int,
        keep_revisions: int,
        space_check: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._conn = conn
        self._space_check = space_check
        self._loop = loop
        self._on_commit = on_commit
        self._state = (revision, compacted, next_lease)
        self._keep = keep_revisions
        self._queue: queue.SimpleQueue[_Job[Any] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="flotilla-store-writer",
                                        daemon=True)
        self._closed = False
        self.stats = WriterStats()

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Callable[[Txn], T]) -> asyncio.Future[T]:
        if self._closed:
            raise StoreClosed("store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(op, future))
        return future

    async def stop(self) -> None:
        """Finish every write queued so far, then end the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- writer thread -------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            jobs: list[_Job[Any]] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Job)
                jobs.append(item)
                if len(jobs) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                self._commit(jobs)
        self._conn.close()  # by the thread that owns it, after the last commit

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        revision, compacted, next_lease = self._state
        txn = Txn(self._conn, revision, compacted, next_lease)
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        started = time.perf_counter()
        try:
            txn.low_space = self._space_check()
            self._conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                outcomes.append((job.future, *self._run_one(txn, job)))
            self._auto_compact(txn)
            self._conn.execute(
                "UPDATE meta SET value = CASE key WHEN 'revision' THEN ? "
                "WHEN 'compacted' THEN ? ELSE ? END",
                (txn.revision, txn.compacted, txn.next_lease),
            )
            self._conn.execute("COMMIT")
        except Exception as exc:  # keep the thread alive whatever happens: fail the batch
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            failure = sqlite_failure(exc, "write failed, nothing of this batch was stored")
            outcomes = [(job.future, None, failure) for job in jobs]
            txn = Txn(self._conn, revision, compacted, next_lease)
        self._state = (txn.revision, txn.compacted, txn.next_lease)
        self.stats.batches += 1
        self.stats.writes += len(jobs)
        self.stats.commit_seconds.observe(time.perf_counter() - started)
        self.stats.batch_size.observe(len(jobs))
        committed = Committed(txn.events, txn.revision, txn.compacted, outcomes)
        # RuntimeError: the loop is gone, so nobody is left waiting; the data is committed.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_commit, committed)

    def _run_one(self, txn: Txn, job: _Job[Any]) -> tuple[Any, BaseException | None]:
        """Run one write under a savepoint, so that whatever it raises (a refusal, a bad
        object, a bug) undoes exactly its own changes and fails only its own caller."""
        before = (txn.revision, txn.compacted, txn.next_lease, len(txn.events))
        self._conn.execute("SAVEPOINT op")
        try:
            result = job.op(txn)
        except Exception as exc:
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            txn.revision, txn.compacted, txn.next_lease, kept = before
            del txn.events[kept:]
            if isinstance(exc, sqlite3.Error):
                exc = sqlite_failure(exc, "write failed")
            return None, exc
        self._conn.execute("RELEASE op")
        return result, None

    def _auto_compact(self, txn: Txn) -> None:
        """Keep the log to about `keep` revisions, trimming in steps of a tenth of it so
        the DELETE is amortised rather than run on every batch."""
        if self._keep <= 0:
            return
        step = max(self._keep // 10, 1)
        if txn.revision - txn.compacted >= self._keep + step:
            compact_log(txn, txn.revision - self._keep)


def sqlite_failure(exc: Exception, what: str) -> StoreError:
    """A store error for an SQLite failure; a full disk (SQLITE_FULL) says so, as the
    reserve check does, so the caller gets 507 rather than an opaque 500."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return InsufficientStorage(f"{what}: the disk under the store is full ({exc})")
    return StoreError(f"{what}: {exc}")


def compact_log(txn: Txn, revision: int) -> None:
    if revision <= txn.compacted:
        return
    txn.conn.execute("DELETE FROM events WHERE revision <= ?", (revision,))
    txn.compacted = revision
