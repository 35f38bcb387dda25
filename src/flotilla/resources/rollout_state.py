"""The rollout annotations on a Deployment's ResourceBinding, as one format.

The rollout controller writes them and `flotilla rollout` reads them (and leaves a
request there), so the keys and their encoding live here, below both. Four annotations:

* ``rollout.flotilla.io/revisions``: the history, one entry per pod template (number,
  hash, template, who, when, cause);
* ``rollout.flotilla.io/pins``: ``{cluster: revision}``, the revision each cluster must run;
* ``rollout.flotilla.io/state``: `RolloutState`, everything a new leader needs to carry on
  (wave plan, when the wave started, the generations its clusters had, the metrics
  baseline, and why each cluster runs what it runs);
* ``rollout.flotilla.io/request``: pause, resume, abort, promote, promote-full.

They live on the binding, not on the Deployment: a user's ``apply`` replaces the
Deployment's metadata, while every controller touching the binding merges into it. A
hand-edited, broken annotation reads as absent, never as a crash. Times are wall-clock
seconds because they must survive the process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

Obj = dict[str, Any]

REVISIONS = "rollout.flotilla.io/revisions"
PINS = "rollout.flotilla.io/pins"
STATE = "rollout.flotilla.io/state"
#: Written by `flotilla rollout pause|resume|abort|promote`, consumed by the controller.
REQUEST = "rollout.flotilla.io/request"
REQUESTS = ("pause", "resume", "abort", "promote", "promote-full")
#: Stamped by the API server on every write with the caller's token name, shown in
#: history as who made the revision.
CHANGED_BY = "flotilla.io/changed-by"
CHANGE_CAUSE = "kubernetes.io/change-cause"

#: Phases as in the RolloutPolicy status model.
IDLE, PROGRESSING, PAUSED, SUCCEEDED, FAILED, ABORTED = (
    "Idle", "Progressing", "Paused", "Succeeded", "Failed", "Aborted")
DONE = (SUCCEEDED, FAILED, ABORTED)


def _annotations(obj: Obj) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _writable(obj: Obj) -> dict[str, Any]:
    annotations: dict[str, Any] = obj["metadata"].setdefault("annotations", {})
    return annotations


def _json(obj: Obj, key: str) -> Any:
    text = _annotations(obj).get(key)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- revisions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    number: int
    hash: str
    template: Obj
    changed_by: str
    changed_at: str
    cause: str

    def to_json(self) -> Obj:
        return {"revision": self.number, "hash": self.hash, "template": self.template,
                "changedBy": self.changed_by, "changedAt": self.changed_at,
                "cause": self.cause}

    @staticmethod
    def from_json(data: Obj) -> Revision:
        return Revision(int(data["revision"]), str(data["hash"]), dict(data["template"]),
                        str(data.get("changedBy") or ""), str(data.get("changedAt") or ""),
                        str(data.get("cause") or ""))


def pod_template(template: Obj) -> Obj:
    return dict(((template.get("spec") or {}).get("template")) or {})


def template_hash(pod: Obj) -> str:
    """Stable across key order, so an unchanged template never makes a new revision."""
    raw = json.dumps(pod, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:10]


def history(binding: Obj) -> list[Revision]:
    data = _json(binding, REVISIONS)
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        try:
            out.append(Revision.from_json(item))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda r: r.number)


def set_history(binding: Obj, revisions: list[Revision]) -> None:
    _writable(binding)[REVISIONS] = json.dumps([r.to_json() for r in revisions],
                                               separators=(",", ":"))


def find(revisions: list[Revision], number: int) -> Revision | None:
    return next((r for r in revisions if r.number == number), None)


# -- pins ------------------------------------------------------------------------------


def pins(binding: Obj) -> dict[str, int]:
    data = _json(binding, PINS)
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def set_pins(binding: Obj, value: dict[str, int] | None) -> bool:
    """Write (or with None remove) the pins; True when that changed the binding."""
    annotations = _writable(binding)
    if value is None:
        return annotations.pop(PINS, None) is not None
    text = json.dumps(dict(sorted(value.items())), separators=(",", ":"))
    if annotations.get(PINS) == text:
        return False
    annotations[PINS] = text
    return True


# -- state -----------------------------------------------------------------------------


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
    #: The revision being rolled out (or the last one rolled out).
    revision: int
    #: The last revision that completed on every cluster: where a failure goes back to.
    stable: int
    phase: str = SUCCEEDED
    wave: int = 0
    waves: list[list[str]] = field(default_factory=list)
    run: WaveRun | None = None
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    records: list[WaveRecord] = field(default_factory=list)
    #: Why each cluster is pinned where it is, in words (`rollout status` prints it).
    why: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> RolloutState:
        data = json.loads(text)
        run = data.pop("run", None)
        records = data.pop("records", [])
        return RolloutState(**data, run=WaveRun(**run) if run else None,
                            records=[WaveRecord(**r) for r in records])


def load(binding: Obj) -> RolloutState | None:
    text = _annotations(binding).get(STATE)
    if not text:
        return None
    try:
        return RolloutState.from_json(text)
    except (ValueError, TypeError):
        return None


def store(binding: Obj, state: RolloutState | None) -> None:
    annotations = _writable(binding)
    if state is None:
        annotations.pop(STATE, None)
    else:
        annotations[STATE] = state.to_json()


def take_request(binding: Obj) -> str | None:
    value = _writable(binding).pop(REQUEST, None)
    return str(value) if value in REQUESTS else None
