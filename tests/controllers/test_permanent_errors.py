"""Permanent errors end: a reconcile that raises `PermanentError` runs once, leaves a
condition and a Warning Event naming the cause, and runs again only when its object
changes. Real `ControllerManager`, real `Registry` over a real SQLite store."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from flotilla.api.registry import Registry
from flotilla.client.base import NotFoundError, Object
from flotilla.controllers.informer import Cache
from flotilla.controllers.placement import binder, scheduling
from flotilla.controllers.runtime import (
    Controller,
    ControllerManager,
    ExponentialBackoff,
    ObjectKey,
    PermanentError,
    Result,
)
from flotilla.resources.kinds import by_kind
from tests.api.samples import sample
from tests.helpers import wait_for

DEPLOY = by_kind("Deployment")
BINDING = by_kind("ResourceBinding")
EVENT = by_kind("Event")
PP = by_kind("PropagationPolicy")


class Picky:
    """Takes even replica counts only: an odd one is input no retry can fix. The
    Deployment named ``flaky`` fails transiently every time, as a reference for how
    often a retried key runs in the same time."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls: Counter[str] = Counter()

    async def reconcile(self, key: ObjectKey) -> Result | None:
        self.calls[key.name] += 1
        obj = self.cache.get(key)
        if obj is None:
            return None
        if key.name == "flaky":
            raise RuntimeError("the API is away (a transient failure)")
        replicas = int(obj["spec"]["replicas"])
        if replicas % 2:
            raise PermanentError("OddReplicas",
                                 f"spec.replicas: {replicas} is odd; use an even count")
        return None


def condition(obj: Object | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


async def warnings(registry: Registry, name: str) -> list[Object]:
    items = (await registry.list(EVENT, "default")).items
    return [e for e in items if e["involvedObject"]["name"] == name and e["type"] == "Warning"]


async def test_a_permanent_error_runs_once_and_again_when_the_object_changes(
        registry: Registry) -> None:
    manager = ControllerManager(registry, resync_period=0.05)
    deployments = manager.informer(DEPLOY)
    picky = Picky(deployments.cache)
    ctrl = Controller("picky", picky, rate_limiter=ExponentialBackoff(base=0.01, cap=0.04))
    manager.add(ctrl.watches(deployments))
    odd = sample(DEPLOY, "odd")
    odd["spec"]["replicas"] = 3
    await registry.create(odd)
    await registry.create(sample(DEPLOY, "flaky"))

    async def stalled(message: str) -> dict[str, Any] | None:
        c = condition(await registry.get(DEPLOY, "default", "odd"), "PickyStalled")
        return c if c and c["message"] == message else None

    async with manager:
        cond = await wait_for(lambda: stalled("spec.replicas: 3 is odd; use an even count"),
                              what="PickyStalled on odd")
        assert (cond["status"], cond["reason"]) == ("True", "OddReplicas")
        assert cond["observedGeneration"] == 1
        # Meanwhile the transient failure is retried with back-off, and the informer
        # resyncs every 50 ms: time enough for many retries of the stalled key too.
        await wait_for(lambda: _at_least(picky.calls, "flaky", 10), what="flaky retried")
        assert picky.calls["odd"] == 1, "a permanent error is not retried"
        assert ctrl.stalled == 1
        assert ctrl.failed >= 9
        (event,) = await warnings(registry, "odd")
        assert (event["reason"], event["message"]) == \
            ("OddReplicas", "spec.replicas: 3 is odd; use an even count")
        assert event["source"] == {"component": "picky"}

        # Another bad value: the object changed, so it runs again and says so.
        current = copy.deepcopy(await registry.get(DEPLOY, "default", "odd"))
        current["spec"]["replicas"] = 5
        await registry.update(current)
        await wait_for(lambda: stalled("spec.replicas: 5 is odd; use an even count"),
                       what="the new cause")
        assert picky.calls["odd"] == 2
        assert len(await warnings(registry, "odd")) == 2

        # Fixed: it runs again, succeeds, and the condition goes.
        current = copy.deepcopy(await registry.get(DEPLOY, "default", "odd"))
        current["spec"]["replicas"] = 4
        await registry.update(current)

        async def cleared() -> bool:
            obj = await registry.get(DEPLOY, "default", "odd")
            return condition(obj, "PickyStalled") is None

        await wait_for(cleared, what="PickyStalled removed")
        # Healthy again, it takes part in resyncs like any other key.
        assert picky.calls["odd"] >= 3
        assert ctrl.stalled == 2
        assert not ctrl.stalls


async def _at_least(calls: Counter[str], key: str, n: int) -> bool:
    return calls[key] >= n


async def test_a_stalled_object_is_still_cleaned_up_when_deleted(registry: Registry) -> None:
    manager = ControllerManager(registry)
    deployments = manager.informer(DEPLOY)
    picky = Picky(deployments.cache)
    ctrl = Controller("picky", picky)
    manager.add(ctrl.watches(deployments))
    odd = sample(DEPLOY, "odd")
    odd["spec"]["replicas"] = 1
    await registry.create(odd)
    async with manager:
        await wait_for(lambda: _at_least(picky.calls, "odd", 1), what="first reconcile")
        await wait_for(lambda: _true(bool(ctrl.stalls)), what="stalled")
        await registry.delete(DEPLOY, "default", "odd")
        await wait_for(lambda: _at_least(picky.calls, "odd", 2), what="clean-up reconcile")
        assert not ctrl.stalls


async def _true(value: bool) -> bool:
    return value


async def test_scheduler_stalls_on_a_quantity_it_cannot_parse(registry: Registry) -> None:
    """A binding stored before the API checked its quantities (written straight into the
    store here) is not retried forever: one reconcile, a Warning Event naming the field,
    and scheduling resumes once the binding is fixed."""
    stored = await registry.create(sample(BINDING, "web-deployment"))
    legacy = copy.deepcopy(stored)
    legacy["spec"]["replicaRequirements"] = {"resourceRequest": {"cpu": "lots"}}
    await registry.store.update(BINDING.resource, legacy)
    manager = ControllerManager(registry, resync_period=0.05)
    ctrl = scheduling.build(manager)
    async with manager:
        async def warned() -> list[Object]:
            return await warnings(registry, "web-deployment")

        (event,) = await wait_for(warned, what="Warning Event")
        assert event["reason"] == "InvalidInput"
        assert "cpu" in event["message"]
        assert "lots" in event["message"]
        # Classified permanent (a plain error would count as failed and be retried).
        # The stored object fails validation, so no status write can take a condition.
        assert (ctrl.stalled, ctrl.failed) == (1, 0)
        reconciled = ctrl.reconciled
        fixed = copy.deepcopy(await registry.get(BINDING, "default", "web-deployment"))
        fixed["spec"]["replicaRequirements"] = {"resourceRequest": {"cpu": "250m"}}
        await registry.update(fixed)

        async def scheduled() -> dict[str, Any] | None:
            obj = await registry.get(BINDING, "default", "web-deployment")
            return condition(obj, "Scheduled")

        await wait_for(scheduled, what="Scheduled condition after the fix")
        assert (ctrl.stalled, ctrl.failed) == (1, 0)
        assert ctrl.reconciled > reconciled
        assert condition(await registry.get(BINDING, "default", "web-deployment"),
                         "SchedulerStalled") is None


async def test_binder_stalls_on_a_template_whose_binding_would_be_invalid(
        registry: Registry) -> None:
    """A Deployment named longer than a label value may be (63): the binding's
    ``flotilla.io/template-name`` label cannot hold it, and the binder says so on the
    Deployment, once, instead of retrying the refused create."""
    name = "a" * 70
    deploy = sample(DEPLOY, name)
    deploy["metadata"]["name"] = name
    await registry.create(deploy)
    policy = sample(PP, "all-deployments")
    policy["spec"]["resourceSelectors"] = [{"apiVersion": "apps/v1", "kind": "Deployment"}]
    await registry.create(policy)
    manager = ControllerManager(registry, resync_period=0.05)
    ctrl = binder.build(manager)
    async with manager:
        async def stalled() -> dict[str, Any] | None:
            return condition(await registry.get(DEPLOY, "default", name), "BinderStalled")

        cond = await wait_for(stalled, what="BinderStalled on the Deployment")
        assert cond["reason"] == "InvalidBinding"
        assert "flotilla.io/template-name" in cond["message"]
        (event,) = await warnings(registry, name)
        assert event["reason"] == "InvalidBinding"
        assert ctrl.stalled == 1
        # The policy goes: the binder runs again (no binding to make), and the stall ends.
        await registry.delete(PP, "default", "all-deployments")

        async def ended() -> bool:
            obj = await registry.get(DEPLOY, "default", name)
            return condition(obj, "BinderStalled") is None

        await wait_for(ended, what="BinderStalled removed")
        with pytest.raises(NotFoundError):
            await registry.get(BINDING, "default", f"{name}-deployment")
        assert ctrl.stalled == 1
