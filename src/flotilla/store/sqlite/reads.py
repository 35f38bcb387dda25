"""Reads: a small pool of read-only connections used off the event loop.

In WAL mode readers never block the writer nor each other, and each read runs in its
own transaction, so a multi-statement read (the revision plus the rows of a list) is
one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import queue
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flotilla.resources.labels import Selector
from flotilla.store.base import Expired, Object
from flotilla.store.paging import ContinueToken
from flotilla.store.sqlite.schema import connect, read_meta
from flotilla.store.sqlite.writer import RawEvent

T = TypeVar("T")


class ReadPool:
    """``size`` threads, each borrowing one of ``size`` connections per call."""

    def __init__(self, data_dir: Path, size: int = 2) -> None:
        self._all = [connect(data_dir, writer=False) for _ in range(size)]
        self._free: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        for conn in self._all:
            self._free.put(conn)
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="flotilla-store-read")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._free.get()  # never waits: as many connections as threads
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        finally:
            self._free.put(conn)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True)
        for conn in self._all:
            conn.close()


def get_object(conn: sqlite3.Connection, resource: str, namespace: str, name: str) -> str | None:
    row = conn.execute(
        "SELECT object FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
        (resource, namespace, name),
    ).fetchone()
    return None if row is None else str(row[0])


@dataclass(slots=True)
class Page:
    items: list[Object]
    revision: int
    next_token: ContinueToken | None


Key = tuple[str, str]


def list_page(
    conn: sqlite3.Connection,
    resource: str,
    namespace: str | None,
    selector: Selector | None,
    limit: int,
    token: ContinueToken | None,
) -> Page:
    """One page, in (namespace, name) order, of the state at the list's revision.

    The first page reads the current rows (one snapshot with the revision). A later
    page must show the state at the *first* page's revision R, like an etcd range read
    at R, although keys may have changed since: for every key changed after R, the
    first logged change after R tells its state at R (absent if that change was its
    creation, else the value that change replaced). The log after R is complete
    because R is not older than the compaction point (else `Expired`).
    """
    meta = read_meta(conn)
    if token is not None and token.revision < meta["compacted"]:
        raise Expired(
            f"continue token is for revision {token.revision}, compacted up to"
            f" {meta['compacted']}; list again from the start",
            meta["compacted"],
        )
    revision = token.revision if token is not None else meta["revision"]
    after = token.after if token is not None else None
    changed = _state_before_changes(conn, resource, namespace, revision, after)
    unchanged = (
        (key, text) for key, text in _current_rows(conn, resource, namespace, after)
        if key not in changed
    )
    as_of_r = sorted((key, text) for key, text in changed.items() if text is not None)
    items: list[Object] = []
    last: Key | None = None
    for key, text in heapq.merge(unchanged, as_of_r):
        obj = json.loads(text)
        if selector is not None and not selector.matches(obj.get("metadata", {}).get("labels")):
            continue
        if limit and len(items) == limit:
            # One more match exists: this page is full and another one follows.
            assert last is not None
            return Page(items, revision, ContinueToken(revision, resource, namespace, last))
        items.append(obj)
        last = key
    return Page(items, revision, None)


def _key_filter(namespace: str | None, after: Key | None) -> tuple[str, list[Any]]:
    sql, args = "", []
    if namespace is not None:
        sql += " AND namespace = ?"
        args.append(namespace)
    if after is not None:
        sql += " AND (namespace, name) > (?, ?)"
        args.extend(after)
    return sql, args


def _current_rows(
    conn: sqlite3.Connection, resource: str, namespace: str | None, after: Key | None
) -> Iterator[tuple[Key, str]]:
    where, args = _key_filter(namespace, after)
    rows = conn.execute(
        "SELECT namespace, name, object FROM objects WHERE resource = ?" + where
        + " ORDER BY namespace, name",
        [resource, *args],
    )
    for ns, name, text in rows:
        yield (ns, name), text


def _state_before_changes(
    conn: sqlite3.Connection, resource: str, namespace: str | None, revision: int,
    after: Key | None,
) -> dict[Key, str | None]:
    """For each key changed after ``revision``: its stored text at ``revision``, or None
    if it did not exist then."""
    where, args = _key_filter(namespace, after)
    state: dict[Key, str | None] = {}
    rows = conn.execute(
        "SELECT namespace, name, type, prev FROM events WHERE revision > ? AND resource = ?"
        + where + " ORDER BY revision",
        [revision, resource, *args],
    )
    for ns, name, type_, prev in rows:
        key = (ns, name)
        if key not in state:  # only the first change after `revision` matters
            state[key] = None if type_ == "ADDED" else prev
    return state


def read_events(
    conn: sqlite3.Connection,
    after: int,
    resource: str | None,
    namespace: str | None,
    limit: int,
) -> list[RawEvent]:
    """Up to ``limit`` logged changes with revision > ``after``, oldest first."""
    compacted = read_meta(conn)["compacted"]
    if after < compacted:
        raise Expired(
            f"revision {after} is compacted (history kept from {compacted}); list again"
            " and watch from the list's revision",
            compacted,
        )
    sql = "SELECT revision, type, resource, namespace, name, object FROM events WHERE revision > ?"
    args: list[Any] = [after]
    if resource is not None:
        sql += " AND resource = ?"
        args.append(resource)
    if namespace is not None:
        sql += " AND namespace = ?"
        args.append(namespace)
    sql += " ORDER BY revision LIMIT ?"
    args.append(limit)
    return [RawEvent(*row) for row in conn.execute(sql, args)]
