"""The rollout state machine: one pure step from (inputs, state, pins) to (state, pins).

Kept apart from the controller's I/O so that every transition reads in one place and can
be driven step by step in tests: the step reads no clock (``Inputs.now``) and does no
I/O (the gateway's counters are scraped by the controller before the step, see
`wants_metrics`). The rules:

* a new revision starts a rollout; its clusters stay pinned to what they run until their
  wave starts, and a wave starts only when the previous one passed its gates and pause;
* a wave's gates: every cluster of the wave reports a newer generation with all replicas
  updated and ready (within ``readyTimeout``), then, after ``interval``, the requests the
  gateway sent those clusters meet ``minRequests``, ``maxErrorRate`` and ``maxP99Latency``;
* **stable** is the last revision that completed on every cluster. A revision that
  supersedes an unfinished rollout starts from that stable revision; the clusters the
  superseded rollout had reached keep its revision until the new one's wave reaches
  them;
* a failed gate with ``autoRollback`` (or an abort) pins *every* cluster back on the
  stable revision: those on the failed revision and those a superseded rollout had
  left on its own, so a rollout never ends with clusters on different revisions;
* a new revision whose pod template is the stable one's (an undo) goes everywhere at once:
  it is known good, and a rollback must not wait on gates;
* a rollout that succeeds leaves every placed cluster on its revision, including one
  placed while it ran (no wave had it).

Each pin change writes why into ``RolloutState.why``: `rollout status` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flotilla.client.base import Object
from flotilla.controllers.events import EventType
from flotilla.controllers.rollout.gates import Figures, Snapshot, window
from flotilla.controllers.rollout.waves import plan_waves
from flotilla.resources.models.common import format_duration
from flotilla.resources.models.rollout import MANUAL, RolloutPolicySpec
from flotilla.resources.rollout_state import (
    ABORTED,
    DONE,
    FAILED,
    PAUSED,
    PROGRESSING,
    SUCCEEDED,
    Revision,
    RolloutState,
    WaveRecord,
    WaveRun,
    find,
)

POLL = 1.0


@dataclass(frozen=True, slots=True)
class Report:
    """One cluster's Deployment status as its agent reported it."""

    generation: int
    replicas: int
    updated: int
    ready: int


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything one step may look at, gathered by the controller before the step."""

    now: float
    revisions: list[Revision]
    placed: list[str]
    clusters: Mapping[str, Object]
    spec: RolloutPolicySpec
    reports: Mapping[str, Report]
    desired: Mapping[str, int]
    services: list[str]
    #: The gateway's counters scraped just before the step; None when not scraped
    #: (`wants_metrics` said no) or the scrape failed (``metrics_problem`` says why).
    metrics: Snapshot | None = None
    metrics_problem: str = ""


@dataclass(slots=True)
class Step:
    state: RolloutState
    pins: dict[str, int]
    requeue_after: float | None = None
    #: (Event type, reason, message) worth recording on the template.
    events: list[tuple[EventType, str, str]] = field(default_factory=list)


def metric_gates(spec: RolloutPolicySpec) -> bool:
    """Whether the policy judges waves by the gateway's figures at all."""
    a = spec.analysis
    return a is not None and (a.min_requests > 0 or a.max_error_rate is not None
                              or a.max_p99_latency is not None)


def wants_metrics(state: RolloutState | None, spec: RolloutPolicySpec) -> bool:
    """Whether the next step may judge (or take the baseline of) a wave, so the
    controller scrapes the gateway before it. Paused counts: a resume judges at once."""
    return (metric_gates(spec) and state is not None
            and state.phase in (PROGRESSING, PAUSED)
            and state.run is not None and state.run.passed_at is None)


def step(inputs: Inputs, state: RolloutState | None, pins: dict[str, int],
         request: str | None) -> Step:
    """The state and pins after one look at ``inputs``; ``request`` is a CLI request
    (pause, resume, abort, promote, promote-full) taken off the binding."""
    return _Machine(inputs).step(state, pins, request)


def _same_template(revisions: list[Revision], a: int, b: int) -> bool:
    ra, rb = find(revisions, a), find(revisions, b)
    return ra is not None and rb is not None and ra.hash == rb.hash


def _where(wave: int, waves: int) -> str:
    """How a person names a wave: the first one is the canary."""
    return f"at the canary, wave 1/{waves}" if wave == 0 and waves > 1 \
        else f"in wave {wave + 1}/{waves}"


def _moves(moved: dict[int, list[str]]) -> str:
    """Which clusters came back from which revision, the newest first."""
    return "; ".join(f"{', '.join(cs)} from revision {r}"
                     for r, cs in sorted(moved.items(), reverse=True))


class _Machine:
    def __init__(self, inp: Inputs) -> None:
        self.inp = inp
        self.spec = inp.spec
        self.events: list[tuple[EventType, str, str]] = []

    def step(self, state: RolloutState | None, pins: dict[str, int],
             request: str | None) -> Step:
        inp = self.inp
        latest = inp.revisions[-1].number
        pins = {c: r for c, r in pins.items() if c in inp.placed}
        if state is None:
            # First sight under a policy: what runs now is stable.
            state = RolloutState(revision=latest, stable=latest, message="adopted",
                                 why=dict.fromkeys(inp.placed, "running when the "
                                                   "RolloutPolicy adopted the Deployment"))
            return Step(state, dict.fromkeys(inp.placed, latest))
        for c in inp.placed:  # a cluster placed now runs the stable revision until its wave
            if c not in pins:
                pins[c] = state.stable
                state.why[c] = f"newly placed: runs stable revision {state.stable}"
        if latest != state.revision:
            state = self._start(state, latest, pins)
        if request is not None:
            self._request(state, pins, request)
        after = self._progress(state, pins) if state.phase == PROGRESSING else None
        state.why = {c: w for c, w in state.why.items() if c in pins}
        return Step(state, pins, after, self.events)

    # -- transitions -------------------------------------------------------------------

    def _start(self, old: RolloutState, latest: int, pins: dict[str, int]) -> RolloutState:
        stable = old.revision if old.phase == SUCCEEDED else old.stable
        superseded = old.phase not in DONE and old.revision != stable
        if superseded:
            self.events.append(("Normal", "RolloutSuperseded",
                                f"revision {latest} supersedes the unfinished rollout of "
                                f"revision {old.revision}; it starts from stable revision "
                                f"{stable}"))
        if _same_template(self.inp.revisions, latest, stable):
            undone = f"the pod template of stable revision {stable}, applied to every " \
                "cluster at once"
            for c in pins:
                pins[c] = latest
            self.events.append(("Normal", "RolledBack", f"revision {latest}: {undone}"))
            return RolloutState(revision=latest, stable=latest, message=(
                f"rolled back to the pod template of revision {stable}"),
                why=dict.fromkeys(pins, undone))
        waves = plan_waves(self.spec.waves, self.inp.placed, self.inp.clusters)
        self.events.append(("Normal", "RolloutStarted",
                            f"revision {latest}: waves {waves}"))
        why = dict(old.why)
        for i, clusters in enumerate(waves):
            for c in clusters:
                where = f"revision {latest} reaches it in wave {i + 1}/{len(waves)}"
                pin = pins.get(c, stable)
                why[c] = f"stable; {where}" if pin == stable else \
                    f"left by the superseded rollout of revision {pin}; {where}"
        message = f"rolling out revision {latest} from stable revision {stable}"
        if superseded:
            message += f" (superseding revision {old.revision})"
        return RolloutState(revision=latest, stable=stable, phase=PROGRESSING, wave=0,
                            waves=waves, message=message, why=why)

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
            moved = self._back_to_stable(state, pins, f"the rollout of revision "
                                         f"{state.revision} was aborted")
            state.phase = ABORTED
            state.message = f"aborted: every cluster back on revision {state.stable}"
            if moved:
                state.message += f" ({_moves(moved)})"
            self.events.append(("Warning", "RolloutAborted", state.message))
        elif request == "promote" and state.phase in (PROGRESSING, PAUSED):
            state.phase = PROGRESSING
            if state.run is None:
                self._begin_wave(state, pins)
            assert state.run is not None
            self._passed(state, pins, Figures(0, 0, None), skip_pause=True, how="promoted")
        elif request == "promote-full":
            for c in pins:
                pins[c] = state.revision
                state.why[c] = "promoted to every cluster by rollout promote --full"
            state.phase, state.stable, state.run = SUCCEEDED, state.revision, None
            state.wave = len(state.waves)
            state.message = f"promoted: revision {state.revision} on every cluster"
            self.events.append(("Normal", "RolloutPromoted", state.message))

    def _back_to_stable(self, state: RolloutState, pins: dict[str, int],
                        cause: str) -> dict[int, list[str]]:
        """Every cluster onto the stable revision; which came from where."""
        moved: dict[int, list[str]] = {}
        for c in sorted(pins):
            r = pins[c]
            if r == state.stable:
                state.why[c] = f"stable, never updated: {cause}"
                continue
            moved.setdefault(r, []).append(c)
            pins[c] = state.stable
            state.why[c] = f"rolled back: {cause}" if r == state.revision else \
                f"rolled back from revision {r}, whose rollout revision " \
                f"{state.revision} superseded: {cause}"
        state.run = None
        return moved

    def _begin_wave(self, state: RolloutState, pins: dict[str, int]) -> None:
        clusters = state.waves[state.wave]
        generations = {}
        for c in clusters:
            report = self.inp.reports.get(c)
            generations[c] = -1 if pins.get(c) == state.revision or report is None \
                else report.generation
            pins[c] = state.revision
            state.why[c] = f"updating to revision {state.revision} " \
                f"{_where(state.wave, len(state.waves))}"
        state.run = WaveRun(started_at=self.inp.now, generations=generations)
        state.message = f"wave {state.wave + 1}/{len(state.waves)}: updating {clusters}"
        self.events.append(("Normal", "WaveStarted", state.message))

    def _passed(self, state: RolloutState, pins: dict[str, int], figures: Figures, *,
                skip_pause: bool = False, how: str = "passed") -> None:
        run = state.run
        assert run is not None
        now = self.inp.now
        state.records.append(WaveRecord(state.wave, state.waves[state.wave], run.started_at,
                                        now, how, figures.to_json()))
        state.figures = figures.to_json()
        run.passed_at = now
        for c in state.waves[state.wave]:
            state.why[c] = f"revision {state.revision} {how} " \
                f"{_where(state.wave, len(state.waves))}"
        self.events.append(("Normal", "WavePassed",
                            f"wave {state.wave + 1}/{len(state.waves)} {how}: "
                            f"{figures.to_json()}"))
        if state.wave + 1 >= len(state.waves):
            self._succeeded(state, pins)
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

    def _succeeded(self, state: RolloutState, pins: dict[str, int]) -> None:
        for c, r in pins.items():
            if r != state.revision:  # placed while the rollout ran: no wave had it
                pins[c] = state.revision
                state.why[c] = f"placed during the rollout of revision {state.revision}, " \
                    "given it once every wave passed"
        state.phase, state.stable, state.run = SUCCEEDED, state.revision, None
        state.wave = len(state.waves)
        state.message = f"revision {state.revision} on every cluster"
        self.events.append(("Normal", "RolloutSucceeded", state.message))

    def _failed(self, state: RolloutState, pins: dict[str, int], gate: str, detail: str,
                figures: Figures | None) -> None:
        run = state.run
        assert run is not None
        state.records.append(WaveRecord(state.wave, state.waves[state.wave], run.started_at,
                                        self.inp.now, "failed",
                                        figures.to_json() if figures else {}))
        state.figures = figures.to_json() if figures else {}
        where = _where(state.wave, len(state.waves))
        failure = f"wave {state.wave + 1}/{len(state.waves)} failed its {gate} gate: {detail}"
        cause = f"revision {state.revision} failed its {gate} gate {where}"
        if self.spec.auto_rollback:
            moved = self._back_to_stable(state, pins, cause)
            state.phase = FAILED
            state.message = f"{failure}; rolled back to stable revision {state.stable} " \
                f"on every cluster ({_moves(moved)})"
        else:
            for c in state.waves[state.wave]:
                state.why[c] = f"{cause}; waiting for rollout promote or abort"
            state.phase = PAUSED
            state.message = f"{failure}; promote or abort"
        self.events.append(("Warning", "RolloutFailed", state.message))

    # -- the running wave --------------------------------------------------------------

    def _progress(self, state: RolloutState, pins: dict[str, int]) -> float | None:
        run, now = state.run, self.inp.now
        if run is not None and run.passed_at is not None:
            if run.pause_until is not None and now < run.pause_until:
                return run.pause_until - now
            state.wave, state.run = state.wave + 1, None
        if state.wave >= len(state.waves):
            self._succeeded(state, pins)
            return None
        if state.run is None:
            self._begin_wave(state, pins)
            if not state.waves[state.wave]:  # e.g. a named cluster that is not placed
                self._passed(state, pins, Figures(0, 0, None), skip_pause=True, how="empty")
            return POLL
        run = state.run
        analysis = self.spec.analysis
        ready_timeout = analysis.ready_timeout if analysis else 300.0
        if run.ready_at is None:
            waiting = self._not_ready(state)
            if waiting:
                if now - run.started_at > ready_timeout:
                    self._failed(state, pins, "ready", f"new pods not ready after "
                                 f"{format_duration(ready_timeout)} ({'; '.join(waiting)})",
                                 None)
                    return None
                state.message = f"wave {state.wave + 1}/{len(state.waves)}: waiting for " \
                    f"new pods ({'; '.join(waiting)})"
                return POLL
            run.ready_at = now
            if not metric_gates(self.spec):
                self._passed(state, pins, Figures(0, 0, None))
                return POLL
            if self.inp.metrics is None:
                run.ready_at = None  # the baseline must be a scrape taken once ready
                state.message = f"cannot read the gateway's metrics: {self._problem()}"
                return POLL
            run.baseline = self.inp.metrics
            return analysis.interval if analysis else POLL
        assert analysis is not None
        if now - run.ready_at < analysis.interval:
            return analysis.interval - (now - run.ready_at)
        if self.inp.metrics is None:
            state.message = f"cannot read the gateway's metrics: {self._problem()}"
            return POLL
        figures = window(run.baseline or {}, self.inp.metrics, self.inp.services,
                         state.waves[state.wave])
        state.figures = figures.to_json()
        # Judged over at least minRequests: failures that already exceed the ceiling of
        # that sample fail the gate even if traffic stops (the gateway ejects a failing
        # canary, so a bad revision may never reach minRequests).
        sample = max(figures.requests, analysis.min_requests)
        if analysis.max_error_rate is not None and figures.failed and \
                figures.failed / sample > analysis.max_error_rate:
            self._failed(state, pins, "error-rate", f"error rate {figures.error_rate:.3f} > "
                         f"{analysis.max_error_rate} ({figures.failed} failed of "
                         f"{figures.requests} requests)", figures)
            return None
        if analysis.max_p99_latency is not None and figures.p99 is not None and \
                figures.requests >= analysis.min_requests and \
                figures.p99 > analysis.max_p99_latency:
            self._failed(state, pins, "p99-latency", f"p99 latency "
                         f"{figures.p99 * 1000:.0f}ms > "
                         f"{analysis.max_p99_latency * 1000:.0f}ms", figures)
            return None
        if figures.requests < analysis.min_requests:
            state.message = f"wave {state.wave + 1}/{len(state.waves)}: " \
                f"{figures.requests}/{analysis.min_requests} requests observed"
            return analysis.interval
        self._passed(state, pins, figures)
        return POLL

    def _problem(self) -> str:
        return self.inp.metrics_problem or "not scraped before this step"

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
