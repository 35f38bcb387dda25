"""TrafficReachable: the cluster-health controller's verdict over the gateways' reports.

The pure rule (`judge_traffic`) over fresh, stale and mixed reports, then the controller
against a real registry (SQLite store), with a real heartbeat keeping the cluster Ready
and reports written as the gateways write them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.agent.heartbeat import Heartbeat
from flotilla.api.registry import Registry
from flotilla.client.base import NotFoundError
from flotilla.controllers import cluster_health
from flotilla.controllers.cluster_health import judge_traffic
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ClusterReach, ClusterView
from flotilla.resources.wellknown import (
    SYSTEM_NAMESPACE,
    TAINT_TRAFFIC_UNREACHABLE,
    now_rfc3339,
)
from flotilla.store.sqlite import open_sqlite_store
from tests.helpers import wait_for

CLUSTER = by_kind("Cluster")
REPORT = by_kind("GatewayReport")
EVENT = by_kind("Event")


def _reach(ok: bool) -> ClusterReach:
    return ClusterReach("east", ok, "2026-01-01T00:00:00Z",
                        "HealthChecksAnswered" if ok else "NoEndpointAnswered",
                        f"{int(ok)} of 1 checked endpoints answer")


def test_one_gateway_that_reaches_the_cluster_is_enough() -> None:
    verdict = judge_traffic({"gw-a": _reach(False), "gw-b": _reach(True), "gw-c": None})
    assert (verdict.status, verdict.reason, verdict.taint) == \
        ("True", "TrafficReachable", None)
    assert "gw-b" in verdict.message


def test_unreachable_needs_every_gateway_that_checks_it() -> None:
    verdict = judge_traffic({"gw-a": _reach(False), "gw-b": _reach(False)})
    assert (verdict.status, verdict.reason) == ("False", "TrafficUnreachable")
    assert verdict.taint == TAINT_TRAFFIC_UNREACHABLE
    assert "gw-a: 0 of 1" in verdict.message
    assert "gw-b" in verdict.message
    # A gateway that does not check the cluster has no say either way.
    assert judge_traffic({"gw-a": _reach(False), "gw-b": None}).status == "False"


def test_no_fresh_view_is_unknown_never_unreachable() -> None:
    # The controller passes only fresh reports: with every report stale, none is left.
    for views in ({}, {"gw-a": None}, {"gw-a": None, "gw-b": None}):
        verdict = judge_traffic(views)
        assert (verdict.status, verdict.reason, verdict.taint) == \
            ("Unknown", "NoFreshGatewayReport", None)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await open_sqlite_store(tmp_path / "data")
    try:
        yield Registry(store)
    finally:
        await store.close()


class Gateways:
    """GatewayReports renewed every 0.1 s as a gateway renews its own; ``stop`` one and
    it goes stale."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.views: dict[str, dict[str, bool]] = {}
        self._task: asyncio.Task[None] | None = None

    async def _write(self, name: str, clusters: dict[str, bool]) -> None:
        body: dict[str, Any] = {
            "apiVersion": REPORT.api_version, "kind": REPORT.kind,
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE},
            "spec": {"renewTime": now_rfc3339(),
                     "clusters": [{"name": c, "reachable": ok, "since": now_rfc3339(),
                                   "reason": "x", "message": f"{int(ok)} of 1"}
                                  for c, ok in clusters.items()]}}
        try:
            stored = await self.registry.get(REPORT, SYSTEM_NAMESPACE, name)
        except NotFoundError:
            await self.registry.create(body)
            return
        body["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        await self.registry.update(body)

    async def _run(self) -> None:
        while True:
            for name, clusters in list(self.views.items()):
                await self._write(name, clusters)
            await asyncio.sleep(0.1)

    def __enter__(self) -> Gateways:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _cluster(registry: Registry) -> ClusterView:
    return ClusterView.of(await registry.get(CLUSTER, "", "east"))


async def _reasons(registry: Registry) -> list[str]:
    events = (await registry.list(EVENT, None)).items
    return [str(e.get("reason")) for e in events
            if (e.get("involvedObject") or {}).get("name") == "east"]


async def _event(registry: Registry, reason: str) -> bool:
    """The Event is written after the status it reports: wait for it, never race it."""
    await wait_for(lambda: _has(registry, reason), timeout=10, what=f"a {reason} Event")
    return True


async def _has(registry: Registry, reason: str) -> bool:
    return reason in await _reasons(registry)


async def _traffic_taints(registry: Registry) -> set[tuple[str, str]]:
    view = await _cluster(registry)
    return {(t.key, t.effect) for t in view.taints if t.key == TAINT_TRAFFIC_UNREACHABLE}


async def test_the_condition_follows_the_fresh_reports(registry: Registry) -> None:
    await registry.create({"apiVersion": CLUSTER.api_version, "kind": "Cluster",
                           "metadata": {"name": "east"},
                           "spec": {"region": "r", "zone": "z", "runtime": "local"}})
    manager = ControllerManager(registry)
    cluster_health.build(manager, grace=1.0, report_stale=0.6)
    hb = Heartbeat(registry, "east", 0.2)
    await hb.acquire()

    async def status(want: str) -> ClusterView | None:
        view = await _cluster(registry)
        return view if view.traffic_status == want else None

    async with manager:
        beating = asyncio.create_task(hb.run())
        try:
            with Gateways(registry) as gateways:
                await wait_for(lambda: _ready(registry), timeout=20, what="Ready=True")
                # No gateway has a view yet: no condition at all, no taint.
                assert (await _cluster(registry)).traffic_status == ""
                gateways.views = {"gw-a": {"east": False}}
                view = await wait_for(lambda: status("False"), timeout=10, what="False")
                assert view.traffic_reason == "TrafficUnreachable"
                assert await _traffic_taints(registry) == {
                    (TAINT_TRAFFIC_UNREACHABLE, "NoSchedule"),
                    (TAINT_TRAFFIC_UNREACHABLE, "NoExecute")}
                assert view.ready
                assert not view.serves_traffic
                assert view.left_to_health_checks
                assert await _event(registry, "TrafficUnreachable")
                # A second gateway reaches it: one is enough.
                gateways.views = {"gw-a": {"east": False}, "gw-b": {"east": True}}
                view = await wait_for(lambda: status("True"), timeout=10, what="True")
                assert await _traffic_taints(registry) == set()
                assert view.serves_traffic
                assert await _event(registry, "TrafficReachable")
                # gw-b stops renewing (stale), gw-a still says unreachable: False again.
                gateways.views = {"gw-a": {"east": False}}
                await wait_for(lambda: status("False"), timeout=10, what="False again")
                # Every gateway stale: no view is not a cut. Unknown, the taints go.
                gateways.views = {}
                view = await wait_for(lambda: status("Unknown"), timeout=10, what="Unknown")
                assert view.traffic_reason == "NoFreshGatewayReport"
                assert await _traffic_taints(registry) == set()
                assert view.serves_traffic
                assert view.ready_status == "True"  # heartbeats were never in question
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _ready(registry: Registry) -> bool:
    return (await _cluster(registry)).ready
