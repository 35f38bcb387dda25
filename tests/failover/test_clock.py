"""The failover controller on a driven clock, over a real Registry and SQLite store: the
application-failover clock lives on the binding, so a fresh controller (a restart)
evicts at the original deadline, never earlier and never a full toleration later."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flotilla.api.registry import Registry
from flotilla.controllers.failover import controller as failover
from flotilla.controllers.failover.unhealthy import ANNOTATION_UNHEALTHY_SINCE, recorded
from flotilla.controllers.runtime import ControllerManager
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at
from tests.helpers import wait_for

BINDING = by_kind("ResourceBinding")
CLUSTER = by_kind("Cluster")
T0 = parse_rfc3339("2027-01-15T08:00:00.250000Z")
TOLERATION = 30


async def _objects(registry: Registry) -> None:
    for name in ("a", "b"):
        created = await registry.create({
            "apiVersion": CLUSTER.api_version, "kind": "Cluster", "metadata": {"name": name},
            "spec": {"region": "r1", "zone": "r1-a"}})
        created["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                             "reason": "ClusterReady"}]}
        await registry.update_status(created)
    await registry.create({
        "apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "shop"}],
                 "failover": {"application": {
                     "decisionConditions": {"tolerationSeconds": TOLERATION}}}}})
    binding = await registry.create({
        "apiVersion": BINDING.api_version, "kind": "ResourceBinding",
        "metadata": {"name": "shop-deployment", "namespace": "default"},
        "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment",
                              "namespace": "default", "name": "shop"},
                 "replicas": 4, "placement": {},
                 "policy": {"kind": "PropagationPolicy", "namespace": "default",
                            "name": "shop"},
                 "clusters": [{"name": "a", "replicas": 2}, {"name": "b", "replicas": 2}]}})
    binding["status"] = {"aggregatedStatus": [
        {"clusterName": "a", "applied": True, "health": "Unhealthy",
         "status": {"readyReplicas": 0}},
        {"clusterName": "b", "applied": True, "health": "Healthy",
         "status": {"readyReplicas": 2}}]}
    await registry.update_status(binding)


async def _binding(registry: Registry) -> dict[str, Any]:
    return copy.deepcopy(await registry.get(BINDING, "default", "shop-deployment"))


async def _run_once_at(registry: Registry, now: float) -> failover.Controller:
    """A fresh controller (nothing in memory, as after a restart) whose clock says
    ``now``; returns once it reconciled the binding and wrote what it decided."""
    manager = ControllerManager(registry)
    ctrl = failover.build(manager, grace=3, clock=lambda: now)
    async with manager:
        async def settled() -> bool:
            if ctrl.reconciled < 1:
                return False
            notes = (await _binding(registry))["metadata"].get("annotations") or {}
            return "failover.flotilla.io/timers" in notes and len(ctrl.queue) == 0
        await wait_for(settled, what="the failover controller's first reconcile")
    return ctrl


async def test_a_restarted_controller_keeps_the_application_failover_clock(
        registry: Registry) -> None:
    await _objects(registry)
    await _run_once_at(registry, T0)
    first = await _binding(registry)
    assert recorded(first) == {"a": T0}
    assert first["metadata"]["annotations"][ANNOTATION_UNHEALTHY_SINCE] == \
        f'{{"a": "{rfc3339_at(T0)}"}}'
    assert [t["name"] for t in first["spec"]["clusters"]] == ["a", "b"]

    # Restarted two thirds of the way: the clock keeps counting from T0, not from now.
    await _run_once_at(registry, T0 + 20)
    middle = await _binding(registry)
    assert recorded(middle) == {"a": T0}
    assert [t["name"] for t in middle["spec"]["clusters"]] == ["a", "b"], "not early"

    # Restarted again exactly at the original deadline: the eviction happens now.
    await _run_once_at(registry, T0 + TOLERATION)
    after = await _binding(registry)
    assert [t["name"] for t in after["spec"]["clusters"]] == ["b"]
    (task,) = after["spec"]["gracefulEvictionTasks"]
    assert (task["fromCluster"], task["reason"]) == ("a", "ApplicationFailure")
    assert parse_rfc3339(task["creationTimestamp"]) == pytest.approx(T0 + TOLERATION)
    assert ANNOTATION_UNHEALTHY_SINCE not in (after["metadata"].get("annotations") or {}), \
        "an evicted cluster's clock is over"


async def test_a_recovered_workload_stops_the_clock(registry: Registry) -> None:
    await _objects(registry)
    await _run_once_at(registry, T0)
    binding = await _binding(registry)
    binding["status"]["aggregatedStatus"][0]["health"] = "Healthy"
    await registry.update_status(binding)
    await _run_once_at(registry, T0 + 10)
    assert recorded(await _binding(registry)) == {}
    # Unhealthy again later: a new clock, so no eviction at the old deadline.
    binding = await _binding(registry)
    binding["status"]["aggregatedStatus"][0]["health"] = "Unhealthy"
    await registry.update_status(binding)
    await _run_once_at(registry, T0 + 20)
    await _run_once_at(registry, T0 + TOLERATION + 1)
    again = await _binding(registry)
    assert recorded(again) == {"a": T0 + 20}
    assert [t["name"] for t in again["spec"]["clusters"]] == ["a", "b"]
