"""The state of one template's rollout, kept as JSON on its ResourceBinding.

Everything the controller needs to carry on after a restart is here (the wave plan, when
the current wave started, the generations its clusters reported before, the metrics
baseline), so a new leader picks a rollout up where the old one left it. Times are wall
clock seconds, because they must survive the process.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from flotilla.client.base import Object

STATE = "rollout.flotilla.io/state"
#: Written by `flotilla rollout pause|resume|abort|promote`, consumed by the controller.
REQUEST = "rollout.flotilla.io/request"
REQUESTS = ("pause", "resume", "abort", "promote", "promote-full")

#: Phases as in the RolloutPolicy status model.
IDLE, PROGRESSING, PAUSED, SUCCEEDED, FAILED, ABORTED = (
    "Idle", "Progressing", "Paused", "Succeeded", "Failed", "Aborted")
DONE = (SUCCEEDED, FAILED, ABORTED)


@dataclass(slots=True)
class WaveRun:
    """The current wave: started (its clusters pinned to the new revision), then ready,
    then judged."""

    started_at: float
    #: observedGeneration each cluster reported before its pin moved (-1: already there).
    generations: dict[str, int]
    ready_at: float | None = None
    baseline: dict[str, dict[str, float]] | None = None
    passed_at: float | None = None
    pause_until: float | None = None


@dataclass(slots=True)
class WaveRecord:
    """What a finished (or failed) wave showed: the audit trail `rollout status` prints."""

    wave: int
    clusters: list[str]
    started_at: float
    ended_at: float
    result: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RolloutState:
    revision: int
    stable: int
    phase: str = SUCCEEDED
    wave: int = 0
    waves: list[list[str]] = field(default_factory=list)
    run: WaveRun | None = None
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    records: list[WaveRecord] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> RolloutState:
        data = json.loads(text)
        run = data.pop("run", None)
        records = data.pop("records", [])
        return RolloutState(**data, run=WaveRun(**run) if run else None,
                            records=[WaveRecord(**r) for r in records])


def load(obj: Object) -> RolloutState | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(STATE)
    if not text:
        return None
    try:
        return RolloutState.from_json(text)
    except (ValueError, TypeError):
        return None


def store(obj: Object, state: RolloutState | None) -> None:
    annotations = obj["metadata"].setdefault("annotations", {})
    if state is None:
        annotations.pop(STATE, None)
    else:
        annotations[STATE] = state.to_json()


def take_request(obj: Object) -> str | None:
    annotations = obj["metadata"].setdefault("annotations", {})
    value = annotations.pop(REQUEST, None)
    return str(value) if value in REQUESTS else None
