"""Hostile bodies against a real server: each gets a 4xx naming the limit it broke,
fast, while other clients go on being served (limits: `flotilla.api.input_limits`)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from flotilla.api.input_limits import MAX_DEPTH, MAX_OBJECT_BYTES, MAX_YAML_NODES
from tests.api.conftest import ServerProcess
from tests.api.samples import sample

CMS = "/api/v1/namespaces/hostile/configmaps"
JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}

#: "Billion laughs": 1 KB, six levels of nine aliases each (9**6 = 531,441 "lol"s).
BOMB = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: lol
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def _status(r: httpx.Response, code: int, *needles: str) -> None:
    assert r.status_code == code, r.text[:500]
    body = r.json()
    assert body["kind"] == "Status"
    assert body["code"] == code
    for needle in needles:
        assert needle in body["message"], (needle, body["message"])


@pytest.fixture(autouse=True)
async def _still_serving(server: ServerProcess) -> AsyncIterator[None]:
    yield
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                 headers=server.headers()) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get(CMS)).status_code == 200


async def test_alias_bomb_refused_fast_while_healthz_answers(server: ServerProcess) -> None:
    assert len(BOMB) < 1024
    bomb_times: list[float] = []
    health_times: list[float] = []
    done = asyncio.Event()

    async def bombs() -> None:
        async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                     headers=server.headers(), timeout=30) as http:
            for _ in range(10):
                started = time.monotonic()
                r = await http.post(CMS, content=BOMB, headers=YAML)
                bomb_times.append(time.monotonic() - started)
                _status(r, 400, "YAML aliases are not accepted", "line 7")
        done.set()

    async def probes() -> None:
        async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                     timeout=30) as http:
            while not done.is_set() or len(health_times) < 5:
                started = time.monotonic()
                r = await http.get("/healthz")
                health_times.append(time.monotonic() - started)
                assert r.status_code == 200

    await asyncio.wait_for(asyncio.gather(bombs(), probes()), timeout=60)
    assert max(bomb_times) < 1.0, bomb_times
    # Generous for a shared 2-core machine: the median, with every probe under a second.
    assert statistics.median(health_times) < 0.1, health_times
    assert max(health_times) < 1.0, health_times
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                 headers=server.headers()) as http:
        _status(await http.get(f"{CMS}/lol"), 404)


async def test_anchor_without_alias_is_fine(http: httpx.AsyncClient) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: anchored\ndata:\n  a: &x b\n"
    r = await http.post(CMS, content=body, headers=YAML)
    assert r.status_code == 201, r.text
    assert r.json()["data"] == {"a": "b"}


async def test_two_mebibyte_object_names_the_limit(http: httpx.AsyncClient) -> None:
    body = sample("ConfigMap", "big", namespace="hostile")
    body["data"] = {"blob": "x" * (2 * 1024 * 1024)}
    r = await http.post(CMS, json=body)
    _status(r, 413, f"limit of {MAX_OBJECT_BYTES} bytes", "1.5 MiB")
    _status(await http.get(f"{CMS}/big"), 404)


async def test_yaml_smaller_than_its_json_is_measured_as_json(
        http: httpx.AsyncClient) -> None:
    """1 MiB of YAML (under every raw-body limit) that is 2 MiB as JSON: each ``"`` of
    the block scalar is escaped in JSON."""
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sly\ndata:\n  x: |\n    " + \
        b'"' * (1024 * 1024) + b"\n"
    assert len(body) < MAX_OBJECT_BYTES
    r = await http.post(CMS, content=body, headers=YAML)
    _status(r, 413, "as compact JSON", f"limit of {MAX_OBJECT_BYTES} bytes")


async def test_yaml_node_limit(http: httpx.AsyncClient) -> None:
    items = b",".join([b"a"] * (MAX_YAML_NODES + 1))
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wide\nx: [" + items + b"]\n"
    started = time.monotonic()
    r = await http.post(CMS, content=body, headers=YAML)
    _status(r, 400, f"limit of {MAX_YAML_NODES} nodes", "as JSON")
    assert time.monotonic() - started < 5.0


async def test_just_under_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    body = sample("ConfigMap", "almost", namespace="hostile")
    body["data"] = {"blob": "x" * (MAX_OBJECT_BYTES - 4096)}
    r = await http.post(CMS, json=body)
    assert r.status_code == 201, r.text[:300]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_five_thousand_digit_number(http: httpx.AsyncClient, fmt: str) -> None:
    digits = b"7" * 5000
    if fmt == "json":
        body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"x":' + \
            digits + b"}"
    else:
        body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\nx: " + digits + b"\n"
    r = await http.post(CMS, content=body, headers=JSON if fmt == "json" else YAML)
    _status(r, 400, "5000 digits", "limit of 100")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_ten_thousand_deep_array(http: httpx.AsyncClient, fmt: str) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    if fmt == "json":
        body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"x":' + \
            deep + b"}"
    else:
        body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\nx: " + deep + b"\n"
    r = await http.post(CMS, content=body, headers=JSON if fmt == "json" else YAML)
    _status(r, 400, f"nested deeper than the limit of {MAX_DEPTH} levels")


async def test_depth_at_the_limit_is_not_refused_for_depth(http: httpx.AsyncClient) -> None:
    # The object is level 1, "data" 2; 98 more arrays inside reach exactly MAX_DEPTH.
    inner = b"[" * (MAX_DEPTH - 2) + b"]" * (MAX_DEPTH - 2)
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":{"x":' \
        + inner + b"}}"
    r = await http.post(CMS, content=body, headers=JSON)
    assert r.status_code == 422, r.text[:300]  # past the decoder: data values must be strings
    assert "nested deeper" not in r.json()["message"]


@pytest.mark.parametrize(("body", "ctype", "needle"), [
    (b'{"apiVersion":"v1","kind":"ConfigMap","x":NaN}', JSON, "NaN is not a JSON number"),
    (b'{"apiVersion":"v1","kind":"ConfigMap","x":1e999}', JSON, "out of range"),
    (b'{"apiVersion":"v1","kind":"ConfigMap","x":"\\ud800"}', JSON, "cannot represent"),
    (b"apiVersion: v1\nkind: ConfigMap\nx: !!binary aGk=\n", YAML, "cannot represent"),
    (b"apiVersion: v1\nkind: ConfigMap\nx: !!set {a}\n", YAML, "cannot represent"),
    (b"apiVersion: v1\nkind: ConfigMap\nx: .nan\n", YAML, "cannot represent"),
    (b"apiVersion: v1\nkind: ConfigMap\nx: &a [*a]\n", YAML, "aliases are not accepted"),
])
async def test_values_json_cannot_hold(http: httpx.AsyncClient, body: bytes,
                                       ctype: dict[str, str], needle: str) -> None:
    _status(await http.post(CMS, content=body, headers=ctype), 400, needle)
