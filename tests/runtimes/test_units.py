"""Pure parts: rollout arithmetic, $(VAR) expansion, quantities, pid-reuse guard."""

from __future__ import annotations

import os

import pytest

from flotilla.resources.quantity import cpu_millis, memory_bytes
from flotilla.runtimes import UnknownRuntimeError, get_runtime
from flotilla.runtimes.local.envvars import expand
from flotilla.runtimes.local.manifests import parse_manifests
from flotilla.runtimes.local.procs import ProcessId, identify, is_alive
from flotilla.runtimes.local.rollout import PodView, plan, resolve
from tests.runtimes.conftest import deployment


def test_percentages_round_surge_up_and_unavailable_down() -> None:
    assert resolve("25%", 10, round_up=True) == 3
    assert resolve("25%", 10, round_up=False) == 2
    assert resolve(2, 10, round_up=True) == 2


def test_rolling_plan_surges_then_removes_only_what_availability_allows() -> None:
    strategy = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    [spec] = parse_manifests([deployment("web", 3, strategy=strategy)]).deployments.values()
    old = [PodView(f"old-{i}", "other", True, True, float(i)) for i in range(3)]
    first = plan(spec, old)
    assert (first.create, first.delete) == (1, [])
    new = PodView("new-0", spec.template.hash, False, True, 10.0)
    assert plan(spec, [*old, new]).delete == []  # new pod not ready yet: keep all old
    ready = PodView("new-0", spec.template.hash, True, True, 10.0)
    assert plan(spec, [*old, ready]).delete == ["old-2"]  # newest old pod goes first


def test_scale_down_removes_not_ready_then_newest() -> None:
    [spec] = parse_manifests([deployment("web", 1)]).deployments.values()
    h = spec.template.hash
    pods = [PodView("a", h, True, True, 1.0), PodView("b", h, True, True, 2.0),
            PodView("c", h, False, True, 0.5)]
    assert plan(spec, pods).delete == ["c", "b"]


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "x"}
    assert expand("$(A)-$$(A)-$(B)-$$-$", env) == "x-$(A)-$(B)-$-$"


def test_quantities() -> None:
    assert cpu_millis("500m", "cpu") == 500
    assert cpu_millis(1.5, "cpu") == 1500
    assert memory_bytes("128Mi", "m") == 128 * 2**20
    with pytest.raises(ValueError, match="cpu"):
        cpu_millis("lots", "cpu")


def test_pid_reuse_is_detected_by_start_time() -> None:
    me = identify(os.getpid())
    assert me is not None
    assert is_alive(me)
    assert not is_alive(ProcessId(me.pid, me.start_time + 1))


def test_registry() -> None:
    assert callable(get_runtime("local"))
    with pytest.raises(UnknownRuntimeError, match="local"):
        get_runtime("nomad")


def test_recreate_removes_all_old_pods_before_starting_new_ones() -> None:
    [spec] = parse_manifests([deployment("web", 2, strategy={"type": "Recreate"})]
                             ).deployments.values()
    old = [PodView(f"old-{i}", "other", True, True, float(i)) for i in range(2)]
    assert sorted(plan(spec, old).delete) == ["old-0", "old-1"]
    dying = [PodView("old-0", "other", False, True, 0.0, terminating=True)]
    assert plan(spec, dying).create == 0, "waits until the old pods are gone"
    assert plan(spec, []).create == 2
