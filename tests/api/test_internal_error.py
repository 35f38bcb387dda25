"""A handler bug answers 500 with a Status and the server keeps serving.

No request can make the real store fail on purpose, so this one test injects a fault
into a real SQLite store and drives the real application in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from flotilla.api.app import create_app
from flotilla.api.auth import Authenticator, ensure_admin_token
from flotilla.api.metrics import ApiMetrics
from flotilla.api.registry import Registry
from flotilla.api.routes import ApiContext
from flotilla.store.sqlite import open_sqlite_store


class _FaultyGet:
    """The real store, except that ``get`` has a bug."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get(self, resource: str, namespace: str, name: str) -> Any:
        raise RuntimeError("boom")


async def test_handler_bug_is_a_500_status(tmp_path: Path) -> None:
    token = ensure_admin_token(tmp_path)
    store = await open_sqlite_store(tmp_path)
    try:
        ctx = ApiContext(Registry(_FaultyGet(store)), Authenticator.from_data_dir(tmp_path),
                         ApiMetrics(), 1024 * 1024)
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            r = await http.get("/api/v1/namespaces/default/configmaps/x")
            assert r.status_code == 500
            assert r.json()["reason"] == "InternalError"
            assert "boom" not in r.text, "internals stay in the server log"
            assert (await http.get("/api/v1/namespaces/default/configmaps")).status_code == 200
    finally:
        await store.close()
