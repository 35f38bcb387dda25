"""The rollout state machine: one step from (state, pins, inputs) to (state, pins).

Kept apart from the controller's I/O so that every transition reads in one place, and so
it can be driven step by step in tests. The rules:

* a new revision starts a rollout; its clusters stay pinned to what they run until their
  wave starts, and a wave starts only when the previous one passed its gates and pause;
* a wave's gates: every cluster of the wave reports a newer generation with all replicas
  updated and ready (within ``readyTimeout``), then, after ``interval``, the requests the
  gateway sent those clusters meet ``minRequests``, ``maxErrorRate`` and ``maxP99Latency``;
* a failed gate with ``autoRollback`` pins every cluster on the new revision back to the
  stable one (the others were never touched) and the rollout is Failed, with the figures;
* a new revision whose pod template is the stable one's (an undo) goes everywhere at once:
  it is known good, and a rollback must not wait on gates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from flotilla.client.base import Object
from flotilla.controllers.events import EventType
from flotilla.controllers.rollout.gates import Figures, Snapshot, window
from flotilla.controllers.rollout.revisions import Revision, find
from flotilla.controllers.rollout.state import (
    ABORTED,
    DONE,
    FAILED,
    PAUSED,
    PROGRESSING,
    SUCCEEDED,
    RolloutState,
    WaveRecord,
    WaveRun,
)
from flotilla.controllers.rollout.waves import plan_waves
from flotilla.resources.models.common import format_duration
from flotilla.resources.models.rollout import MANUAL, RolloutPolicySpec

POLL = 1.0


@dataclass(frozen=True, slots=True)
class Report:
    """One cluster's Deployment status as its agent reported it."""

    generation: int
    replicas: int
    updated: int
    ready: int


@dataclass(slots=True)
class Inputs:
    now: float
    revisions: list[Revision]
    placed: list[str]
    clusters: Mapping[str, Object]
    spec: RolloutPolicySpec
    reports: Mapping[str, Report]
    desired: Mapping[str, int]
    services: list[str]
    #: None when no gateway metrics are configured.
    scrape: Callable[[], Awaitable[Snapshot]] | None


@dataclass(slots=True)
class Step:
    state: RolloutState
    pins: dict[str, int]
    requeue_after: float | None = None
    #: (Event type, reason, message) worth recording on the template.
    events: list[tuple[EventType, str, str]] = field(default_factory=list)


def _same_template(revisions: list[Revision], a: int, b: int) -> bool:
    ra, rb = find(revisions, a), find(revisions, b)
    return ra is not None and rb is not None and ra.hash == rb.hash


class Engine:
    def __init__(self, inp: Inputs) -> None:
        self.inp = inp
        self.spec = inp.spec
        self.events: list[tuple[EventType, str, str]] = []

    async def step(self, state: RolloutState | None, pins: dict[str, int],
                   request: str | None) -> Step:
        inp = self.inp
        latest = inp.revisions[-1].number
        pins = {c: r for c, r in pins.items() if c in inp.placed}
        if state is None:
            # First sight under a policy: what runs now is stable.
            state = RolloutState(revision=latest, stable=latest, message="adopted")
            return Step(state, dict.fromkeys(inp.placed, latest))
        for c in inp.placed:  # a cluster placed now runs the stable revision until its wave
            pins.setdefault(c, state.stable)
        if latest != state.revision:
            state = self._start(state, latest, pins)
        if request is not None:
            self._request(state, pins, request)
        after = await self._progress(state, pins) if state.phase == PROGRESSING else None
        return Step(state, pins, after, self.events)

    # -- transitions -------------------------------------------------------------------

    def _start(self, old: RolloutState, latest: int, pins: dict[str, int]) -> RolloutState:
        stable = old.revision if old.phase == SUCCEEDED else old.stable
        if _same_template(self.inp.revisions, latest, stable):
            for c in pins:
                pins[c] = latest
            self.events.append(("Normal", "RolledBack",
                                f"revision {latest} (the pod template of stable revision "
                                f"{stable}) applied to every cluster at once"))
            return RolloutState(revision=latest, stable=latest, message=(
                f"rolled back to the pod template of revision {stable}"))
        waves = plan_waves(self.spec.waves, self.inp.placed, self.inp.clusters)
        self.events.append(("Normal", "RolloutStarted",
                            f"revision {latest}: waves {waves}"))
        return RolloutState(revision=latest, stable=stable, phase=PROGRESSING, wave=0,
                            waves=waves, message=f"rolling out revision {latest}")

    def _request(self, state: RolloutState, pins: dict[str, int], request: str) -> None:
        if state.phase in DONE and request != "promote-full":
            return
        if request == "pause" and state.phase == PROGRESSING:
            state.phase, state.message = PAUSED, "paused by rollout pause"
        elif request == "resume" and state.phase == PAUSED:
            state.phase, state.message = PROGRESSING, "resumed"
            if state.run is not None:
                state.run.pause_until = None
        elif request == "abort":
            self._back_to_stable(state, pins)
            state.phase, state.message = ABORTED, "aborted: every cluster back on " \
                f"revision {state.stable}"
            self.events.append(("Warning", "RolloutAborted", state.message))
        elif request == "promote" and state.phase in (PROGRESSING, PAUSED):
            state.phase = PROGRESSING
            if state.run is None:
                self._begin_wave(state, pins)
            assert state.run is not None
            self._passed(state, Figures(0, 0, None), skip_pause=True, how="promoted")
        elif request == "promote-full":
            for c in pins:
                pins[c] = state.revision
            state.phase, state.stable, state.run = SUCCEEDED, state.revision, None
            state.wave = len(state.waves)
            state.message = f"promoted: revision {state.revision} on every cluster"
            self.events.append(("Normal", "RolloutPromoted", state.message))

    def _back_to_stable(self, state: RolloutState, pins: dict[str, int]) -> None:
        for c, r in pins.items():
            if r == state.revision:
                pins[c] = state.stable
        state.run = None

    def _begin_wave(self, state: RolloutState, pins: dict[str, int]) -> None:
        clusters = state.waves[state.wave]
        generations = {}
        for c in clusters:
            report = self.inp.reports.get(c)
            generations[c] = -1 if pins.get(c) == state.revision or report is None \
                else report.generation
            pins[c] = state.revision
        state.run = WaveRun(started_at=self.inp.now, generations=generations)
        state.message = f"wave {state.wave + 1}/{len(state.waves)}: updating {clusters}"
        self.events.append(("Normal", "WaveStarted", state.message))

    def _passed(self, state: RolloutState, figures: Figures, *, skip_pause: bool = False,
                how: str = "passed") -> None:
        run = state.run
        assert run is not None
        now = self.inp.now
        state.records.append(WaveRecord(state.wave, state.waves[state.wave], run.started_at,
                                        now, how, figures.to_json()))
        state.figures = figures.to_json()
        run.passed_at = now
        last = state.wave + 1 >= len(state.waves)
        self.events.append(("Normal", "WavePassed",
                            f"wave {state.wave + 1}/{len(state.waves)} {how}: "
                            f"{figures.to_json()}"))
        if last:
            state.phase, state.stable, state.run = SUCCEEDED, state.revision, None
            state.wave = len(state.waves)
            state.message = f"revision {state.revision} on every cluster"
            self.events.append(("Normal", "RolloutSucceeded", state.message))
            return
        wave = self.spec.waves[state.wave] if state.wave < len(self.spec.waves) else None
        pause = wave.pause if wave is not None and wave.pause is not None else self.spec.pause
        if skip_pause or pause == 0:
            return
        if pause == MANUAL:
            state.phase = PAUSED
            state.message = f"wave {state.wave + 1} passed; waiting for rollout resume"
        else:
            assert isinstance(pause, float)
            run.pause_until = now + pause
            state.message = f"wave {state.wave + 1} passed; pausing {format_duration(pause)}"

    def _failed(self, state: RolloutState, pins: dict[str, int], reason: str,
                figures: Figures | None) -> None:
        run = state.run
        assert run is not None
        state.records.append(WaveRecord(state.wave, state.waves[state.wave], run.started_at,
                                        self.inp.now, "failed",
                                        figures.to_json() if figures else {}))
        state.figures = figures.to_json() if figures else {}
        if self.spec.auto_rollback:
            self._back_to_stable(state, pins)
            state.phase = FAILED
            state.message = f"wave {state.wave + 1} failed: {reason}; rolled back to " \
                f"revision {state.stable}"
        else:
            state.phase = PAUSED
            state.message = f"wave {state.wave + 1} failed: {reason}; promote or abort"
        self.events.append(("Warning", "RolloutFailed", state.message))

    # -- the running wave --------------------------------------------------------------

    async def _progress(self, state: RolloutState, pins: dict[str, int]) -> float | None:
        run, now = state.run, self.inp.now
        if run is not None and run.passed_at is not None:
            if run.pause_until is not None and now < run.pause_until:
                return run.pause_until - now
            state.wave, state.run = state.wave + 1, None
        if state.wave >= len(state.waves):
            state.phase, state.stable = SUCCEEDED, state.revision
            return None
        if state.run is None:
            self._begin_wave(state, pins)
            if not state.waves[state.wave]:  # e.g. a named cluster that is not placed
                self._passed(state, Figures(0, 0, None), skip_pause=True, how="empty")
            return POLL
        run = state.run
        analysis = self.spec.analysis
        ready_timeout = analysis.ready_timeout if analysis else 300.0
        if run.ready_at is None:
            waiting = self._not_ready(state)
            if waiting:
                if now - run.started_at > ready_timeout:
                    self._failed(state, pins, f"new pods not ready after "
                                 f"{format_duration(ready_timeout)} ({'; '.join(waiting)})",
                                 None)
                    return None
                state.message = f"wave {state.wave + 1}/{len(state.waves)}: waiting for " \
                    f"new pods ({'; '.join(waiting)})"
                return POLL
            run.ready_at = now
            if not self._metric_gates():
                self._passed(state, Figures(0, 0, None))
                return POLL
            try:
                run.baseline = await self._scrape()
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                run.ready_at = None
                state.message = f"cannot read the gateway's metrics: {exc}"
                return POLL
            return analysis.interval if analysis else POLL
        assert analysis is not None
        if now - run.ready_at < analysis.interval:
            return analysis.interval - (now - run.ready_at)
        try:
            snapshot = await self._scrape()
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            state.message = f"cannot read the gateway's metrics: {exc}"
            return analysis.interval
        figures = window(run.baseline or {}, snapshot, self.inp.services,
                         state.waves[state.wave])
        state.figures = figures.to_json()
        # Judged over at least minRequests: failures that already exceed the ceiling of
        # that sample fail the gate even if traffic stops (the gateway ejects a failing
        # canary, so a bad revision may never reach minRequests).
        sample = max(figures.requests, analysis.min_requests)
        if analysis.max_error_rate is not None and figures.failed and \
                figures.failed / sample > analysis.max_error_rate:
            self._failed(state, pins, f"error rate {figures.error_rate:.3f} > "
                         f"{analysis.max_error_rate} ({figures.failed} failed of "
                         f"{figures.requests} requests)", figures)
            return None
        if analysis.max_p99_latency is not None and figures.p99 is not None and \
                figures.requests >= analysis.min_requests and \
                figures.p99 > analysis.max_p99_latency:
            self._failed(state, pins, f"p99 latency {figures.p99 * 1000:.0f}ms > "
                         f"{analysis.max_p99_latency * 1000:.0f}ms", figures)
            return None
        if figures.requests < analysis.min_requests:
            state.message = f"wave {state.wave + 1}/{len(state.waves)}: " \
                f"{figures.requests}/{analysis.min_requests} requests observed"
            return analysis.interval
        self._passed(state, figures)
        return POLL

    def _metric_gates(self) -> bool:
        a = self.spec.analysis
        return a is not None and (a.min_requests > 0 or a.max_error_rate is not None
                                  or a.max_p99_latency is not None)

    async def _scrape(self) -> Snapshot:
        if self.inp.scrape is None:
            raise RuntimeError("no gateway metrics configured (FLOTILLA_GATEWAY_METRICS)")
        return await self.inp.scrape()

    def _not_ready(self, state: RolloutState) -> list[str]:
        """Clusters of the wave whose new pods are not all updated and ready yet."""
        run = state.run
        assert run is not None
        out = []
        for c in state.waves[state.wave]:
            report, want = self.inp.reports.get(c), self.inp.desired.get(c, 0)
            before = run.generations.get(c, -1)
            if report is None:
                out.append(f"{c}: no report")
            elif report.generation <= before:
                out.append(f"{c}: not applied yet")
            elif report.updated < want or report.ready < want or report.replicas > want:
                out.append(f"{c}: {min(report.updated, report.ready)}/{want} ready")
        return out
