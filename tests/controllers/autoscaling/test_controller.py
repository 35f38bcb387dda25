"""The FederatedHPA controller against a real API server, with a fake gateway: counters
that grow at a rate the test sets (the metrics source is the one seam; the Deployment,
the FederatedHPA status and the Events are the real objects)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flotilla.client.base import NotFoundError
from flotilla.client.http import HttpClient
from flotilla.controllers.autoscaling.controller import FederatedHPAController, NoGateway
from flotilla.controllers.rollout.gates import Snapshot
from flotilla.controllers.runtime import Controller, ControllerManager
from flotilla.resources.kinds import by_kind
from tests.helpers import wait_for

DEPLOY = by_kind("Deployment")
FHPA = by_kind("FederatedHPA")
EVENT = by_kind("Event")
NS = "hpa"


class FakeGateway:
    """Cumulative request counters of service ``hpa/web`` growing at ``rate`` req/s,
    split over two clusters, 3:1 (the scrape a real gateway would answer)."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.total = 0.0
        self.stamp = time.monotonic()
        self.down = False

    def set_rate(self, rate: float) -> None:
        self.snapshot_now()
        self.rate = rate

    def snapshot_now(self) -> Snapshot:
        now = time.monotonic()
        self.total += self.rate * (now - self.stamp)
        self.stamp = now
        return {"hpa/web|east": {"requests": 0.75 * self.total},
                "hpa/web|burst": {"requests": 0.25 * self.total},
                "hpa/other|east": {"requests": 1e6 * now}}

    async def __call__(self) -> Snapshot:
        if self.down:
            raise OSError("connection refused")
        return self.snapshot_now()


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def fhpa(name: str, target: str, *, down_window: int = 2) -> dict[str, Any]:
    return {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "FederatedHPA",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicas": 2, "maxReplicas": 12,
                     "metrics": [{"type": "Object", "object": {
                         "describedObject": {"apiVersion": "v1", "kind": "Service",
                                             "name": "web"},
                         "metric": {"name": "flotilla.io/requests-per-second"},
                         "target": {"type": "AverageValue", "averageValue": "20"}}}],
                     "behavior": {
                         "scaleUp": {"stabilizationWindowSeconds": 0,
                                     "policies": [{"type": "Pods", "value": 20,
                                                   "periodSeconds": 1}]},
                         "scaleDown": {"stabilizationWindowSeconds": down_window,
                                       "policies": [{"type": "Percent", "value": 100,
                                                     "periodSeconds": 1}]}}}}


async def replicas(client: HttpClient, name: str) -> int:
    return int((await client.get(DEPLOY, NS, name))["spec"]["replicas"])


async def status(client: HttpClient, name: str) -> dict[str, Any]:
    try:
        return dict((await client.get(FHPA, NS, name)).get("status") or {})
    except NotFoundError:
        return {}


def condition(st: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == kind), {})


@pytest.fixture
async def plane(client: HttpClient) -> AsyncIterator[FakeGateway]:
    gateway = FakeGateway()
    manager = ControllerManager(client, resync_period=30)
    informers = {k: manager.informer(by_kind(k)) for k in ("FederatedHPA", "Deployment")}
    ctrl = Controller("federated-hpa", FederatedHPAController(
        client, informers, period=0.5, source=gateway), workers=2)
    ctrl.watches(informers["FederatedHPA"])
    manager.add(ctrl)
    async with manager:
        yield gateway
    assert ctrl.failed == 0


async def test_scales_up_on_requests_per_second_then_back_to_min(
        client: HttpClient, plane: FakeGateway) -> None:
    await client.create(deployment("web", 2))
    plane.set_rate(200.0)  # 200 req/s over 20 per replica: 10
    await client.create(fhpa("web", "web"))
    await wait_for(lambda: _is(client, "web", 10), timeout=15)

    async def reported() -> dict[str, Any] | None:
        st = await status(client, "web")
        return st if st.get("desiredReplicas") == 10 and st.get("lastScaleTime") else None
    st = await wait_for(reported, timeout=5)
    # per replica, as Kubernetes reports an AverageValue (200 req/s over 2 replicas);
    # the other service's counters are not counted
    value = float(st["currentMetrics"][0]["object"]["current"]["averageValue"])
    assert 180 <= value * st["currentReplicas"] <= 220, st
    assert condition(st, "ScalingActive")["reason"] == "ValidMetricFound"
    events = [e for e in (await client.list(EVENT, NS)).items
              if e["involvedObject"]["name"] == "web"]
    assert any(e["reason"] == "SuccessfulRescale" and "New size: 10" in e["message"]
               and "burst=" in e["message"] for e in events), events
    # within the tolerance (10 %): no change
    plane.set_rate(205.0)
    started = time.monotonic()

    async def moved_or_done() -> bool:
        return not await _is(client, "web", 10) or time.monotonic() - started > 2
    await wait_for(moved_or_done, timeout=5)
    assert await replicas(client, "web") == 10
    plane.set_rate(0.0)
    started = time.monotonic()
    await wait_for(lambda: _is(client, "web", 2), timeout=15)
    # the last recommendation of 10 came at most one period (0.5 s) before the drop
    assert time.monotonic() - started >= 1.4, "scaled down inside the stabilisation window"

    async def down_reported() -> bool:
        return (await status(client, "web")).get("desiredReplicas") == 2
    await wait_for(down_reported, timeout=5)


async def test_gateway_unreachable_keeps_the_replicas_and_says_why(
        client: HttpClient, plane: FakeGateway) -> None:
    await client.create(deployment("down", 5))
    plane.down = True
    await client.create(fhpa("down", "down"))

    async def reported() -> bool:
        return "unreachable" in condition(await status(client, "down"), "ScalingActive"
                                          ).get("message", "")
    await wait_for(reported, timeout=10)
    assert await replicas(client, "down") == 5
    assert condition(await status(client, "down"), "ScalingActive")["status"] == "False"


async def test_missing_target_is_reported(client: HttpClient, plane: FakeGateway) -> None:
    await client.create(fhpa("ghost", "nothing-here"))

    async def reported() -> bool:
        return condition(await status(client, "ghost"), "AbleToScale").get(
            "reason") == "FailedGetScale"
    await wait_for(reported, timeout=10)


async def test_outside_min_max_is_brought_inside_without_metrics(
        client: HttpClient, plane: FakeGateway) -> None:
    await client.create(deployment("big", 30))
    plane.down = True
    await client.create(fhpa("big", "big"))
    await wait_for(lambda: _is(client, "big", 12), timeout=10)


async def test_no_gateway_configured_is_said(client: HttpClient) -> None:
    from flotilla.controllers.autoscaling.controller import scrape_gateways
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FLOTILLA_GATEWAY_METRICS", raising=False)
        with pytest.raises(NoGateway):
            await scrape_gateways()


async def _is(client: HttpClient, name: str, want: int) -> bool:
    return await replicas(client, name) == want


def test_object_values_from_two_scrapes() -> None:
    from flotilla.controllers.autoscaling.controller import object_value
    from flotilla.resources.views import MetricView

    def metric(name: str) -> MetricView:
        got = MetricView.of({"type": "Object", "object": {
            "describedObject": {"kind": "Service", "name": "web"}, "metric": {"name": name},
            "target": {"type": "Value", "value": "1"}}})
        assert got is not None
        return got
    before = {"hpa/web|east": {"requests": 100.0, "le:0.1": 100.0, "le:0.5": 100.0,
                               "le:+Inf": 100.0},
              "hpa/web|burst": {"requests": 0.0}}
    after = {"hpa/web|east": {"requests": 400.0, "le:0.1": 390.0, "le:0.5": 400.0,
                              "le:+Inf": 400.0},
             "hpa/web|burst": {"requests": 100.0, "le:0.1": 50.0, "le:0.5": 100.0,
                               "le:+Inf": 100.0},
             "hpa/api|east": {"requests": 9e9}}
    rps, by_cluster = object_value(metric("flotilla.io/requests-per-second"), "hpa",
                                   before, after, 10.0)
    assert rps == 40.0
    assert by_cluster == {"burst": 10.0, "east": 30.0}
    p99, p99_by_cluster = object_value(metric("flotilla.io/latency-p99"), "hpa",
                                       before, after, 10.0)
    # 400 requests in the window, 340 under 100 ms: the 99th percentile is <= 500 ms
    assert p99 == 0.5
    assert p99_by_cluster == {"burst": 0.5, "east": 0.5}
