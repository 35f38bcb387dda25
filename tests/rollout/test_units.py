"""Revisions, wave plans, metric windows and the state machine, without processes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flotilla.controllers.rollout import revisions as rev
from flotilla.controllers.rollout.engine import Inputs, Report, step, wants_metrics
from flotilla.controllers.rollout.gates import Snapshot, parse_metrics, window
from flotilla.controllers.rollout.waves import plan_waves
from flotilla.resources import rollout_state as st
from flotilla.resources.models.rollout import RolloutPolicySpec, Wave
from flotilla.resources.rollout_state import (
    ABORTED,
    FAILED,
    PAUSED,
    PROGRESSING,
    SUCCEEDED,
    RolloutState,
)


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
    assert h[-1].hash == st.template_hash(st.pod_template(deployment("v1")))


def test_history_keeps_the_last_n() -> None:
    h: list[st.Revision] = []
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
    st.set_history(binding, h)
    st.set_pins(binding, {"a": 1})
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


THREE = RolloutPolicySpec.model_validate({
    "selector": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
    "waves": [{"clusters": ["a"]}, {"percent": 60}, {"percent": 100}],
    "analysis": {"interval": "1s", "minRequests": 10, "maxErrorRate": 0.05,
                 "maxP99Latency": "500ms", "readyTimeout": "5s"},
    "autoRollback": True,
})


class World:
    """Clusters whose agents apply a pin at once, gateway counters that grow when they
    serve, and a clock that moves only when the test says so. Each step gets the
    counters only when the engine asks for them, as from the controller."""

    def __init__(self, spec: RolloutPolicySpec = SPEC, clusters: str = "ab") -> None:
        h = rev.next_history([], deployment("v1"), "t")
        assert h is not None
        self.revisions = h
        self.spec = spec
        self.placed = list(clusters)
        self.now = 1000.0
        self.generation = dict.fromkeys(self.placed, 1)
        self.applied = dict.fromkeys(self.placed, 1)
        self.snapshot: Snapshot = {}
        self.problem = ""
        self.scrapes = 0
        self.last = step(self.inputs(None), None, {}, None)

    def change(self, version: str) -> None:
        h = rev.next_history(self.revisions, deployment(version), "t")
        assert h is not None
        self.revisions = h

    def place(self, cluster: str) -> None:
        self.placed.append(cluster)
        self.generation[cluster] = self.applied[cluster] = 1

    def agents(self, pins: dict[str, int]) -> None:
        for c, r in pins.items():
            if self.applied[c] != r:
                self.applied[c], self.generation[c] = r, self.generation[c] + 1

    def serve(self, cluster: str, ok: int, failed: int = 0, *, seconds: float = 0.05
              ) -> None:
        row = self.snapshot.setdefault(f"default/shop|{cluster}", {})
        row["requests"] = row.get("requests", 0) + ok + failed
        row["errors"] = row.get("errors", 0) + failed
        for bound in (0.1, 1.0, float("inf")):
            if seconds <= bound:
                key = f"le:{'+Inf' if bound == float('inf') else bound}"
                row[key] = row.get(key, 0) + ok + failed

    def inputs(self, state: RolloutState | None) -> Inputs:
        metrics = None
        if wants_metrics(state, self.spec) and not self.problem:
            self.scrapes += 1
            metrics = copy.deepcopy(self.snapshot)
        return Inputs(now=self.now, revisions=self.revisions, placed=list(self.placed),
                      clusters={}, spec=self.spec,
                      reports={c: Report(g, 2, 2, 2) for c, g in self.generation.items()},
                      desired=dict.fromkeys(self.placed, 2), services=["default/shop"],
                      metrics=metrics, metrics_problem=self.problem)

    def step(self, request: str | None = None) -> tuple[RolloutState, dict[str, int]]:
        s = step(self.inputs(self.last.state), self.last.state, self.last.pins, request)
        self.agents(s.pins)
        self.last = s
        return s.state, s.pins

    def judge(self, cluster: str, ok: int, failed: int = 0, *, seconds: float = 0.05
              ) -> tuple[RolloutState, dict[str, int]]:
        """The wave's pods are ready (baseline), then ``cluster`` serves, then the
        interval passes and the wave is judged."""
        self.step()
        assert self.last.state.run is not None
        assert self.last.state.run.ready_at is not None
        self.serve(cluster, ok, failed, seconds=seconds)
        self.now += 1.5
        return self.step()


def test_good_revision_goes_wave_by_wave() -> None:
    w = World()
    state, pins = w.last.state, w.last.pins
    assert state.phase == SUCCEEDED
    assert pins == {"a": 1, "b": 1}
    w.change("v2")
    state, pins = w.step()
    assert state.phase == PROGRESSING
    assert pins == {"a": 2, "b": 1}
    state, pins = w.judge("a", 30)   # wave 1 passes, wave 2 starts next step
    assert pins == {"a": 2, "b": 1}
    state, pins = w.step()
    assert pins == {"a": 2, "b": 2}
    state, pins = w.judge("b", 30)
    assert state.phase == SUCCEEDED
    assert state.stable == 2
    assert state.why["b"] == "revision 2 passed in wave 2/2"


def test_bad_revision_is_rolled_back_at_the_canary() -> None:
    w = World()
    w.change("v2")
    w.step()
    state, pins = w.judge("a", 10, 20)
    assert state.phase == FAILED
    assert pins == {"a": 1, "b": 1}
    assert state.figures["failed"] == 20
    assert "error rate" in state.message
    assert state.why["a"] == "rolled back: revision 2 failed its error-rate gate at the " \
        "canary, wave 1/2"
    assert state.why["b"].startswith("stable, never updated: revision 2 failed")


def test_ready_timeout_fails_and_manual_pause_waits() -> None:
    w = World()
    w.change("v2")
    w.step()
    w.generation["a"] = 0  # the new pods never report
    w.now += 6
    state, pins = w.step()
    assert state.phase == FAILED
    assert pins["a"] == 1
    assert "not ready" in state.message
    assert "ready gate" in state.why["a"]
    # undo to the stable template goes everywhere at once
    w.change("v1")
    state, pins = w.step()
    assert state.phase == SUCCEEDED
    assert set(pins.values()) == {3}
    # pause / resume requests
    w.change("v4")
    w.step()
    state, pins = w.step("pause")
    assert state.phase == PAUSED
    state, pins = w.step("resume")
    assert state.phase == PROGRESSING
    state, pins = w.step("promote-full")
    assert state.phase == SUCCEEDED
    assert set(pins.values()) == {4}


def test_an_empty_wave_is_skipped() -> None:
    spec = SPEC.model_copy(update={"waves": [Wave(clusters=["gone"]), Wave(percent=100)]})
    w = World(spec)
    w.change("v2")
    state, _ = w.step()
    assert state.records[0].result == "empty"
    _, pins = w.step()
    assert pins == {"a": 2, "b": 2}


def _in_last_wave_of_revision_2() -> World:
    """Revision 2 passed waves 1 and 2 of three and is updating c when the test goes on."""
    w = World(THREE, "abc")
    w.change("v2")
    w.step()
    w.judge("a", 30)
    w.step()
    w.judge("b", 30)
    state, pins = w.step()
    assert (state.phase, state.wave, state.stable) == (PROGRESSING, 2, 1)
    assert pins == {"a": 2, "b": 2, "c": 2}
    return w


def test_a_superseded_rollout_that_fails_ends_with_every_cluster_on_stable() -> None:
    w = _in_last_wave_of_revision_2()
    w.change("v3")  # bad
    state, pins = w.step()
    assert (state.revision, state.stable, state.wave) == (3, 1, 0)
    assert pins == {"a": 3, "b": 2, "c": 2}  # the canary first; the rest wait on 2
    assert ("Normal", "RolloutSuperseded", "revision 3 supersedes the unfinished rollout "
            "of revision 2; it starts from stable revision 1") in w.last.events
    assert state.message == "wave 1/3: updating ['a']"
    assert state.why["b"] == "left by the superseded rollout of revision 2; revision 3 " \
        "reaches it in wave 2/3"
    state, pins = w.judge("a", 5, 20)
    assert state.phase == FAILED
    assert pins == {"a": 1, "b": 1, "c": 1}
    assert state.why["a"] == "rolled back: revision 3 failed its error-rate gate at the " \
        "canary, wave 1/3"
    assert state.why["c"].startswith("rolled back from revision 2, whose rollout "
                                     "revision 3 superseded: revision 3 failed its "
                                     "error-rate gate")
    assert "a from revision 3; b, c from revision 2" in state.message
    assert w.applied == {"a": 1, "b": 1, "c": 1}  # what the agents were told to run


def test_a_superseding_revision_that_passes_reaches_every_cluster() -> None:
    w = _in_last_wave_of_revision_2()
    w.change("v3")
    w.step()
    w.judge("a", 30)
    state, pins = w.step()
    assert pins == {"a": 3, "b": 3, "c": 2}
    w.judge("b", 30)
    state, pins = w.step()
    state, pins = w.judge("c", 30)
    assert state.phase == SUCCEEDED
    assert (state.revision, state.stable) == (3, 3)
    assert pins == {"a": 3, "b": 3, "c": 3}


def test_aborting_a_superseding_rollout_puts_every_cluster_on_stable() -> None:
    w = _in_last_wave_of_revision_2()
    w.change("v3")
    w.step()
    state, pins = w.step("abort")
    assert state.phase == ABORTED
    assert pins == {"a": 1, "b": 1, "c": 1}
    assert state.why["b"].endswith("the rollout of revision 3 was aborted")


def test_a_cluster_placed_during_a_rollout_ends_on_its_revision() -> None:
    w = World()
    w.change("v2")
    w.step()
    w.place("late")
    state, pins = w.step()
    assert pins["late"] == 1  # runs stable until the rollout is done
    state, pins = w.judge("a", 30)
    w.step()
    state, pins = w.judge("b", 30)
    assert state.phase == SUCCEEDED
    assert pins == {"a": 2, "b": 2, "late": 2}


def test_too_few_requests_wait_but_failures_beyond_the_minimum_sample_fail() -> None:
    w = World()
    w.change("v2")
    w.step()
    state, _ = w.judge("a", 4)
    assert state.phase == PROGRESSING
    assert "4/10 requests observed" in state.message
    w.serve("a", 10)
    w.now += 1.0
    state, _ = w.step()
    assert state.records[-1].result == "passed"
    # the next wave: 1 failure of 3 is 10% of the 10 requests the gate would judge
    w.step()
    state, pins = w.judge("b", 2, 1)
    assert state.phase == FAILED
    assert pins == {"a": 1, "b": 1}


def test_a_slow_canary_fails_the_latency_gate() -> None:
    w = World(THREE, "abc")
    w.change("v2")
    w.step()
    state, pins = w.judge("a", 30, seconds=0.8)
    assert state.phase == FAILED
    assert "p99 latency 1000ms > 500ms" in state.message
    assert "p99-latency gate" in state.why["a"]
    assert pins == {"a": 1, "b": 1, "c": 1}


def test_unreadable_metrics_hold_the_wave_until_a_scrape_succeeds() -> None:
    w = World()
    w.change("v2")
    w.step()
    w.problem = "connection refused"
    state, _ = w.step()
    assert state.message == "cannot read the gateway's metrics: connection refused"
    assert state.run is not None
    assert state.run.ready_at is None  # no baseline without a scrape
    w.problem = ""
    state, _ = w.judge("a", 30)
    assert state.records[-1].result == "passed"


def test_the_clock_is_an_input_pauses_and_intervals_end_when_it_says() -> None:
    w = World(SPEC.model_copy(update={"pause": 10.0}))
    w.change("v2")
    w.step()
    w.step()  # ready, baseline
    w.serve("a", 30)
    w.now += 0.5
    state, _ = w.step()
    assert not state.records  # the interval (1 s) has not passed on this clock
    assert w.last.requeue_after == pytest.approx(0.5)
    w.now += 0.5
    state, pins = w.step()
    assert state.records[-1].result == "passed"
    scrapes = w.scrapes
    w.now += 9
    state, pins = w.step()
    assert pins["b"] == 1
    assert w.last.requeue_after == pytest.approx(1.0)
    assert w.scrapes == scrapes  # a pause between waves needs no figures
    w.now += 1
    state, pins = w.step()
    assert pins["b"] == 2


def test_status_says_which_revision_each_cluster_runs_and_why() -> None:
    from flotilla.cli.rollout_cmd import view

    w = _in_last_wave_of_revision_2()
    w.change("v3")
    w.step()
    w.judge("a", 5, 20)
    binding: dict[str, Any] = {"metadata": {}}
    st.set_history(binding, w.revisions)
    st.set_pins(binding, w.last.pins)
    st.store(binding, w.last.state)
    shown = view("shop", binding)
    assert shown.phase == FAILED
    assert "    a: revision 1 (rolled back: revision 3 failed its error-rate gate at the " \
        "canary, wave 1/3)" in shown.lines
    assert "    b: revision 1 (rolled back from revision 2, whose rollout revision 3 " \
        "superseded: revision 3 failed its error-rate gate at the canary, wave 1/3)" \
        in shown.lines
