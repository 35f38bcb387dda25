"""The gateway fed by a real API server process: routes appear, follow endpoint and
cluster changes, and survive the server going away."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.client.feed import Caches
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from flotilla.traffic.config_source import ConfigSource, routing_model
from flotilla.traffic.gateway import Gateway
from flotilla.traffic.model import EMPTY_MODEL, RoutingModel
from tests.api.conftest import ServerProcess, start_server
from tests.helpers import free_port, wait_for

from .conftest import StartBackend, url

HOST = "shop.example.test"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(api: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(api.url, api.token, ca=api.ca) as c:
        yield c


def policy() -> dict[str, Any]:
    return {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"service": "shop", "hosts": [HOST],
                     "strategy": {"type": "Locality"},
                     "locality": {"failover": ["cn-east", "cn-south"]}}}


async def add_cluster(client: HttpClient, name: str, region: str, ready: str = "True") -> None:
    obj = await client.create({"apiVersion": "cluster.flotilla.io/v1alpha1",
                               "kind": "Cluster", "metadata": {"name": name},
                               "spec": {"region": region, "zone": f"{region}-a"}})
    await set_ready(client, obj, ready)


async def set_ready(client: HttpClient, obj: dict[str, Any], ready: str) -> None:
    obj = await client.get(by_kind("Cluster"), "", obj["metadata"]["name"])
    obj["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
    await client.update_status(obj)


async def add_slice(client: HttpClient, cluster: str, region: str, port: int) -> None:
    await client.create({
        "apiVersion": "discovery.flotilla.io/v1alpha1", "kind": "EndpointSlice",
        "metadata": {"name": f"shop-{cluster}", "namespace": "default"},
        "spec": {"service": "shop", "cluster": cluster, "region": region,
                 "endpoints": [{"address": "127.0.0.1", "ready": True, "pod": "p0",
                                "ports": [{"name": "http", "port": port,
                                           "protocol": "TCP"}]}]}})


async def served_by(gw: Gateway) -> str:
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        r = await c.get(url(gw))
    return r.headers.get("x-backend", f"{r.status_code}")


async def test_gateway_follows_the_api(api: ServerProcess, client: HttpClient,
                                       start_backend: StartBackend, gateway) -> None:
    east = await start_backend("east", region="cn-east")
    south = await start_backend("south", region="cn-south")
    await add_cluster(client, "east", "cn-east")
    await add_cluster(client, "south", "cn-south")
    await add_slice(client, "east", "cn-east", east.port)
    await add_slice(client, "south", "cn-south", south.port)
    await client.create(policy())
    gw: Gateway = await gateway(EMPTY_MODEL, region="cn-east")
    feed = HttpClient(api.url, api.token, ca=api.ca)
    source = ConfigSource(feed, gw.update, retry_delay=0.2)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.ready.wait(), 10)

        async def routed_to(name: str) -> bool:
            return await served_by(gw) == name

        # the gateway's own region first
        await wait_for(lambda: routed_to("east"), timeout=20, what="east to serve")
        # the cluster goes NotReady: traffic leaves it for the next region in order
        await set_ready(client, {"metadata": {"name": "east"}}, "False")
        await wait_for(lambda: routed_to("south"), timeout=20, what="failover to south")
        await set_ready(client, {"metadata": {"name": "east"}}, "True")
        await wait_for(lambda: routed_to("east"), timeout=20, what="east back")
        # the policy goes away: no route
        await client.delete(by_kind("TrafficPolicy"), "default", "shop")
        await wait_for(lambda: routed_to("404"), timeout=20, what="route removed")
        # the API server goes away: the gateway keeps its last model and keeps serving
        await client.create(policy())
        await wait_for(lambda: routed_to("east"), timeout=20, what="route back")
        api.stop()
        assert await served_by(gw) == "east"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feed.close()


async def test_flotilla_gateway_command_serves_and_stops(
        api: ServerProcess, client: HttpClient, start_backend: StartBackend,
        tmp_path: Path) -> None:
    """``flotilla gateway`` (the CLI calling `run_gateway`) as a real process."""
    east = await start_backend("east", region="cn-east")
    await add_cluster(client, "east", "cn-east")
    await add_slice(client, "east", "cn-east", east.port)
    await client.create(policy())
    port, admin = free_port(), free_port()
    log = (tmp_path / "gateway.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("flotilla")), "gateway", "--server", api.url,
        "--token", api.token, "--listen", f"127.0.0.1:{port}", "--region", "cn-east",
        "--admin-listen", f"127.0.0.1:{admin}", "--ca-file", str(api.ca), stdout=log,
        stderr=log,
        start_new_session=True)
    log.close()
    try:
        async with httpx.AsyncClient(headers={"host": HOST}, timeout=2) as c:

            async def served() -> bool:
                try:
                    r = await c.get(f"http://127.0.0.1:{port}/")
                except httpx.HTTPError:
                    return False
                return r.headers.get("x-backend") == "east"

            await wait_for(served, timeout=15, what="the gateway process to route")
            metrics = (await c.get(f"http://127.0.0.1:{admin}/metrics")).text
        assert 'flotilla_gateway_requests_total{cluster="east"' in metrics
        model_lines = dict(line.split() for line in metrics.splitlines()
                           if line.startswith("flotilla_gateway_model_"))
        assert float(model_lines[FAILURES]) == 0
        assert float(model_lines[LAST_BUILD]) > 0, "the process reports its model builds"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


POISON = "test.flotilla.io/poison"


def poisonable(caches: Caches) -> RoutingModel:
    """The gateway's builder, except that it raises while a TrafficPolicy carries POISON:
    a stand-in for any object the builder cannot handle."""
    for tp in caches["TrafficPolicy"].list():
        if POISON in (tp["metadata"].get("annotations") or {}):
            raise RuntimeError(f"cannot build TrafficPolicy {tp['metadata']['name']}")
    return routing_model(caches)


async def set_poison(client: HttpClient, on: bool) -> None:
    obj = await client.get(by_kind("TrafficPolicy"), "default", "shop")
    obj["metadata"]["annotations"] = {POISON: "yes"} if on else {}
    await client.update(obj)


async def scrape(gw: Gateway) -> dict[str, float]:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{gw.admin_port}/metrics")).text
    return {name: float(value) for name, value in
            (line.split() for line in text.splitlines()
             if line.startswith("flotilla_gateway_model_"))}


FAILURES = "flotilla_gateway_model_build_failures_total"
LAST_BUILD = "flotilla_gateway_model_last_build_timestamp_seconds"


async def test_gateway_keeps_routing_on_the_last_good_model(
        api: ServerProcess, client: HttpClient, start_backend: StartBackend,
        gateway) -> None:
    east = await start_backend("east", region="cn-east")
    south = await start_backend("south", region="cn-south")
    await add_cluster(client, "east", "cn-east")
    await add_cluster(client, "south", "cn-south")
    await add_slice(client, "east", "cn-east", east.port)
    await add_slice(client, "south", "cn-south", south.port)
    await client.create(policy())
    gw: Gateway = await gateway(EMPTY_MODEL, region="cn-east")
    feed = HttpClient(api.url, api.token, ca=api.ca)
    source = ConfigSource(feed, gw.update, build=poisonable, metrics=gw.metrics)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.ready.wait(), 10)

        async def routed_to(name: str) -> bool:
            return await served_by(gw) == name

        async def failures(n: int) -> bool:
            return (await scrape(gw))[FAILURES] >= n

        await wait_for(lambda: routed_to("east"), timeout=20, what="east to serve")
        first = await scrape(gw)
        assert first[FAILURES] == 0
        assert first[LAST_BUILD] > 0
        await set_poison(client, True)
        await wait_for(lambda: failures(1), timeout=20, what="the failed build in /metrics")
        # A change a good build would act on (east NotReady: traffic to south) while the
        # model cannot be built: the gateway keeps the previous model, and keeps serving.
        await set_ready(client, {"metadata": {"name": "east"}}, "False")
        await wait_for(lambda: failures(2), timeout=20, what="the second failed build")
        assert not task.done(), "the config source survived the failed builds"
        for _ in range(5):
            assert await served_by(gw) == "east"
        poisoned = await scrape(gw)
        assert poisoned[LAST_BUILD] == first[LAST_BUILD]
        await set_poison(client, False)
        await wait_for(lambda: routed_to("south"), timeout=20, what="the next good model")
        after = await scrape(gw)
        assert after[LAST_BUILD] > first[LAST_BUILD]
        assert after[FAILURES] == poisoned[FAILURES], "the fixed model built at once"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feed.close()
