"""`flotilla server --store etcd://...` end to end: a real server process on a real etcd,
driven over HTTPS and by the CLI; and what an operator sees when etcd is not there."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aetcd
import httpx
import pytest

from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from tests.cli.serverproc import FLOTILLA, ServerProcess, api_only_args, clean_env, flotilla
from tests.etcd_server import HOST, EtcdProcess
from tests.helpers import free_port

CM = by_kind("ConfigMap")
PREFIX = b"/flotilla/configmaps/"


def configmap(name: str, namespace: str = "smoke", **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


@pytest.fixture(scope="module")
def etcd_api(etcd_server: EtcdProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("etcd-api") / "data", "--store",
                           etcd_server.url, *api_only_args())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(etcd_api: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(etcd_api.url, etcd_api.token, ca=etcd_api.ca) as c:
        yield c


async def test_create_get_list_watch_over_https_land_in_etcd(
    client: HttpClient, etcd_server: EtcdProcess,
) -> None:
    start = (await client.list(CM, "smoke")).resource_version
    stream = client.watch(CM, "smoke", resource_version=start)
    try:
        created = await client.create(configmap("a", greeting="hi"))
        assert (await client.get(CM, "smoke", "a"))["data"] == {"greeting": "hi"}
        created["data"] = {"greeting": "hello"}
        updated = await client.update(created)
        await client.create(configmap("b"))
        listed = await client.list(CM, "smoke")
        assert [o["metadata"]["name"] for o in listed.items] == ["a", "b"]
        await client.delete(CM, "smoke", "b")
        events = []
        async with asyncio.timeout(20):
            async for event in stream:
                if event.type != "BOOKMARK":
                    events.append((event.type, event.object["metadata"]["name"]))
                if len(events) == 4:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "b")]
    # The objects are etcd's: the key is there, and its mod_revision is the
    # resourceVersion the API returned.
    async with aetcd.Client(HOST, etcd_server.port) as etcd:
        got = await etcd.get(PREFIX + b"smoke\0a")
    assert got is not None
    assert json.loads(got.value)["data"] == {"greeting": "hello"}
    assert str(got.mod_revision) == updated["metadata"]["resourceVersion"]


def test_the_cli_reads_and_writes_through_an_etcd_backed_server(
    etcd_api: ServerProcess, tmp_path: Path,
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-cli\n"
                        "  namespace: smoke-cli\ndata:\n  k: v\n")
    applied = flotilla("apply", "-f", str(manifest), env=etcd_api.client_env())
    assert applied.returncode == 0, applied.stderr
    got = flotilla("get", "cm", "from-cli", "-n", "smoke-cli", "-o", "json",
                   env=etcd_api.client_env())
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"] == {"k": "v"}


async def test_a_compacted_resource_version_is_410_gone(
    etcd_api: ServerProcess, etcd_server: EtcdProcess,
) -> None:
    async with httpx.AsyncClient(base_url=etcd_api.url, verify=etcd_api.verify,
                                 headers={"Authorization": f"Bearer {etcd_api.token}"},
                                 timeout=10) as http:
        first = await http.post("/api/v1/namespaces/gone/configmaps",
                                json=configmap("x", "gone"))
        assert first.status_code == 201
        old = int(first.json()["metadata"]["resourceVersion"])
        for i in range(3):
            r = await http.post("/api/v1/namespaces/gone/configmaps",
                                json=configmap(f"y{i}", "gone"))
            assert r.status_code == 201
        async with aetcd.Client(HOST, etcd_server.port) as etcd:
            await etcd.compact(int(r.json()["metadata"]["resourceVersion"]))
        async with http.stream("GET", "/api/v1/namespaces/gone/configmaps",
                               params={"watch": "1", "resourceVersion": str(old)}) as r:
            line = await anext(r.aiter_lines())
        event = json.loads(line)
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410
        listed = await http.get("/api/v1/namespaces/gone/configmaps")
        assert len(listed.json()["items"]) == 4  # compaction forgets history, not objects


def test_an_unreachable_etcd_stops_the_server_with_the_endpoint_named(tmp_path: Path
                                                                        ) -> None:
    port = free_port()
    result = subprocess.run(
        [FLOTILLA, "server", "--data-dir", str(tmp_path / "d"), "--listen",
         f"127.0.0.1:{free_port()}", "--store", f"etcd://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False)
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--store", "etcd://"], "no endpoint"),
    (["--store", "etcd://host"], "is not HOST:PORT"),
    (["--store", "mysql://x"], "--store must be sqlite:///DIR or etcd://"),
    (["--etcd-ca-file", "/nowhere/ca.crt"], "need --store etcd://"),
    (["--store", "etcd://127.0.0.1:2379", "--etcd-ca-file", "/nowhere/ca.crt"],
     "--etcd-ca-file: cannot read /nowhere/ca.crt"),
    (["--store", "etcd://127.0.0.1:2379", "--etcd-cert-file", "/x"],
     "--etcd-cert-file and --etcd-key-file go together"),
])
def test_bad_store_flags_are_refused_with_the_flag_named(args: list[str], message: str,
                                                         tmp_path: Path) -> None:
    result = flotilla("server", "--data-dir", str(tmp_path / "d"), *args, env=clean_env())
    assert result.returncode == 2
    assert message in result.stderr
