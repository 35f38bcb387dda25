"""End to end: a real API server process, `run_dns` following it over HTTP, `dig` asking.

Objects are created, changed and deleted through the API; the answers must follow within
a bounded time (list + watch, no polling in the DNS).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.api.auth import ensure_admin_token
from flotilla.client.feed import Caches
from flotilla.client.http import HttpClient
from flotilla.dns.config_source import ConfigSource, model_builder
from flotilla.dns.model import DnsModel
from flotilla.dns.server import DnsServer, run_dns
from flotilla.pki import PkiLayout, verifying_context
from tests.dns.conftest import dig, needs_dig
from tests.dns.objects import cluster, endpoint_slice, service_export, traffic_policy
from tests.helpers import free_port, wait_for, wait_for_sync

pytestmark = needs_dig

_LISTENING = re.compile(rb"listening on (https?://\S+)")


class Api:
    """``python -m flotilla.api`` in its own process group on a random loopback port."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.token = ensure_admin_token(data_dir) or ""
        self.ca = PkiLayout(data_dir).ca_cert
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flotilla.api", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", "--bookmark-interval", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.url = ""

    def wait_listening(self) -> None:
        assert self.proc.stdout is not None
        for _ in range(50):  # bounded: the banner comes within the first lines
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := _LISTENING.search(line):
                self.url = m.group(1).decode()
                break
        assert self.url, "API server did not start"
        wait_for_sync(self._ready, timeout=15, what="API /readyz")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2,
                             verify=verifying_context(self.ca)).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    server = Api(tmp_path / "data")
    try:
        server.wait_listening()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(api: Api) -> AsyncIterator[HttpClient]:
    async with HttpClient(api.url, api.token, ca=api.ca) as c:
        yield c


async def _create(client: HttpClient, obj: dict[str, Any]) -> None:
    status = obj.pop("status", None)
    created = await client.create(obj)
    if status is not None:
        created["status"] = status
        await client.update_status(created)


async def _set_ready(client: HttpClient, name: str, ready: bool) -> None:
    from flotilla.resources.kinds import by_kind

    current = await client.get(by_kind("Cluster"), "", name)
    current["status"] = cluster(name, "", "", ready=ready)["status"]
    await client.update_status(current)


async def test_answers_follow_the_api(api: Api, client: HttpClient) -> None:
    for obj in (
        cluster("east", "cn-east", "127.0.1.1"),
        cluster("south", "cn-south", "127.0.2.1:8080"),  # host:port is accepted
        endpoint_slice("shop", "east", [("127.0.1.10", 31001)]),
        endpoint_slice("shop", "south", [("127.0.2.10", 32001)]),
        traffic_policy("shop", ["shop.global.test"]),
        service_export("shop"),
    ):
        await _create(client, obj)

    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    admin = free_port()
    task = asyncio.create_task(run_dns(
        api.url, api.token, "127.0.0.1:0", "global.test", admin_listen=f"127.0.0.1:{admin}",
        on_listening=lambda _host, port: listening.set_result(port), ca=api.ca,
    ))
    try:
        port = await asyncio.wait_for(listening, 10)

        async def addresses(name: str = "shop.global.test") -> list[str]:
            return sorted((await dig(port, name)).data())

        async def both() -> bool:
            return await addresses() == ["127.0.1.1", "127.0.2.1"]

        await wait_for(both, timeout=10, what="both clusters in the answer")
        async with httpx.AsyncClient() as c:
            metrics = (await c.get(f"http://127.0.0.1:{admin}/metrics")).text
        model_lines = dict(line.split() for line in metrics.splitlines()
                           if line.startswith("flotilla_dns_model_"))
        assert float(model_lines[FAILURES]) == 0
        assert float(model_lines[LAST_BUILD]) > 0, "run_dns reports its model builds"

        await _set_ready(client, "east", False)

        async def only_south() -> bool:
            return await addresses() == ["127.0.2.1"]

        await wait_for(only_south, timeout=10, what="east to leave the answer")
        srv = await dig(port, "_http._tcp.shop.default.svc.clusterset.local", "SRV")
        assert [d.split()[2] for d in srv.data("SRV")] == ["32001"]

        from flotilla.resources.kinds import by_kind

        await client.delete(by_kind("TrafficPolicy"), "default", "shop")

        async def gone() -> bool:
            return (await dig(port, "shop.global.test")).status == "NXDOMAIN"

        await wait_for(gone, timeout=10, what="the deleted policy's name to go")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


POISON = "test.flotilla.io/poison"
FAILURES = "flotilla_dns_model_build_failures_total"
LAST_BUILD = "flotilla_dns_model_last_build_timestamp_seconds"


async def _set_poison(client: HttpClient, on: bool) -> None:
    from flotilla.resources.kinds import by_kind

    obj = await client.get(by_kind("TrafficPolicy"), "default", "shop")
    obj["metadata"]["annotations"] = {POISON: "yes"} if on else {}
    await client.update(obj)


async def _scrape(server: DnsServer) -> dict[str, float]:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{server.admin_port}/metrics")).text
    return {name: float(value) for name, value in
            (line.split() for line in text.splitlines() if line.startswith("flotilla_dns_model_"))}


async def test_a_model_that_cannot_be_built_keeps_the_last_good_answers(
        api: Api, client: HttpClient) -> None:
    for obj in (
        cluster("east", "cn-east", "127.0.1.1"),
        cluster("south", "cn-south", "127.0.2.1"),
        endpoint_slice("shop", "east", [("127.0.1.10", 31001)]),
        endpoint_slice("shop", "south", [("127.0.2.10", 32001)]),
        traffic_policy("shop", ["shop.global.test"]),
        service_export("shop"),
    ):
        await _create(client, obj)
    real = model_builder("global.test")

    def poisonable(caches: Caches) -> DnsModel:
        """The real builder, except that it raises while a TrafficPolicy carries POISON:
        a stand-in for any object the builder cannot handle."""
        for tp in caches["TrafficPolicy"].list():
            if POISON in (tp["metadata"].get("annotations") or {}):
                raise RuntimeError(f"cannot build TrafficPolicy {tp['metadata']['name']}")
        return real(caches)

    server = DnsServer(None, listen="127.0.0.1:0", admin_listen="127.0.0.1:0")
    source = ConfigSource(client, "global.test", server.update, build=poisonable,
                          metrics=server.metrics)
    async with server:
        task = asyncio.create_task(source.run())
        try:
            async def addresses() -> list[str]:
                return sorted((await dig(server.port, "shop.global.test")).data())

            async def answers(want: list[str]) -> bool:
                return await addresses() == want

            async def failures(n: int) -> bool:
                return (await _scrape(server))[FAILURES] >= n

            both = ["127.0.1.1", "127.0.2.1"]
            await wait_for(lambda: answers(both), timeout=10, what="both clusters")
            first = await _scrape(server)
            assert first[FAILURES] == 0
            assert first[LAST_BUILD] > 0
            await _set_poison(client, True)
            await wait_for(lambda: failures(1), timeout=10, what="the failed build in /metrics")
            # A change a good build would act on (east NotReady) while the model cannot be
            # built: the DNS keeps answering from the previous model.
            await _set_ready(client, "east", False)
            await wait_for(lambda: failures(2), timeout=10, what="the second failed build")
            assert not task.done(), "the config source survived the failed builds"
            assert await addresses() == both
            poisoned = await _scrape(server)
            assert poisoned[LAST_BUILD] == first[LAST_BUILD]
            await _set_poison(client, False)
            await wait_for(lambda: answers(["127.0.2.1"]), timeout=10, what="the next model")
            after = await _scrape(server)
            assert after[LAST_BUILD] > first[LAST_BUILD]
            assert after[FAILURES] == poisoned[FAILURES], "the fixed model built at once"
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
