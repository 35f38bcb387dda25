"""Revisions, wave plans, metric windows and the state machine, without processes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flotilla.controllers.rollout import revisions as rev
from flotilla.controllers.rollout.engine import Engine, Inputs, Report
from flotilla.controllers.rollout.gates import Snapshot, parse_metrics, window
from flotilla.controllers.rollout.state import (
    FAILED,
    PAUSED,
    PROGRESSING,
    SUCCEEDED,
    RolloutState,
)
from flotilla.controllers.rollout.waves import plan_waves
from flotilla.resources.models.rollout import RolloutPolicySpec, Wave


def deployment(version: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "shop"}},
                     "spec": {"containers": [{"name": "shop", "image": f"shop:{version}"}]}}}}


def cluster(name: str, region: str = "r", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"region": region}}


def test_history_records_changes_only_and_undo_becomes_newest() -> None:
    h = rev.next_history([], deployment("v1"), "t1")
    assert h is not None
    assert rev.next_history(h, copy.deepcopy(deployment("v1")), "t2") is None
    h = rev.next_history(h, deployment("v2"), "t2")
    assert h is not None
    h = rev.next_history(h, deployment("v1"), "t3")
    assert h is not None
    assert [r.number for r in h] == [1, 2, 3]
    assert h[-1].hash == rev.template_hash(rev.pod_template(deployment("v1")))


def test_history_keeps_the_last_n() -> None:
    h: list[rev.Revision] = []
    for i in range(15):
        h = rev.next_history(h, deployment(f"v{i}"), "t", limit=10) or h
    assert [r.number for r in h] == list(range(6, 16))
    # a revision clusters are pinned to outlives the limit
    kept = rev.next_history(h, deployment("new"), "t", limit=2, keep=frozenset({7}))
    assert kept is not None
    assert [r.number for r in kept] == [7, 16]


def test_pinned_template_renders_the_pinned_revision() -> None:
    binding: dict[str, Any] = {"metadata": {}}
    h = rev.next_history([], deployment("v1"), "t")
    assert h is not None
    h = rev.next_history(h, deployment("v2"), "t")
    assert h is not None
    rev.set_history(binding, h)
    rev.set_pins(binding, {"a": 1})
    current = deployment("v2")
    a = rev.pinned_template(binding, current, "a")
    assert a["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:v1"
    assert a["spec"]["replicas"] == 2
    assert rev.pinned_template(binding, current, "b") is current


def test_waves_by_name_percent_labels_and_regions() -> None:
    clusters = {c["metadata"]["name"]: c for c in (
        cluster("east-1", "cn-east", tier="canary"), cluster("east-2", "cn-east"),
        cluster("south-1", "cn-south"), cluster("south-2", "cn-south"))}
    placed = sorted(clusters)
    waves = [Wave(clusters=["east-1"]), Wave(percent=50), Wave(percent=100)]
    assert plan_waves(waves, placed, clusters) == [["east-1"], ["east-2"],
                                                   ["south-1", "south-2"]]
    waves = [Wave.model_validate({"clusterSelector": {"matchLabels": {"tier": "canary"}}}),
             Wave(regions=["cn-south"])]
    assert plan_waves(waves, placed, clusters) == [["east-1"], ["south-1", "south-2",
                                                                "east-2"]]


_L = 'service="default/shop",cluster="a",endpoint="e1"'
METRICS = (
    f"flotilla_gateway_requests_total{{{_L}}} %d\n"
    f'flotilla_gateway_errors_total{{{_L},reason="response-5xx"}} %d\n'
    f'flotilla_gateway_request_duration_seconds_bucket{{{_L},le="0.1"}} %d\n'
    f'flotilla_gateway_request_duration_seconds_bucket{{{_L},le="+Inf"}} %d\n'
    'flotilla_gateway_requests_total{service="default/shop",cluster="b",endpoint="e2"} 500\n'
)


def test_window_counts_the_waves_clusters_between_scrapes() -> None:
    before = parse_metrics(METRICS % (10, 0, 10, 10))
    after = parse_metrics(METRICS % (110, 20, 109, 110))
    f = window(before, after, ["default/shop"], ["a"])
    assert (f.requests, f.failed) == (100, 20)
    assert f.error_rate == pytest.approx(0.2)
    assert f.p99 == float("inf") or f.p99 == 0.1


SPEC = RolloutPolicySpec.model_validate({
    "selector": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
    "waves": [{"clusters": ["a"]}, {"percent": 100}],
    "analysis": {"interval": "1s", "minRequests": 10, "maxErrorRate": 0.05,
                 "readyTimeout": "5s"},
    "autoRollback": True,
})


class World:
    """Two clusters whose agents apply a pin at once; request counters on demand."""

    def __init__(self) -> None:
        h = rev.next_history([], deployment("v1"), "t")
        assert h is not None
        self.revisions = h
        self.now = 1000.0
        self.generation = {"a": 1, "b": 1}
        self.applied = {"a": 1, "b": 1}
        self.snapshot: Snapshot = {}

    def change(self, version: str) -> None:
        h = rev.next_history(self.revisions, deployment(version), "t")
        assert h is not None
        self.revisions = h

    def agents(self, pins: dict[str, int]) -> None:
        for c, r in pins.items():
            if self.applied[c] != r:
                self.applied[c], self.generation[c] = r, self.generation[c] + 1

    def serve(self, cluster: str, ok: int, failed: int) -> None:
        row = self.snapshot.setdefault(f"default/shop|{cluster}", {})
        row["requests"] = row.get("requests", 0) + ok + failed
        row["errors"] = row.get("errors", 0) + failed

    async def scrape(self) -> Snapshot:
        return copy.deepcopy(self.snapshot)

    async def step(self, state: RolloutState | None, pins: dict[str, int],
                   request: str | None = None) -> tuple[RolloutState, dict[str, int]]:
        inp = Inputs(now=self.now, revisions=self.revisions, placed=["a", "b"],
                     clusters={}, spec=SPEC,
                     reports={c: Report(g, 2, 2, 2) for c, g in self.generation.items()},
                     desired={"a": 2, "b": 2}, services=["default/shop"], scrape=self.scrape)
        s = await Engine(inp).step(state, pins, request)
        self.agents(s.pins)
        return s.state, s.pins


async def test_good_revision_goes_wave_by_wave() -> None:
    w = World()
    state, pins = await w.step(None, {})
    assert state.phase == SUCCEEDED
    assert pins == {"a": 1, "b": 1}
    w.change("v2")
    state, pins = await w.step(state, pins)
    assert state.phase == PROGRESSING
    assert pins == {"a": 2, "b": 1}
    state, pins = await w.step(state, pins)   # ready: baseline taken
    assert state.run is not None
    assert state.run.ready_at is not None
    w.serve("a", 30, 0)
    w.now += 1.5
    state, pins = await w.step(state, pins)   # wave 1 passes, wave 2 starts next step
    assert pins == {"a": 2, "b": 1}
    state, pins = await w.step(state, pins)
    assert pins == {"a": 2, "b": 2}
    state, pins = await w.step(state, pins)
    w.serve("b", 30, 0)
    w.now += 1.5
    state, pins = await w.step(state, pins)
    assert state.phase == SUCCEEDED
    assert state.stable == 2


async def test_bad_revision_is_rolled_back_at_the_canary() -> None:
    w = World()
    state, pins = await w.step(None, {})
    w.change("v2")
    state, pins = await w.step(state, pins)
    state, pins = await w.step(state, pins)
    w.serve("a", 10, 20)
    w.now += 1.5
    state, pins = await w.step(state, pins)
    assert state.phase == FAILED
    assert pins == {"a": 1, "b": 1}
    assert state.figures["failed"] == 20
    assert "error rate" in state.message


async def test_ready_timeout_fails_and_manual_pause_waits() -> None:
    w = World()
    state, pins = await w.step(None, {})
    w.change("v2")
    state, pins = await w.step(state, pins)
    w.generation["a"] = 0  # the new pods never report
    w.now += 6
    state, pins = await w.step(state, pins)
    assert state.phase == FAILED
    assert pins["a"] == 1
    assert "not ready" in state.message
    # undo to the stable template goes everywhere at once
    w.change("v1")
    state, pins = await w.step(state, pins)
    assert state.phase == SUCCEEDED
    assert set(pins.values()) == {3}
    # pause / resume requests
    w.change("v4")
    state, pins = await w.step(state, pins)
    state, pins = await w.step(state, pins, "pause")
    assert state.phase == PAUSED
    state, pins = await w.step(state, pins, "resume")
    assert state.phase == PROGRESSING
    state, pins = await w.step(state, pins, "promote-full")
    assert state.phase == SUCCEEDED
    assert set(pins.values()) == {4}


async def test_an_empty_wave_is_skipped() -> None:
    w = World()
    spec = SPEC.model_copy(update={"waves": [Wave(clusters=["gone"]), Wave(percent=100)]})
    state, pins = await w.step(None, {})
    w.change("v2")
    inp = Inputs(now=w.now, revisions=w.revisions, placed=["a", "b"], clusters={},
                 spec=spec, reports={c: Report(1, 2, 2, 2) for c in "ab"},
                 desired={"a": 2, "b": 2}, services=[], scrape=w.scrape)
    step = await Engine(inp).step(state, pins, None)
    assert step.state.records[0].result == "empty"
    step = await Engine(inp).step(step.state, step.pins, None)
    assert step.pins == {"a": 2, "b": 2}
