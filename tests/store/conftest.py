"""The store conformance suite's fixtures: every behaviour test runs on both stores.

``store`` is parametrized over the embedded SQLite store (a real file in the test's temp
dir) and the etcd store (a real etcd, one per session: ``etcd_server`` in
tests/conftest.py), so the two implementations cannot drift apart. Each etcd test gets
its own key prefix and deletes it afterwards. Revisions are etcd-wide, so a test compares
revisions with the store's revision when the test began
(``base = await store.current_revision()``), never with literal numbers; for SQLite that
base is 0.

``open_store`` opens another store on the same backend and place, for tests of close and
reopen. Tests of what only SQLite has (disk reserve, backup, integrity, group commit)
use ``sqlite_store`` or `open_sqlite_store` directly.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aetcd
import pytest

from flotilla.store.base import Store
from flotilla.store.etcd import EtcdStore, open_etcd_store, parse_etcd_url
from flotilla.store.sqlite import SqliteStore, open_sqlite_store
from tests.etcd_server import HOST, EtcdProcess

BACKENDS = ["sqlite", "etcd"]
OpenStore = Callable[..., Awaitable[Store]]
_prefixes = itertools.count()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[OpenStore]:
    """``await open_store(**options)``: a new store on this test's backend and place;
    every one still open at the end is closed (and the etcd prefix deleted)."""
    opened: list[Store] = []
    prefix = f"/test/{next(_prefixes)}/"
    etcd: EtcdProcess | None = (request.getfixturevalue("etcd_server")
                                if backend == "etcd" else None)

    async def open_(**options: Any) -> Store:
        store: Store
        if etcd is None:
            store = await open_sqlite_store(tmp_path / "data", **options)
        else:
            options.pop("watch_buffer", None)  # etcd streams are flow-controlled instead
            store = await open_etcd_store(parse_etcd_url(etcd.url, prefix=prefix), **options)
        opened.append(store)
        return store

    try:
        yield open_
    finally:
        for store in opened:
            await store.close()
        if etcd is not None:
            await _delete_prefix(etcd, prefix)


async def _delete_prefix(etcd: EtcdProcess, prefix: str) -> None:
    async with aetcd.Client(HOST, etcd.port) as client:
        await client.delete_prefix(prefix.encode())


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await open_sqlite_store(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


def is_etcd(store: Store) -> bool:
    return isinstance(store, EtcdStore)


def cm(name: str, namespace: str = "default", **labels: str) -> dict[str, object]:
    """A small ConfigMap-shaped object."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": name},
    }
