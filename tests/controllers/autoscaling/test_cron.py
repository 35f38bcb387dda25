"""The CronFederatedHPA controller against a real API server: rules whose schedule fires
within the test (six-field schedules, seconds first) raise a FederatedHPA's bounds
before any load, the FederatedHPA controller scales the Deployment into them, and a
later rule lets them go; a Deployment target gets its replicas; failures and history
limits land in the status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flotilla.client.http import HttpClient
from flotilla.controllers.autoscaling.controller import FederatedHPAController
from flotilla.controllers.autoscaling.cron import CronFederatedHPAController, next_time
from flotilla.controllers.rollout.gates import Snapshot
from flotilla.controllers.runtime import Controller, ControllerManager
from flotilla.resources.kinds import by_kind
from tests.controllers.autoscaling.test_controller import deployment, fhpa
from tests.helpers import wait_for

NS = "hpa"
DEPLOY = by_kind("Deployment")
FHPA = by_kind("FederatedHPA")
CRON = by_kind("CronFederatedHPA")


async def no_traffic() -> Snapshot:
    return {}


@pytest.fixture
async def plane(client: HttpClient) -> AsyncIterator[None]:
    manager = ControllerManager(client, resync_period=30)
    informers = {k: manager.informer(by_kind(k))
                 for k in ("CronFederatedHPA", "FederatedHPA", "Deployment")}
    hpa = Controller("federated-hpa", FederatedHPAController(
        client, informers, period=0.5, source=no_traffic), workers=1)
    hpa.watches(informers["FederatedHPA"])
    cron = Controller("cron-federated-hpa", CronFederatedHPAController(client, informers),
                      workers=1)
    cron.watches(informers["CronFederatedHPA"])
    manager.add(hpa)
    manager.add(cron)
    async with manager:
        yield
    assert hpa.failed == 0
    assert cron.failed == 0


def at(seconds_from_now: float) -> str:
    """A six-field schedule firing once a minute, at the second ``seconds_from_now``."""
    t = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return f"{t.second} * * * * *"


def cron(name: str, kind: str, target: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "CronFederatedHPA",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": kind, "name": target},
                     "rules": rules}}


async def histories(client: HttpClient, name: str) -> dict[str, dict[str, Any]]:
    obj = await client.get(CRON, NS, name)
    return {h["ruleName"]: h for h in (obj.get("status") or {}).get("executionHistories")
            or []}


async def replicas(client: HttpClient, name: str) -> int:
    return int((await client.get(DEPLOY, NS, name))["spec"]["replicas"])


async def test_a_sale_rule_prescales_before_traffic_then_lets_go(
        client: HttpClient, plane: None) -> None:
    await client.create(deployment("shop", 2))
    await client.create(fhpa("shop", "shop", down_window=1))
    await client.create(cron("sale", "FederatedHPA", "shop", [
        {"name": "sale", "schedule": at(3), "targetMinReplicas": 6},
        {"name": "after-sale", "schedule": at(9), "targetMinReplicas": 2},
    ]))

    async def planned() -> bool:
        return all("nextExecutionTime" in h for h in (await histories(client, "sale"))
                   .values())
    await wait_for(planned, timeout=5)
    assert await replicas(client, "shop") == 2

    async def is_(want: int) -> bool:
        return await replicas(client, "shop") == want
    # no request at all reaches the shop: the schedule alone raises it
    await wait_for(lambda: is_(6), timeout=10)
    spec = (await client.get(FHPA, NS, "shop"))["spec"]
    assert spec["minReplicas"] == 6
    # then the after-sale rule lets it go, and the idle FederatedHPA returns to 2
    await wait_for(lambda: is_(2), timeout=15)
    got = await histories(client, "sale")
    (done,) = got["sale"]["successfulExecutions"]
    assert done["appliedMinReplicas"] == 6
    assert done["scheduleTime"] <= done["executionTime"]
    assert got["after-sale"]["successfulExecutions"][0]["appliedMinReplicas"] == 2
    assert not got["sale"].get("failedExecutions")
    # the next run is a minute later, as the schedule says
    nxt = datetime.fromisoformat(got["sale"]["nextExecutionTime"].replace("Z", "+00:00"))
    scheduled = datetime.fromisoformat(done["scheduleTime"].replace("Z", "+00:00"))
    assert (nxt - scheduled).total_seconds() == 60


async def test_deployment_target_and_failures_are_recorded(
        client: HttpClient, plane: None) -> None:
    await client.create(deployment("batch", 1))
    await client.create(cron("batch", "Deployment", "batch", [
        {"name": "night", "schedule": at(2), "targetReplicas": 4}]))
    await client.create(cron("ghost", "FederatedHPA", "nothing", [
        {"name": "sale", "schedule": at(2), "targetMinReplicas": 6, "failedHistoryLimit": 1}]))

    async def is_four() -> bool:
        return await replicas(client, "batch") == 4
    await wait_for(is_four, timeout=10)

    async def failed() -> list[dict[str, Any]]:
        return list((await histories(client, "ghost")).get("sale", {}).get(
            "failedExecutions") or [])
    (entry,) = await wait_for(failed, timeout=10)
    assert "FederatedHPA nothing not found" in entry["message"]


async def test_suspended_rule_is_not_planned(client: HttpClient, plane: None) -> None:
    await client.create(deployment("quiet", 1))
    await client.create(cron("quiet", "Deployment", "quiet", [
        {"name": "off", "schedule": "* * * * * *", "targetReplicas": 5, "suspend": True},
        {"name": "on", "schedule": "0 0 1 1 *", "targetReplicas": 3}]))

    async def planned() -> dict[str, dict[str, Any]] | None:
        got = await histories(client, "quiet")
        return got if "nextExecutionTime" in got.get("on", {}) else None
    got = await wait_for(planned, timeout=5)
    assert "nextExecutionTime" not in got["off"]
    assert await replicas(client, "quiet") == 1


def test_next_time_uses_the_rule_time_zone() -> None:
    after = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)  # 19:00 in Shanghai
    got = next_time({"schedule": "0 20 * * *", "timeZone": "Asia/Shanghai"}, after)
    assert got == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
