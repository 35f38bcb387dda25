"""Over the real application (in-process ASGI, real SQLite store under the same
encryption and fencing layers `flotilla.api.server` puts under its registry): a
heartbeat PUT that only moves ``spec.renewTime`` is served without a store read before
the write, and a PUT that changes anything else still gets the general read-modify-write.
(A layer without ``modify`` once silently turned every renewal into the general path.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from flotilla.api.app import create_app
from flotilla.api.auth import Authenticator, ensure_admin_token
from flotilla.api.metrics import ApiMetrics
from flotilla.api.registry import Registry
from flotilla.api.routes import ApiContext
from flotilla.pki import PkiLayout
from flotilla.store.encrypted import EncryptedStore
from flotilla.store.envelope import Envelope
from flotilla.store.fence import FencingStore
from flotilla.store.sqlite import open_sqlite_store

PATH = "/apis/coordination.flotilla.io/v1alpha1/namespaces/flotilla-system/leases"


class _CountingGets:
    """The real store, counting its reads."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get(self, resource: str, namespace: str, name: str) -> Any:
        self.gets += 1
        return await self._store.get(resource, namespace, name)


async def test_a_renewal_put_skips_the_read(tmp_path: Path) -> None:
    token = ensure_admin_token(tmp_path)
    store = await open_sqlite_store(tmp_path)
    counting = _CountingGets(store)
    try:
        envelope = Envelope.load_or_create(PkiLayout(tmp_path).secrets_key)
        layered = FencingStore(EncryptedStore(counting, envelope))  # as the server does
        ctx = ApiContext(Registry(layered), Authenticator.from_data_dir(tmp_path),
                         ApiMetrics(), 1024 * 1024)
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            r = await http.post(PATH, json={
                "apiVersion": "coordination.flotilla.io/v1alpha1", "kind": "Lease",
                "metadata": {"name": "east-1", "namespace": "flotilla-system"},
                "spec": {"holderIdentity": "agent-a", "leaseDurationSeconds": 3,
                         "renewTime": "2026-01-01T00:00:00Z"}})
            assert r.status_code == 201, r.text
            lease = r.json()
            lease["spec"]["renewTime"] = "2026-01-01T00:00:01Z"
            before = counting.gets
            r = await http.put(f"{PATH}/east-1", json=lease)
            assert r.status_code == 200, r.text
            assert counting.gets == before  # written in one store step
            renewed = r.json()
            assert renewed["spec"]["renewTime"] == "2026-01-01T00:00:01Z"
            assert renewed["metadata"]["annotations"]["flotilla.io/changed-by"] == "admin"
            got = (await http.get(f"{PATH}/east-1")).json()
            assert got == renewed

            stale = dict(lease)  # the old resourceVersion: a 409, as before
            r = await http.put(f"{PATH}/east-1", json=stale)
            assert r.status_code == 409, r.text

            renewed["spec"]["holderIdentity"] = "agent-b"  # a takeover: general path
            before = counting.gets
            r = await http.put(f"{PATH}/east-1", json=renewed)
            assert r.status_code == 200, r.text
            assert counting.gets > before
            assert r.json()["spec"]["holderIdentity"] == "agent-b"
    finally:
        await store.close()
