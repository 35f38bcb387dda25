"""etcd members dying under a real `flotilla server` (issue 15): three real etcd
processes, one server on all three (``--store etcd://m0,m1,m2``), writes over HTTPS.

- one member SIGKILLed while 8 writers create objects: every create that got a 201 is
  readable afterwards, and creates keep being acknowledged after the kill;
- two members killed: a create fails with a 503 Status naming etcd within a bounded
  time (no quorum), and creates succeed again once one member is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.serverproc import ServerProcess, api_only_args
from tests.etcd_server import EtcdCluster, start_etcd_cluster

NS = "members"
WRITERS = 8
#: Creates per writer at most, and seconds the whole run may take: every loop bounded.
MAX_PER_WRITER = 300
RUN_SECONDS = 90.0


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_etcd_cluster(tmp_path / "etcd")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def server(etcd_cluster: EtcdCluster, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", "--store", f"{etcd_cluster.url}/members/",
                         *api_only_args())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS}, "data": {"n": name}}


def api(server: ServerProcess, timeout: float = 30.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, verify=server.verify, timeout=timeout,
                             headers={"Authorization": f"Bearer {server.token}"})


PATH = f"/api/v1/namespaces/{NS}/configmaps"


async def test_one_member_killed_during_writes_loses_no_acknowledged_write(
    server: ServerProcess, etcd_cluster: EtcdCluster,
) -> None:
    acked: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    deadline = time.monotonic() + RUN_SECONDS

    async def writer(client: httpx.AsyncClient, w: int) -> None:
        for n in range(MAX_PER_WRITER):
            if stop.is_set() or time.monotonic() > deadline:
                return
            name = f"w{w}-{n}"
            try:
                r = await client.post(PATH, json=configmap(name))
            except httpx.HTTPError as exc:  # not acknowledged: may or may not be there
                errors.append(f"{name}: {exc!r}")
                continue
            if r.status_code == 201:
                acked.append(name)
            else:
                errors.append(f"{name}: {r.status_code} {r.text[:200]}")

    async with api(server) as client:
        tasks = [asyncio.create_task(writer(client, w)) for w in range(WRITERS)]
        try:
            await _until(lambda: len(acked) >= 40, "40 acknowledged creates")
            # m0 is the first endpoint: the member the server's channel picked.
            await asyncio.to_thread(etcd_cluster.kill, 0)
            at_kill = len(acked)
            await _until(lambda: len(acked) >= at_kill + 40,
                         f"40 creates acknowledged after the kill (errors: {errors[-3:]})")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        listed = await client.get(PATH)
    assert listed.status_code == 200, listed.text
    names = {item["metadata"]["name"] for item in listed.json()["items"]}
    lost = [name for name in acked if name not in names]
    assert lost == [], f"{len(lost)} acknowledged creates lost: {lost[:10]}"
    assert len(acked) >= at_kill + 40


async def test_two_members_killed_writes_get_503_then_resume(
    server: ServerProcess, etcd_cluster: EtcdCluster,
) -> None:
    async with api(server) as client:
        first = await client.post(PATH, json=configmap("before"))
        assert first.status_code == 201, first.text
        await asyncio.to_thread(etcd_cluster.kill, 0)
        await asyncio.to_thread(etcd_cluster.kill, 1)
        started = time.monotonic()
        refused: httpx.Response | None = None
        for n in range(20):  # bounded in count and, below, in time
            r = await client.post(PATH, json=configmap(f"no-quorum-{n}"))
            assert r.status_code != 201, "a create was acknowledged without quorum"
            if r.status_code == 503:
                refused = r
                break
            assert time.monotonic() - started < 60, f"no 503 after 60 s: {r.status_code}"
        assert refused is not None
        elapsed = time.monotonic() - started
        status = refused.json()
        assert status["kind"] == "Status", status
        assert status["code"] == 503, status
        assert "etcd" in status["message"], status["message"]
        assert "no quorum" in status["message"], status["message"]
        assert elapsed < 40, f"the 503 took {elapsed:.1f}s"  # generous: ~10 s expected

        await asyncio.to_thread(etcd_cluster.revive, 0)
        resumed = None
        back = time.monotonic()
        for n in range(60):
            r = await client.post(PATH, json=configmap(f"after-{n}"))
            if r.status_code == 201:
                resumed = r
                break
            assert time.monotonic() - back < 90, f"no write 90 s after the revive: {r.text}"
            await asyncio.sleep(0.5)  # back-off between tries, bounded by the count
        assert resumed is not None, "creates did not resume once a member came back"
        got = await client.get(f"{PATH}/before")
        assert got.status_code == 200, got.text


async def _until(check: Any, what: str, timeout: float = RUN_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
