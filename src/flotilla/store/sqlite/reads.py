"""Reads: a small pool of read-only connections used off the event loop.

In WAL mode readers never block the writer nor each other, and each read runs in its
own transaction, so a multi-statement read (the revision plus the rows of a list) is
one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import queue
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flotilla.resources.labels import Selector
from flotilla.store.base import Expired, Object
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


@dataclass(frozen=True, slots=True)
class ContinueToken:
    """Where the next page starts: after key (namespace, name), for a list that began at
    ``revision``. Bound to the resource and namespace filter it was issued for."""

    revision: int
    resource: str
    namespace: str | None
    after: tuple[str, str]

    def encode(self) -> str:
        raw = json.dumps(
            {"v": 1, "rev": self.revision, "res": self.resource, "ns": self.namespace,
             "after": list(self.after)},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, resource: str, namespace: str | None) -> ContinueToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            parsed = cls(int(data["rev"]), str(data["res"]), data["ns"],
                         (str(data["after"][0]), str(data["after"][1])))
        except (binascii.Error, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"malformed continue token {token[:40]!r}") from exc
        if parsed.resource != resource or parsed.namespace != namespace:
            raise ValueError("continue token was issued for a different list (resource or"
                             " namespace differ)")
        return parsed


@dataclass(slots=True)
class Page:
    items: list[Object]
    revision: int
    next_token: ContinueToken | None


def list_page(
    conn: sqlite3.Connection,
    resource: str,
    namespace: str | None,
    selector: Selector | None,
    limit: int,
    token: ContinueToken | None,
) -> Page:
    """One page, in (namespace, name) order.

    A first page reflects exactly the revision it returns. Later pages read the rows
    after the token's key as they are now, and report the first page's revision: a
    watch from that revision replays every change made meanwhile, so list + watch still
    converges (see docs/components/store.md, "Paging").
    """
    meta = read_meta(conn)
    if token is not None and token.revision < meta["compacted"]:
        raise Expired(
            f"continue token is for revision {token.revision}, compacted up to"
            f" {meta['compacted']}; list again from the start",
            meta["compacted"],
        )
    revision = token.revision if token is not None else meta["revision"]
    sql = "SELECT namespace, name, object FROM objects WHERE resource = ?"
    args: list[Any] = [resource]
    if namespace is not None:
        sql += " AND namespace = ?"
        args.append(namespace)
    if token is not None:
        sql += " AND (namespace, name) > (?, ?)"
        args.extend(token.after)
    sql += " ORDER BY namespace, name"
    items: list[Object] = []
    keys: list[tuple[str, str]] = []
    for ns, name, text in conn.execute(sql, args):
        obj = json.loads(text)
        if selector is not None and not selector.matches(obj.get("metadata", {}).get("labels")):
            continue
        if limit and len(items) == limit:
            # One more match exists: this page is full and another one follows.
            return Page(items, revision, ContinueToken(revision, resource, namespace, keys[-1]))
        items.append(obj)
        keys.append((ns, name))
    return Page(items, revision, None)


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
