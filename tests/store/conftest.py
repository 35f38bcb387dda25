"""Every test gets a real store on a real SQLite file in its own temp dir, closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.store.sqlite import SqliteStore, open_sqlite_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await open_sqlite_store(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


def cm(name: str, namespace: str = "default", **labels: str) -> dict[str, object]:
    """A small ConfigMap-shaped object."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": name},
    }
