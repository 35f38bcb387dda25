"""The proxy end to end: real backend processes, the gateway on a loopback port, httpx
and curl as clients."""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import uvloop

from flotilla.traffic.model import HashOn, Locality, Policy, Strategy, Timeouts, static_model

from .conftest import HOST, StartBackend, model_for, url


async def test_forwards_with_forwarding_headers_and_cluster_header(
        start_backend: StartBackend, gateway) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        r = await c.get(url(gw, "/hello"), headers={
            "connection": "keep-alive, x-hop", "x-hop": "secret",
            "x-forwarded-for": "10.1.2.3", "te": "trailers",
            "x-forwarded-proto": "https", "x-forwarded-host": "evil.test"})
    assert r.status_code == 200
    assert r.text == "east GET /hello\n"
    assert r.headers["x-flotilla-cluster"] == "east"
    # the client's own forwarding headers are replaced (no trusted proxies configured)
    assert r.headers["x-seen-x-forwarded-for"] == "127.0.0.1"
    assert r.headers["x-seen-x-forwarded-proto"] == "http"
    assert r.headers["x-seen-x-forwarded-host"] == HOST
    assert r.headers["x-seen-via"] == "1.1 flotilla"
    # hop-by-hop headers, and those the client's Connection header names, stay behind
    for h in ("x-seen-connection", "x-seen-te", "x-seen-x-hop"):
        assert h not in r.headers


async def test_cluster_header_can_be_switched_off(start_backend: StartBackend,
                                                  gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b], Policy("shop", "default", "shop", (HOST,),
                                             cluster_header=False)))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        r = await c.get(url(gw))
    assert r.status_code == 200
    assert "x-flotilla-cluster" not in r.headers


async def test_keep_alive_reuses_one_client_and_one_upstream_connection(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        for _ in range(20):
            assert (await c.get(url(gw))).status_code == 200
    (u,) = gw.state.runtimes["default/shop"].upstreams
    assert u.pool.opened == 1
    assert u.metrics.requests == 20


async def test_multi_megabyte_bodies_stream_intact_with_curl(
        start_backend: StartBackend, gateway, tmp_path) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    payload = os.urandom(5 * 1024 * 1024)
    src = tmp_path / "in.bin"
    src.write_bytes(payload)
    want = hashlib.sha256(payload).hexdigest()
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        out = tmp_path / "out.bin"
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail", "-o", str(out), "-H", f"Host: {HOST}", *extra,
            "--data-binary", f"@{src}", url(gw, "/upload"))
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want
    for chunked in ("0", "1"):  # response bodies: content-length and chunked
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail", "-H", f"Host: {HOST}",
            url(gw, f"/big?size={8 * 1024 * 1024}&chunked={chunked}"),
            stdout=asyncio.subprocess.PIPE)
        body, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert len(body) == 8 * 1024 * 1024
        assert body[:32] == b"0123456789abcdef" * 2


async def test_unknown_host_no_endpoints_and_timeouts_are_explained(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    slow = Policy("slow", "default", "slow", ("slow.test",),
                  timeouts=Timeouts(connect=1.0, per_try=0.3, total=0.3))
    model = static_model([(Policy("empty", "default", "empty", ("empty.test",)), []),
                          (slow, [b.endpoint])])
    gw = await gateway(model)
    async with httpx.AsyncClient() as c:
        r = await c.get(url(gw), headers={"host": "nope.test"})
        assert r.status_code == 404
        assert "no route" in r.text
        r = await c.get(url(gw), headers={"host": "empty.test"})
        assert r.status_code == 503
        assert "no endpoints" in r.text
        r = await c.get(url(gw, "/?sleep=2"), headers={"host": "slow.test"})
        assert r.status_code == 504
        assert "timed out" in r.text


async def test_strategy_round_robin_alternates_over_real_backends(
        start_backend: StartBackend, gateway) -> None:
    bs = [await start_backend(n) for n in ("east", "south", "west")]
    gw = await gateway(model_for(bs, Policy("shop", "default", "shop", (HOST,),
                                            strategy=Strategy("RoundRobin"))))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        seen = [(await c.get(url(gw))).headers["x-backend"] for _ in range(30)]
    assert {n: seen.count(n) for n in set(seen)} == {"east": 10, "south": 10, "west": 10}


async def test_repeated_heads_on_one_connection_follow_a_model_swap(
        start_backend: StartBackend, gateway) -> None:
    """Identical request heads on a keep-alive connection reuse their parse, but never
    across a model swap; identical response heads reuse theirs, never across a change."""
    old, new = await start_backend("old"), await start_backend("new")
    gw = await gateway(model_for([old]))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        assert [(await c.get(url(gw))).headers["x-backend"] for _ in range(3)] == ["old"] * 3
        gw.update(model_for([new]))
        assert [(await c.get(url(gw))).headers["x-backend"] for _ in range(3)] == ["new"] * 3
        await new.control(fail=503)
        assert (await c.get(url(gw))).status_code == 503
        await new.control(reset=1)
        assert (await c.get(url(gw))).status_code == 200


async def test_hash_on_header_and_cookie_keeps_users_on_one_backend(
        start_backend: StartBackend, gateway) -> None:
    bs = [await start_backend(n) for n in ("a", "b", "c", "d")]
    by_header = Policy("h", "default", "shop", ("h.test",), strategy=Strategy(
        "ConsistentHash", HashOn("header", "x-user")))
    by_cookie = Policy("c", "default", "shop", ("c.test",), strategy=Strategy(
        "ConsistentHash", HashOn("cookie", "sid")))
    eps = [b.endpoint for b in bs]
    gw = await gateway(static_model([(by_header, eps), (by_cookie, eps)]))
    async with httpx.AsyncClient() as c:
        for user in ("alice", "bob", "carol"):
            seen = {(await c.get(url(gw), headers={"host": "h.test", "x-user": user}))
                    .headers["x-backend"] for _ in range(5)}
            assert len(seen) == 1
            seen = {(await c.get(url(gw), headers={
                "host": "c.test", "cookie": f"theme=dark; sid={user}"})).headers["x-backend"]
                for _ in range(5)}
            assert len(seen) == 1
        spread = {(await c.get(url(gw), headers={"host": "h.test", "x-user": f"u{i}"}))
                  .headers["x-backend"] for i in range(40)}
    assert len(spread) >= 3


async def test_locality_follows_the_client_region_header(
        start_backend: StartBackend, gateway) -> None:
    east = await start_backend("east", region="cn-east")
    south = await start_backend("south", region="cn-south")
    policy = Policy("shop", "default", "shop", (HOST,), strategy=Strategy("Locality"),
                    locality=Locality(region_header="x-region",
                                      failover=("cn-east", "cn-south")))
    gw = await gateway(model_for([east, south], policy), region="cn-east")
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        assert {(await c.get(url(gw))).headers["x-backend"] for _ in range(4)} == {"east"}
        assert {(await c.get(url(gw), headers={"x-region": "cn-south"})).headers["x-backend"]
                for _ in range(4)} == {"south"}


async def test_http10_clients_and_close_delimited_bodies(start_backend: StartBackend,
                                                         gateway) -> None:
    """A 1.0 client never gets a chunked body; a body that ends when the upstream closes
    ends the client connection too, so the client sees its end."""
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    for args in (["--http1.0", url(gw, "/x?size=100000&chunked=1")],
                 [url(gw, "/x?size=100000&close=1")]):
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail", "--max-time", "10", "-H", f"Host: {HOST}", *args,
            stdout=asyncio.subprocess.PIPE)
        body, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        assert len(body) == 100000
