"""Bad input gets the right status and a message naming the problem; the server lives on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ServerProcess
from tests.api.samples import sample

CMS = "/api/v1/namespaces/bad/configmaps"
CLUSTERS = "/apis/cluster.flotilla.io/v1alpha1/clusters"
DEPLOYS = "/apis/apps/v1/namespaces/bad/deployments"


def _status(r: httpx.Response, code: int, *needles: str) -> dict[str, object]:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status"
    assert body["code"] == code
    for needle in needles:
        assert needle in body["message"], (needle, body["message"])
    return body  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
async def _still_serving(server: ServerProcess) -> AsyncIterator[None]:
    """After every bad request the server must still answer, and still write."""
    yield
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                 headers=server.headers()) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert server.proc is not None
        assert server.proc.poll() is None
        r = await http.get(CMS)
        assert r.status_code == 200


async def test_malformed_json(http: httpx.AsyncClient) -> None:
    r = await http.post(CMS, content=b'{"apiVersion": "v1", "kind": ',
                        headers={"Content-Type": "application/json"})
    _status(r, 400, "malformed JSON")


async def test_malformed_yaml(http: httpx.AsyncClient) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"
    r = await http.post(CMS, content=body, headers={"Content-Type": "application/yaml"})
    _status(r, 400, "malformed YAML", "line")


async def test_not_an_object(http: httpx.AsyncClient) -> None:
    r = await http.post(CMS, content=b"- a\n- b\n", headers={"Content-Type": "application/yaml"})
    _status(r, 400, "one object")


async def test_unknown_kind(http: httpx.AsyncClient) -> None:
    body = {"apiVersion": "v1", "kind": "Frobnicator", "metadata": {"name": "f"}}
    _status(await http.post(CMS, json=body), 400, "Frobnicator")
    r = await http.get("/apis/frob.example.com/v1/namespaces/bad/frobnicators")
    _status(r, 404, "frobnicators")


async def test_kind_served_under_another_api_version(http: httpx.AsyncClient) -> None:
    body = sample("ConfigMap", "cm", namespace="bad", api_version="apps/v1")
    _status(await http.post(CMS, json=body), 400, "apiVersion 'apps/v1'", "use v1")


async def test_unknown_field_names_its_path(http: httpx.AsyncClient) -> None:
    body = sample("Cluster", "bogus")
    body["spec"]["bogusField"] = 1
    r = _status(await http.post(CLUSTERS, json=body), 422, "spec.bogusField")
    causes = r["details"]["causes"]  # type: ignore[index]
    assert any(c["field"] == "spec.bogusField" for c in causes)


async def test_wrong_type_names_its_path(http: httpx.AsyncClient) -> None:
    body = sample("Deployment", "typed", namespace="bad")
    body["spec"]["replicas"] = "three"
    r = _status(await http.post(DEPLOYS, json=body), 422, "spec.replicas")
    assert r["reason"] == "Invalid"


async def test_missing_name(http: httpx.AsyncClient) -> None:
    body = sample("ConfigMap", "x", namespace="bad")
    del body["metadata"]["name"]
    r = _status(await http.post(CMS, json=body), 422, "metadata.name")
    assert r["details"]["causes"][0]["field"] == "metadata.name"  # type: ignore[index]


async def test_mismatched_namespace_and_name(http: httpx.AsyncClient) -> None:
    body = sample("ConfigMap", "x", namespace="elsewhere")
    _status(await http.post(CMS, json=body), 400, "namespace")
    body = sample("ConfigMap", "x", namespace="bad")
    _status(await http.put(f"{CMS}/y", json=body), 400, "'x'", "'y'")


def _peak_rss_kib(server: ServerProcess) -> int:
    """The server's peak resident memory (VmHWM): a buffered 10 MB body would show."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


#: Peak RSS may grow by up to the body limit read before the 413 plus what the shared
#: server does meanwhile (its store's checkpoint thread, other connections): 4 MiB was
#: exceeded by 0.4 MiB once in CI. Holding the whole 10 MiB body would pass 8 MiB.
_NOT_BUFFERED_KIB = 8 * 1024


async def test_ten_megabyte_body_with_length(http: httpx.AsyncClient,
                                             server: ServerProcess) -> None:
    big = b'{"data": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    before = _peak_rss_kib(server)
    r = await http.post(CMS, content=big, headers={"Content-Type": "application/json"})
    _status(r, 413, "larger than the limit")
    assert _peak_rss_kib(server) - before < _NOT_BUFFERED_KIB, "the server buffered the body"


async def test_ten_megabyte_chunked_body(http: httpx.AsyncClient,
                                         server: ServerProcess) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(160):  # 160 x 64 KiB = 10 MiB, no Content-Length
            yield b"x" * 65536

    before = _peak_rss_kib(server)
    r = await http.post(CMS, content=chunks(), headers={"Content-Type": "application/json"})
    _status(r, 413, "larger than the limit")
    assert _peak_rss_kib(server) - before < _NOT_BUFFERED_KIB, "the server buffered the body"


async def test_no_token_and_wrong_token(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify) as anon:
        r = await anon.get(CMS)
        _status(r, 401, "no bearer token")
        assert r.headers["www-authenticate"] == "Bearer"
        r = await anon.get(CMS, headers={"Authorization": "Bearer not-the-token"})
        _status(r, 401, "not valid")
        r = await anon.get(CMS, headers={"Authorization": f"Basic {server.token}"})
        _status(r, 401)


async def test_not_found_and_method_not_allowed(http: httpx.AsyncClient) -> None:
    _status(await http.get(f"{CMS}/nope"), 404, "nope")
    _status(await http.delete(CMS), 405, "DELETE")
    _status(await http.patch(CMS, content=b"{}",
                             headers={"Content-Type": "application/merge-patch+json"}),
            405, "PATCH")
    # A PATCH body must say which patch it is: plain JSON is ambiguous.
    _status(await http.patch(f"{CMS}/nope", json={}), 415, "merge-patch+json")
    _status(await http.get("/api/v1/namespaces/bad/configmaps/x/scale"), 404, "scale")
    _status(await http.get("/nothing-here"), 404)


async def test_bad_query_parameters(http: httpx.AsyncClient) -> None:
    _status(await http.get(CMS, params={"labelSelector": "a in (b"}), 400, "labelSelector")
    _status(await http.get(CMS, params={"limit": "-1"}), 400, "limit")
    _status(await http.get(CMS, params={"continue": "garbage"}), 400, "continue")
    _status(await http.get(CMS, params={"watch": "1", "resourceVersion": "abc"}), 400,
            "resourceVersion")
