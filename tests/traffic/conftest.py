"""Fixtures for the gateway tests: real backend processes and a gateway on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import uvloop

from flotilla.traffic.gateway import Gateway, GatewayOptions
from flotilla.traffic.model import Endpoint, Policy, RoutingModel, static_model

BACKEND_SCRIPT = Path(__file__).with_name("backend_server.py")
HOST = "shop.test"


def pytest_asyncio_loop_factories(config: pytest.Config,
                                   item: pytest.Item) -> dict[str, Callable[[], object]]:
    """The gateway's hot path is built for uvloop; test it on uvloop (this conftest's
    tests only)."""
    return {"uvloop": uvloop.new_event_loop}


class Backend:
    """One real backend process (tests/traffic/backend_server.py)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int,
                 cluster: str, region: str) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.cluster = cluster
        self.region = region

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.cluster, self.region, f"{self.region}-a", "127.0.0.1", self.port)

    async def control(self, **params: str | float | int) -> None:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{self.port}/control",
                            params={k: str(v) for k, v in params.items()})
            r.raise_for_status()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


StartBackend = Callable[..., Awaitable[Backend]]


@pytest.fixture
async def start_backend() -> AsyncIterator[StartBackend]:
    started: list[Backend] = []

    async def start(name: str, cluster: str | None = None, region: str = "r1") -> Backend:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BACKEND_SCRIPT), name, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.startswith(b"READY"), line
        b = Backend(name, proc, int(line.split()[1]), cluster or name, region)
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            b.kill()
        for b in started:
            await b.proc.wait()


def model_for(backends: list[Backend], policy: Policy | None = None) -> RoutingModel:
    return static_model([(policy or Policy("shop", "default", "shop", (HOST,)),
                          [b.endpoint for b in backends])])


@pytest.fixture
async def gateway() -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Start gateways on random loopback ports; all are stopped at the end."""
    started: list[Gateway] = []

    async def start(model: RoutingModel, region: str | None = None,
                    options: GatewayOptions | None = None) -> Gateway:
        gw = Gateway(model, listen="127.0.0.1:0", admin_listen="127.0.0.1:0", region=region,
                     options=options)
        await gw.start()
        started.append(gw)
        return gw

    try:
        yield start
    finally:
        for gw in started:
            await gw.stop()


def url(gw: Gateway, path: str = "/") -> str:
    return f"http://127.0.0.1:{gw.port}{path}"
