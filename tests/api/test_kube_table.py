"""What kubectl asks of lists and watches beyond the objects: meta.k8s.io Tables (the
columns of ``flotilla get``), fieldSelector, timeoutSeconds and allowWatchBookmarks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flotilla.api.kube.table import table_version
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from tests.api.conftest import ServerProcess, start_server
from tests.api.samples import sample

CM = by_kind("ConfigMap")
DEPLOY = by_kind("Deployment")
EVENT = by_kind("Event")
#: What kubectl 1.32 sends for ``kubectl get``.
KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
TABLE = {"Accept": KUBECTL_ACCEPT}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """conftest's `client` and `http` talk to this server: bookmarks every 0.2 s."""
    srv = start_server(tmp_path_factory.mktemp("table"), "--bookmark-interval", "0.2")
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


@pytest.mark.parametrize(("accept", "expected"), [
    (KUBECTL_ACCEPT, "meta.k8s.io/v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json",
     "meta.k8s.io/v1beta1"),
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),
    ("application/json", None),
    (None, None),
    ("application/yaml;as=Table;v=v1;g=meta.k8s.io", None),
])
def test_table_version_reads_kubectls_accept_lists(accept: str | None,
                                                    expected: str | None) -> None:
    assert table_version(accept) == expected


def _names(table: dict[str, Any]) -> list[str]:
    return [str(r["cells"][0]) for r in table["rows"]]


async def test_list_as_table_has_the_cli_columns_and_partial_metadata(
        http: httpx.AsyncClient, client: HttpClient) -> None:
    cm = sample(CM, "tabled", namespace="tbl", labels={"app": "web"})
    cm["data"] = {"a": "1", "b": "2"}
    await client.create(cm)
    r = await http.get("/api/v1/namespaces/tbl/configmaps", headers=TABLE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kind"], body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert body["metadata"]["resourceVersion"]
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "DATA", "Age"]
    (row,) = body["rows"]
    assert row["cells"][:2] == ["tabled", "2"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["labels"] == {"app": "web"}
    assert "data" not in row["object"]
    # Plain JSON is unchanged.
    plain = (await http.get("/api/v1/namespaces/tbl/configmaps")).json()
    assert plain["kind"] == "ConfigMapList"


async def test_wide_columns_have_priority_one_and_a_single_get_is_a_table(
        http: httpx.AsyncClient, client: HttpClient) -> None:
    await client.create(sample(DEPLOY, "web", namespace="tbl"))
    r = await http.get("/apis/apps/v1/namespaces/tbl/deployments/web", headers={
        "Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["apiVersion"] == "meta.k8s.io/v1beta1"
    priorities = {c["name"]: c["priority"] for c in body["columnDefinitions"]}
    assert priorities["READY"] == 0
    assert priorities["Age"] == 0
    assert priorities["IMAGES"] == 1
    assert priorities["SELECTOR"] == 1
    assert _names(body) == ["web"]
    assert body["rows"][0]["cells"][1] == "0/2"  # READY/replicas, as `flotilla get`


@pytest.mark.parametrize(("include", "expected"), [
    ("Object", "ConfigMap"), ("Metadata", "PartialObjectMetadata"), ("None", None)])
async def test_include_object_is_honoured(http: httpx.AsyncClient, client: HttpClient,
                                          include: str, expected: str | None) -> None:
    await client.create(sample(CM, f"inc-{include.lower()}", namespace="inc"))
    r = await http.get(f"/api/v1/namespaces/inc/configmaps/inc-{include.lower()}",
                       params={"includeObject": include}, headers=TABLE)
    row = r.json()["rows"][0]
    assert (row.get("object") or {}).get("kind") == expected


async def test_bad_include_object_is_a_400(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/configmaps", params={"includeObject": "All"}, headers=TABLE)
    assert r.status_code == 400
    assert "includeObject" in r.json()["message"]


async def test_field_selector_on_lists(http: httpx.AsyncClient, client: HttpClient) -> None:
    for ns, name in (("fa", "one"), ("fa", "two"), ("fb", "one")):
        await client.create(sample(CM, name, namespace=ns))

    async def names(selector: str, path: str = "/api/v1/configmaps") -> set[str]:
        r = await http.get(path, params={"fieldSelector": selector})
        assert r.status_code == 200, r.text
        return {f"{o['metadata']['namespace']}/{o['metadata']['name']}"
                for o in r.json()["items"] if o["metadata"]["namespace"] in ("fa", "fb")}

    assert await names("metadata.name=one") == {"fa/one", "fb/one"}
    assert await names("metadata.name==one,metadata.namespace=fb") == {"fb/one"}
    assert await names("metadata.namespace=fa,metadata.name!=one") == {"fa/two"}
    assert await names("metadata.name=two", "/api/v1/namespaces/fb/configmaps") == set()


async def test_unsupported_field_is_a_400_naming_it(http: httpx.AsyncClient) -> None:
    for params in ({"fieldSelector": "spec.replicas=3"},
                   {"fieldSelector": "spec.replicas=3", "watch": "1"}):
        r = await http.get("/apis/apps/v1/deployments", params=params)
        assert r.status_code == 400, r.text
        status = r.json()
        assert status["kind"] == "Status"
        assert "spec.replicas" in status["message"]
        assert "metadata.name" in status["message"]
    r = await http.get("/api/v1/configmaps", params={"fieldSelector": "metadata.name"})
    assert r.status_code == 400


async def test_events_select_on_involved_object(http: httpx.AsyncClient,
                                                client: HttpClient) -> None:
    def event(name: str, kind: str, about: str, uid: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "ev"},
                "involvedObject": {"apiVersion": "apps/v1", "kind": kind, "name": about,
                                   "namespace": "ev", "uid": uid},
                "type": "Normal", "reason": "Scheduled", "message": "m"}
    await client.create(event("e1", "Deployment", "shop", "u1"))
    await client.create(event("e2", "Deployment", "cart", "u2"))
    await client.create(event("e3", "Service", "shop", "u3"))
    # What kubectl describe sends.
    selector = ("involvedObject.name=shop,involvedObject.namespace=ev,"
                "involvedObject.kind=Deployment,involvedObject.uid=u1")
    r = await http.get("/api/v1/namespaces/ev/events", params={"fieldSelector": selector})
    assert [e["metadata"]["name"] for e in r.json()["items"]] == ["e1"]
    r = await http.get("/api/v1/namespaces/ev/events",
                       params={"fieldSelector": "involvedObject.name=shop"})
    assert sorted(e["metadata"]["name"] for e in r.json()["items"]) == ["e1", "e3"]


async def _events(http: httpx.AsyncClient, path: str, params: dict[str, str],
                  headers: dict[str, str] | None = None, *, until: int,
                  timeout: float = 15.0) -> list[dict[str, Any]]:
    """Events of one watch until ``until`` were read or the stream ended."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), \
            http.stream("GET", path, params={"watch": "1", **params},
                        headers=headers or {}, timeout=timeout) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.strip():
                out.append(json.loads(line))
            if len(out) >= until:
                break
    return out


async def test_watch_as_table_filtered_by_field(http: httpx.AsyncClient,
                                                client: HttpClient) -> None:
    start = (await client.list(CM, "wt")).resource_version
    await client.create(sample(CM, "other", namespace="wt"))
    await client.create(sample(CM, "mine", namespace="wt"))
    events = await _events(http, "/api/v1/namespaces/wt/configmaps",
                           {"resourceVersion": start, "fieldSelector": "metadata.name=mine"},
                           TABLE, until=1)
    (ev,) = events
    assert ev["type"] == "ADDED"
    assert ev["object"]["kind"] == "Table"
    assert _names(ev["object"]) == ["mine"]
    assert [c["name"] for c in ev["object"]["columnDefinitions"]] == ["Name", "DATA", "Age"]


async def test_timeout_seconds_ends_the_watch(http: httpx.AsyncClient) -> None:
    began = time.monotonic()
    events = await _events(http, "/api/v1/namespaces/quiet/configmaps",
                           {"timeoutSeconds": "1"}, until=1_000)
    assert events == []
    assert time.monotonic() - began < 10


async def test_bookmarks_only_when_allowed(http: httpx.AsyncClient, client: HttpClient) -> None:
    rv = (await client.list(CM, "bm")).resource_version
    params = {"resourceVersion": rv, "timeoutSeconds": "2"}
    assert await _events(http, "/api/v1/namespaces/bm/configmaps", params, until=1_000) == []
    events = await _events(http, "/api/v1/namespaces/bm/configmaps",
                           {**params, "allowWatchBookmarks": "true"}, until=1)
    assert events[0]["type"] == "BOOKMARK"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    table = await _events(http, "/api/v1/namespaces/bm/configmaps",
                          {**params, "allowWatchBookmarks": "true"}, TABLE, until=1)
    assert table[0]["type"] == "BOOKMARK"
    assert table[0]["object"]["kind"] == "Table"
    assert table[0]["object"]["rows"] == []
