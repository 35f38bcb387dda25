"""The gateway's GatewayReport (`flotilla.traffic.reachability`): real backends behind a
real gateway with active health checks, the report written through the in-process
registry over a real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.api.registry import Registry
from flotilla.client.base import NotFoundError
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import GatewayReportView
from flotilla.resources.wellknown import SYSTEM_NAMESPACE
from flotilla.store.sqlite import open_sqlite_store
from flotilla.traffic.gateway import Gateway
from flotilla.traffic.model import HealthCheck, Policy
from flotilla.traffic.reachability import Reporter
from tests.helpers import free_port, wait_for
from tests.traffic.conftest import HOST, StartBackend, model_for, url

REPORT = by_kind("GatewayReport")


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await open_sqlite_store(tmp_path / "data")
    try:
        yield Registry(store)
    finally:
        await store.close()


async def _report(registry: Registry) -> GatewayReportView | None:
    try:
        return GatewayReportView.of(await registry.get(REPORT, SYSTEM_NAMESPACE, "gw-1"))
    except NotFoundError:
        return None


@contextlib.asynccontextmanager
async def _running(reporter: Reporter, gw: Gateway) -> AsyncIterator[None]:
    gw.health.on_reach = reporter.notify
    task = asyncio.create_task(reporter.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_report_says_which_clusters_the_checks_reach(
        start_backend: StartBackend, gateway: Callable[..., Awaitable[Gateway]],
        registry: Registry) -> None:
    up, failing, gone = (await start_backend("a", "east"), await start_backend("b", "south"),
                         await start_backend("c", "west"))
    policy = Policy("shop", "default", "shop", (HOST,), health_check=HealthCheck(
        "/healthz", interval=0.1, timeout=0.5, healthy_threshold=1, unhealthy_threshold=2))
    gw = await gateway(model_for([up, failing, gone], policy))
    reporter = Reporter(registry, "gw-1", lambda: gw.state.runtimes.values(), interval=0.5)
    async with _running(reporter, gw):
        async def listed(want: dict[str, bool]) -> GatewayReportView | None:
            report = await _report(registry)
            got = {c: e.reachable for c, e in report.clusters.items()} if report else {}
            return report if got == want else None

        await wait_for(lambda: listed({"east": True, "south": True, "west": True}),
                       timeout=10, what="every cluster reachable")
        first = await _report(registry)
        assert first is not None
        since = first.clusters["west"].since
        # An app that answers 500 is reachable (its failure is the app's, not the
        # network's); a cluster whose endpoint refuses connections is not.
        await failing.control(fail=500)
        gone.kill()
        report = await wait_for(lambda: listed({"east": True, "south": True, "west": False}),
                                timeout=10, what="west unreachable")
        west = report.clusters["west"]
        assert west.reason == "NoEndpointAnswered"
        assert west.since > since
        assert "0 of 1" in west.message
        # Renewed while nothing changes: renewTime moves, since stays.
        renewed = report.renew_time
        again = await wait_for(lambda: _newer(registry, renewed), timeout=5, what="renewal")
        assert again.clusters["west"].since == west.since


async def _newer(registry: Registry, renew: str) -> GatewayReportView | None:
    report = await _report(registry)
    return report if report is not None and report.renew_time > renew else None


async def test_an_unreachable_api_never_slows_the_gateway(
        start_backend: StartBackend, gateway: Callable[..., Awaitable[Gateway]]) -> None:
    """The API is a closed port: the report cannot be written, and requests through the
    gateway are answered as before (the reporter runs beside the hot path)."""
    b = await start_backend("a", "east")
    policy = Policy("shop", "default", "shop", (HOST,), health_check=HealthCheck(
        "/healthz", interval=0.1, timeout=0.5, healthy_threshold=1, unhealthy_threshold=1))
    gw = await gateway(model_for([b], policy))
    dead = HttpClient(f"http://127.0.0.1:{free_port()}", "t", timeout=1.0)
    reporter = Reporter(dead, "gw-1", lambda: gw.state.runtimes.values(), interval=0.2)
    try:
        async with _running(reporter, gw), httpx.AsyncClient(headers={"host": HOST}) as c:
            statuses: list[Any] = []
            for _ in range(40):
                r = await c.get(url(gw), timeout=2.0)
                statuses.append(r.status_code)
            assert statuses == [200] * 40
            assert reporter.writes == 0
    finally:
        await dead.close()
